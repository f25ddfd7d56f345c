"""The command lines of a planned run: the `probes ...` arguments, and the launcher around them.

One GPU (or the CPU): `probes ...`. One node, several GPUs: `torchrun --nproc_per_node G -m probes.cli ...`.
Several nodes, inside a Slurm allocation: segmentation as documented (`srun ... probes segment ... --launcher
slurm`), classification as one torchrun per node meeting at the first node (`srun ... torchrun --nnodes ...`).
A submitted job (probes.campaign.job) runs the same arguments, one torchrun per node.
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from probes.campaign.matrix import SEG_DATASETS, RunSpec

RDZV_PORT = 29500
RESULTS = {"classify": "classification", "segment": "segmentation"}   # DIR/<this>: each task's results folder


@dataclass(frozen=True)
class Resources:
    """Where one run runs: GPUs per node (0 = the CPU) and nodes."""

    gpus: int = 1
    nodes: int = 1

    @property
    def processes_per_node(self) -> int:
        """One process per GPU (one on a CPU node)."""
        return max(1, self.gpus)

    @property
    def world(self) -> int:
        """Processes of the run in all."""
        return self.processes_per_node * self.nodes

    @property
    def device(self) -> str:
        """The --device every run of the plan names (so the plan and the job compute one run id)."""
        return "cuda" if self.gpus > 0 else "cpu"


def results_dir(out: Path, task: str) -> Path:
    """The results folder of a task's runs inside a campaign folder."""
    return Path(out) / RESULTS[task]


def probes_argv(spec: RunSpec, out: Path, data: Optional[str], res: Resources, strategy: str = "none",
                resume: bool = False) -> List[str]:
    """The `probes` arguments of a run (no launcher flag); `resume` adds --resume (continue or start)."""
    argv: List[str] = [spec.task]
    if spec.task == "classify":
        if spec.config:
            argv += ["--config", spec.config]
        argv += ["--encoder", spec.encoder]
        if data:
            argv += ["--data", data]
        argv += ["--out", str(results_dir(out, spec.task)), "--device", res.device]
        if spec.image_size and not spec.table:
            argv += ["--image-size", str(spec.image_size)]
    else:
        argv += ["--encoder", spec.encoder, "--dataset", SEG_DATASETS[spec.dataset]]
        if data:
            argv += ["--data", data]
        argv += ["--mode", str(spec.mode)]
        if spec.config:
            argv += ["--config", spec.config]
        argv += ["--out", str(results_dir(out, spec.task)), "--device", res.device]
        if strategy != "none":
            argv += ["--strategy", strategy]
    for flag, value in spec.flags:
        if flag == "--strategy":
            continue   # given as `strategy` above
        argv += [flag, *(str(v) for v in value)] if isinstance(value, (list, tuple)) else [flag, str(value)]
    if resume:
        argv.append("--resume")
    if spec.cfg_options:
        argv += ["--cfg-options", *spec.cfg_options]   # nargs='+': last
    return argv


def _with_launcher(argv: List[str], launcher: str) -> List[str]:
    """Segmentation's --launcher, placed before --cfg-options (which takes every word after it)."""
    if argv[0] != "segment" or launcher == "none":
        return list(argv)
    cut = argv.index("--cfg-options") if "--cfg-options" in argv else len(argv)
    return [*argv[:cut], "--launcher", launcher, *argv[cut:]]


def command_line(argv: List[str], res: Resources) -> str:
    """The shell line a person runs (multi-node lines inside a Slurm allocation, e.g. an sbatch script)."""
    g, n = res.processes_per_node, res.nodes
    if res.world == 1:
        return shlex.join(["probes", *argv])
    if n == 1:
        return shlex.join(["torchrun", "--nproc_per_node", str(g), "-m", "probes.cli",
                           *_with_launcher(argv, "pytorch")])
    if argv[0] == "segment":
        return shlex.join(["srun", "-N", str(n), "--ntasks-per-node", str(g), "--gpus-per-task", "1", "probes",
                           *_with_launcher(argv, "slurm")])
    # $(hostname) and $SLURM_JOB_ID are expanded by the shell that runs srun: the allocation's first node.
    return (shlex.join(["srun", "-N", str(n), "--ntasks-per-node", "1", "--gpus-per-node", str(g), "torchrun",
                        "--nnodes", str(n), "--nproc_per_node", str(g), "--rdzv_backend", "c10d"])
            + f' --rdzv_endpoint "$(hostname)":{RDZV_PORT} --rdzv_id "$SLURM_JOB_ID" '
            + shlex.join(["-m", "probes.cli", *argv]))


def node_command(argv: List[str], res: Resources, node_rank: int = 0, master: str = "127.0.0.1",
                 port: int = RDZV_PORT) -> List[str]:
    """What a submitted job runs on one node: the run's process, or torchrun starting one per GPU."""
    python = [sys.executable, "-m"]
    if res.world == 1:
        return [*python, "probes.cli", *argv]
    return [*python, "torch.distributed.run", "--nnodes", str(res.nodes), "--node_rank", str(node_rank),
            "--nproc_per_node", str(res.processes_per_node), "--master_addr", master, "--master_port", str(port),
            "-m", "probes.cli", *_with_launcher(argv, "pytorch")]


def probes_part(command: str) -> List[str]:
    """The `probes` arguments inside a command line (what the real parser reads)."""
    words = shlex.split(command)
    for i, word in enumerate(words):
        if word == "probes" or (word == "probes.cli" and words[i - 1] == "-m"):
            return words[i + 1:]
    raise ValueError(f"no probes command in {command!r}")

