"""Run identity: a readable, unique `run_id` per (encoder weights, resolved settings), and what a rerun may do."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from probes.errors import ConfigError
from probes.io import write_atomic


def slug(text: str, limit: int = 60) -> str:
    """A file-name-safe piece of a name (the end is kept: folder names carry the distinguishing part)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text).strip("/")).strip("_")
    return cleaned[-limit:].strip("_") or "encoder"


def settings_hash(settings: Mapping[str, Any], length: int = 8) -> str:
    """A short hash of the settings that define a run (resolved config, weights fingerprint)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def make_run_id(name: str, parts: Sequence[str], settings: Mapping[str, Any]) -> str:
    """`<encoder name>_<part>_<part>_<hash>`: readable, and different whenever the settings differ."""
    return "_".join([slug(name), *(slug(p, 30) for p in parts if p), settings_hash(settings)])


def check_rerun(run_id: str, finished: bool, resume: bool, overwrite: bool, where: str,
                interrupted: Optional[Path] = None) -> bool:
    """Decide what a run whose rows or checkpoint may already exist does; True means "stop: nothing to do".

    A finished run is refused (one line naming it) unless `overwrite` (its rows are replaced when the
    new run ends) or `resume` (it says the run is finished and writes nothing). An interrupted run (a
    checkpoint, no rows) is refused unless `resume` continues it or `overwrite` starts it again: a plain
    rerun never silently restarts it over its checkpoint.
    """
    if not finished:
        if interrupted is not None and not (resume or overwrite):
            raise ConfigError(f"run {run_id} was interrupted (checkpoint {interrupted}); pass --resume to continue "
                              "it or --overwrite to start it again")
        return False
    if resume and not overwrite:
        return True
    if overwrite:
        return False
    raise ConfigError(f"run {run_id} is already finished in {where}; pass --overwrite to run it again and "
                      "replace its rows, or change a setting (the run id follows the settings)")


def write_plan(path: Path, plan: Mapping[str, Any]) -> None:
    """The plan a run executes, as JSON beside its rows (the same text `--print-config json` prints)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(path), lambda handle: handle.write(plan_json(plan)))


def plan_json(plan: Mapping[str, Any]) -> str:
    """A plan as stable, readable JSON."""
    return json.dumps(plan, indent=2, sort_keys=True, default=str) + "\n"
