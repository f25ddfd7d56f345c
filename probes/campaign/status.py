"""`probes status DIR`: where each planned run stands, read from the files the runs and their jobs leave.

done: its rows are in the results CSV (rows are written only when a run ends). running: its job's heartbeat
(DIR/locks/KEY.lock) or its checkpoint changed within the last N minutes. failed: its job's log ends with a
non-zero exit and no rows. interrupted: a checkpoint and no rows (continue it with --resume). missing: nothing yet.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from probes.campaign.job import EXIT_MARK, PREEMPTED_MARK, lock_path, log_path
from probes.results import read_rows

STATES = ("done", "running", "interrupted", "failed", "missing")
RESULT_FILES = {"classify": "classification_results.csv", "segment": "segmentation.csv"}
ERROR = re.compile(r"(error:|Error\b|Traceback|Killed|CUDA out of memory)")


@dataclass
class RunStatus:
    """One planned run's state, why, and the command that continues or starts it ('' when none is needed)."""

    key: str
    state: str
    detail: str
    command: str
    run_id: Optional[str]

    def as_dict(self) -> Dict[str, Any]:
        """Plain data for --format json."""
        return asdict(self)


def _flag(argv: List[str], flag: str) -> Optional[str]:
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None


def checkpoint_of(entry: Dict[str, Any], run_id: str) -> Optional[Path]:
    """The run's latest checkpoint file, if any (classify: OUT/checkpoints/ID.pth; segment: OUT/ID/last_checkpoint)."""
    out = Path(_flag(entry["argv"], "--out") or ".")
    if entry["task"] == "classify":
        path = out / "checkpoints" / f"{run_id}.pth"
        return path if path.is_file() else None
    marker = out / run_id / "last_checkpoint"
    if not marker.is_file():
        return None
    target = Path(marker.read_text().strip())
    return target if target.is_file() else marker


def _rows_done(entry: Dict[str, Any], run_id: str, cache: Dict[Path, set]) -> bool:
    path = Path(_flag(entry["argv"], "--out") or ".") / RESULT_FILES[entry["task"]]
    if path not in cache:
        cache[path] = {row.get("run_id") for row in read_rows(path)}
    return run_id in cache[path]


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if ERROR.search(line) and not line.startswith("[probes campaign]")]
    return (errors[-1] if errors else lines[-1] if lines else "")[:200]


def _log_state(log: Path) -> Optional[str]:
    """'failed' / 'preempted' / 'ok' from the job's last mark in its log, None without one."""
    if not log.is_file():
        return None
    marks = [line for line in log.read_text(errors="replace").splitlines()
             if line.startswith((EXIT_MARK, PREEMPTED_MARK))]
    if not marks:
        return None
    if marks[-1].startswith(PREEMPTED_MARK):
        return "preempted"
    code = marks[-1][len(EXIT_MARK):].split()[0]
    return "ok" if code == "0" else "failed"


def _age_min(path: Path) -> float:
    return (time.time() - path.stat().st_mtime) / 60


def run_id_of(entry: Dict[str, Any]) -> tuple[Optional[str], str]:
    """The entry's run id, planned again when plan.json has none (the weights or data may be there now)."""
    if entry.get("run_id"):
        return entry["run_id"], ""
    from probes.campaign.planning import resolve_run

    planned = resolve_run(entry["argv"], entry.get("encoder_version") or entry["encoder"],
                          has_data=_flag(entry["argv"], "--data") is not None)
    return planned.run_id, planned.note


def run_status(entry: Dict[str, Any], campaign: Path, stale_min: float = 30.0,
               rows: Optional[Dict[Path, set]] = None) -> RunStatus:
    """Classify one planned run."""
    key, start, resume = entry["key"], entry["command"], entry["resume_command"]
    run_id, note = run_id_of(entry)
    lock = lock_path(campaign, key)
    if lock.is_file() and _age_min(lock) < stale_min:
        try:
            info = json.loads(lock.read_text() or "{}")
        except ValueError:
            info = {}
        detail = f"job {info.get('job_id', '?')} on {info.get('host', '?')} since {info.get('started', '?')}"
        return RunStatus(key, "running", detail, "", run_id)
    if run_id is None:
        return RunStatus(key, "missing", f"run id unknown: {note}", start, None)
    if _rows_done(entry, run_id, rows if rows is not None else {}):
        return RunStatus(key, "done", "rows written", "", run_id)
    checkpoint = checkpoint_of(entry, run_id)
    if checkpoint is not None and _age_min(checkpoint) < stale_min:
        return RunStatus(key, "running", f"checkpoint {checkpoint} written {_age_min(checkpoint):.0f} min ago",
                         "", run_id)
    log = log_path(campaign, key)
    state = _log_state(log)
    if state == "failed":
        return RunStatus(key, "failed", f"{_last_error(log)} (log {log})", resume if checkpoint else start, run_id)
    if checkpoint is not None:
        why = "preempted, not requeued yet" if state == "preempted" else f"checkpoint {checkpoint}, no rows"
        return RunStatus(key, "interrupted", why, resume, run_id)
    return RunStatus(key, "missing", "not started", start, run_id)


def campaign_status(plan: Dict[str, Any], campaign: Path, stale_min: float = 30.0) -> List[RunStatus]:
    """Every planned run's state, in plan order."""
    rows: Dict[Path, set] = {}
    return [run_status(entry, campaign, stale_min, rows) for entry in plan["entries"]]


def counts(statuses: List[RunStatus]) -> str:
    """'3 done, 1 running, ...' (states with none left out)."""
    return ", ".join(f"{sum(s.state == state for s in statuses)} {state}" for state in STATES
                     if any(s.state == state for s in statuses))
