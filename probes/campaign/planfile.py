"""DIR/plan.json: the campaign's runs, written atomically and updated under a lock (job ids, resubmissions)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from probes.errors import ConfigError
from probes.io import write_text_atomic

PLAN_FILE = "plan.json"
FORMAT = 1


def now() -> str:
    """UTC time as the result rows write it."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_path(where: Path) -> Path:
    """DIR/plan.json for a campaign folder, or the file itself."""
    where = Path(where)
    return where if where.suffix == ".json" else where / PLAN_FILE


def write_plan(where: Path, plan: Dict[str, Any]) -> Path:
    """Replace the plan file atomically (a reader sees the old plan or the new one)."""
    path = plan_path(where)
    return write_text_atomic(path, json.dumps(plan, indent=2, sort_keys=False, default=str) + "\n")


def read_plan(where: Path) -> Dict[str, Any]:
    """A campaign's plan; a missing or broken file is one clear error."""
    path = plan_path(where)
    if not path.is_file():
        raise ConfigError(f"no campaign plan at {path} (write one with `probes plan ... --out {path.parent}`)")
    try:
        plan = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("entries"), list):
        raise ConfigError(f"{path} is not a campaign plan (no `entries` list)")
    return plan


def find_plan(results: Path, given: Optional[Path] = None) -> Optional[Path]:
    """The plan a report reads: the one given, else DIR/plan.json when the results folder holds one."""
    if given is not None:
        return plan_path(given)
    found = plan_path(results)
    return found if found.is_file() else None


def update_plan(where: Path, change: Callable[[Dict[str, Any]], None]) -> Dict[str, Any]:
    """Read, change and write the plan under an exclusive lock (two submitters never lose each other's ids)."""
    from probes.results import locked

    path = plan_path(where)
    with locked(path.with_name(f".{path.name}.lock")):
        plan = read_plan(path)
        change(plan)
        write_plan(path, plan)
    return plan


def new_plan(out: Path, entries: List[Dict[str, Any]], settings: Dict[str, Any]) -> Dict[str, Any]:
    """The plan file's content: when and how it was made, then one entry per run."""
    return {"format": FORMAT, "created": now(), "out": str(out), **settings, "entries": entries}
