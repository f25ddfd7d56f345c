"""The one job function every executor runs: a planned run's resume-form command on this node.

The `--resume` form starts a run with no checkpoint, continues an interrupted one and does nothing for a
finished one, so a first start, a Slurm requeue after preemption or a node failure, and a rerun of the whole
campaign all run the same command. While it runs, the job keeps a heartbeat file (DIR/locks/KEY.lock: host,
pid, job id; touched every HEARTBEAT_S) that `probes status` reads as "running", and appends the run's output and
its exit code to DIR/logs/KEY.log, which `probes status` reads as "failed".
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

from probes.campaign.launch import RDZV_PORT, Resources, node_command
from probes.campaign.planfile import now

HEARTBEAT_S = 30
EXIT_MARK = "[probes campaign] exit "        # the job's last log line: the run's exit code
PREEMPTED_MARK = "[probes campaign] preempted"


def log_path(campaign: Path, key: str, node: int = 0) -> Path:
    """Where a run's output goes (node 0; other nodes of a multi-node run beside it)."""
    return Path(campaign) / "logs" / (f"{key}.log" if node == 0 else f"{key}.node{node}.log")


def lock_path(campaign: Path, key: str) -> Path:
    """The heartbeat file of a running run."""
    return Path(campaign) / "locks" / f"{key}.lock"


class Heartbeat:
    """Write the lock file now and touch it every HEARTBEAT_S seconds until stopped (then remove it)."""

    def __init__(self, path: Path, info: Dict[str, Any]) -> None:
        self.path, self.info, self._stop = path, info, threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> "Heartbeat":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.info) + "\n")
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.path.touch()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)


def _environment() -> tuple[int, str, str]:
    """(node rank, first node's host, job id) under submitit; (0, this host, pid) elsewhere."""
    try:
        import submitit

        env = submitit.JobEnvironment()
        return int(env.node), str(env.hostnames[0]), str(env.job_id)
    except (ImportError, RuntimeError):
        return 0, "127.0.0.1", str(os.getpid())


def _in_process(argv: List[str], handle: Any) -> int:
    """`probes <argv>` in this process, its stdout, stderr and log lines into `handle`; its exit code."""
    import logging
    import sys
    import traceback

    from probes.cli import main

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(handle.fileno(), 1)
    os.dup2(handle.fileno(), 2)
    root, catch = logging.getLogger(), None
    if root.handlers:   # main's basicConfig adds no handler (nor level) to a root the executor already set up
        catch = logging.StreamHandler(sys.stderr)
        catch.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(catch)
        root.setLevel(logging.INFO)
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except Exception:   # the run's own failure: its traceback goes to the log, the job reports the exit code
        traceback.print_exc()
        return 1
    finally:
        if catch is not None:
            root.removeHandler(catch)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


class CampaignJob:
    """A submitit callable: run one planned run on this node; on preemption stop it and requeue itself."""

    def __init__(self, campaign: str, key: str, argv: List[str], gpus: int, nodes: int) -> None:
        self.campaign, self.key, self.argv = str(campaign), key, list(argv)
        self.gpus, self.nodes = gpus, nodes
        self._process: Optional[subprocess.Popen] = None

    def __getstate__(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_process"}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state, _process=None)

    @property
    def resume_argv(self) -> List[str]:
        """The run's arguments in their --resume form (before --cfg-options, which takes every word after it)."""
        if "--resume" in self.argv:
            return list(self.argv)
        cut = self.argv.index("--cfg-options") if "--cfg-options" in self.argv else len(self.argv)
        return [*self.argv[:cut], "--resume", *self.argv[cut:]]

    def command(self, node: int = 0, master: str = "127.0.0.1") -> List[str]:
        """The process this node starts."""
        return node_command(self.resume_argv, Resources(self.gpus, self.nodes), node, master, RDZV_PORT)

    def __call__(self) -> int:
        node, master, job_id = _environment()
        log = log_path(Path(self.campaign), self.key, node)
        log.parent.mkdir(parents=True, exist_ok=True)
        command = self.command(node, master)
        info = {"key": self.key, "host": socket.gethostname(), "pid": os.getpid(), "job_id": job_id, "started": now()}
        with open(log, "a", buffering=1) as handle:
            handle.write(f"[probes campaign] {now()} job {job_id} on {info['host']}: {' '.join(command)}\n")
            if node == 0:
                with Heartbeat(lock_path(Path(self.campaign), self.key), info):
                    code = self._run(command, handle)
            else:
                code = self._run(command, handle)
            handle.write(f"{EXIT_MARK}{code} {now()}\n")
        if code:
            raise RuntimeError(f"run {self.key} exited with {code}; its output: {log}")
        return code

    def _run(self, command: List[str], handle: Any) -> int:
        if Resources(self.gpus, self.nodes).world == 1:
            # One process: run it in this (the job's own, fresh) process; a second interpreter would only import
            # torch again. `command` is what a separate process would run: `python -m probes.cli <argv>`.
            return _in_process(command[3:], handle)
        self._process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        return self._process.wait()

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit before preemption or the time limit: stop the run and requeue this same job."""
        import submitit

        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
        log = log_path(Path(self.campaign), self.key)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as handle:
            handle.write(f"{PREEMPTED_MARK} {now()}: requeued; it continues from its last checkpoint (--resume)\n")
        return submitit.helpers.DelayedSubmission(CampaignJob(self.campaign, self.key, self.argv, self.gpus,
                                                              self.nodes))
