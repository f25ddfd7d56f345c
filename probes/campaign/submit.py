"""Submit a campaign's runs through submitit: Slurm (one job per run) or this machine (one after another).

Both executors run the same job function (probes.campaign.job.CampaignJob); only the executor differs. Runs
already done or running are skipped, so submitting a campaign again resubmits exactly what is left. Each job id
is recorded in DIR/plan.json (`jobs` of its entry).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from probes.campaign.job import CampaignJob
from probes.campaign.planfile import now, update_plan
from probes.campaign.status import campaign_status
from probes.errors import ConfigError

EXECUTORS = ("slurm", "local")
TO_SUBMIT = ("missing", "interrupted", "failed")
MAX_REQUEUES = 50   # time-limit requeues per run (submitit's default of 3 is short for a week of 24 h slots)


@dataclass
class SlurmOptions:
    """What the cluster needs besides the plan's resources."""

    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    cpus_per_gpu: int = 8
    time_limit_h: float = 48.0            # the most one job asks for; longer runs requeue from their checkpoint
    extra: Dict[str, str] = field(default_factory=dict)   # any other sbatch option, e.g. {'exclusive': ''}


def job_minutes(entry: Dict[str, Any], limit_h: float) -> int:
    """A job's time limit: 1.5x the run's estimated wall time plus 30 min, at most the limit (24 h unknown)."""
    hours = entry.get("gpu_hours")
    world = max(1, entry["gpus"]) * entry["nodes"]
    wanted = 24.0 if hours is None else 1.5 * hours / world + 0.5
    return int(math.ceil(min(wanted, limit_h) * 60))


def slurm_parameters(entry: Dict[str, Any], options: SlurmOptions) -> Dict[str, Any]:
    """submitit SlurmExecutor parameters (sbatch names) for one run: one task per node (it starts torchrun)."""
    extra = {k: (v if v != "" else True) for k, v in options.extra.items()}
    params: Dict[str, Any] = {
        "job_name": f"probes-{entry['key']}"[:120], "nodes": entry["nodes"], "ntasks_per_node": 1,
        "cpus_per_task": max(1, entry["gpus"]) * options.cpus_per_gpu,
        "time": job_minutes(entry, options.time_limit_h), "signal_delay_s": 180,
        # --requeue: Slurm may requeue the job itself (node failure); the job's --resume form makes that safe.
        "additional_parameters": {"requeue": True, **extra}}
    if entry["gpus"]:
        params["gpus_per_node"] = entry["gpus"]
    for name in ("partition", "account", "qos", "constraint"):
        if getattr(options, name):
            params[name] = getattr(options, name)
    return params


def make_executor(kind: str, campaign: Path, entry: Dict[str, Any], options: Optional[SlurmOptions] = None) -> Any:
    """The submitit executor of one run (no job is submitted)."""
    import submitit

    folder = Path(campaign) / "submitit" / "%j"
    if kind == "slurm":
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=MAX_REQUEUES)
        executor.update_parameters(**slurm_parameters(entry, options or SlurmOptions()))
        return executor
    if kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=60 * 24 * 30, tasks_per_node=1,
                                   **({"gpus_per_node": entry["gpus"]} if entry["gpus"] else {}))
        return executor
    raise ConfigError(f"--submit {kind!r} is not one of {', '.join(EXECUTORS)}")


def job_of(campaign: Path, entry: Dict[str, Any]) -> CampaignJob:
    """The job function of a planned run."""
    return CampaignJob(str(campaign), entry["key"], entry["argv"], entry["gpus"], entry["nodes"])


def submit_campaign(plan: Dict[str, Any], campaign: Path, kind: str, options: Optional[SlurmOptions] = None,
                    say: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Submit every run not done or running; local runs finish one before the next starts. Returns the submissions."""
    missing_data = sorted({e["needs"] for e in plan["entries"] if e.get("needs")})
    if missing_data:
        raise ConfigError(f"cannot submit: the commands have no data folder (pass {', '.join(missing_data)})")
    submitted = []
    for entry, status in zip(plan["entries"], campaign_status(plan, campaign)):
        if status.state not in TO_SUBMIT:
            say(f"{entry['key']}: {status.state}, not submitted")
            continue
        job = make_executor(kind, campaign, entry, options).submit(job_of(campaign, entry))
        record = {"executor": kind, "job_id": str(job.job_id), "submitted": now(), "was": status.state}

        def add(current: Dict[str, Any], key: str = entry["key"], record: Dict[str, Any] = record) -> None:
            for item in current["entries"]:
                if item["key"] == key:
                    item.setdefault("jobs", []).append(record)

        update_plan(campaign, add)
        submitted.append({"key": entry["key"], **record})
        say(f"{entry['key']}: submitted ({kind} job {job.job_id}; was {status.state})")
        if kind == "local":
            try:
                job.result()
                say(f"{entry['key']}: finished")
            except Exception as exc:   # one failed run must not stop the rest; status reports it
                say(f"{entry['key']}: failed ({str(exc).strip().splitlines()[-1][:200]})")
    return submitted
