"""What `probes report` shows of a campaign: planned cells without rows stay in Tables 14 / 15 as "missing (state)".

The report calls `with_planned_cells` once; everything about plans and states stays in this package.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd

from probes.campaign.planfile import find_plan, read_plan
from probes.campaign.status import campaign_status

PROBE_LABELS = {"linear": "linear", "attention_pooling": "attention pooling"}   # as Table 14 names them


def _blank(frame: pd.DataFrame, values: Dict[str, Any]) -> pd.DataFrame:
    row = {c: (values[c] if c in values else float("nan") if c not in ("protocol", "head", "run") else "")
           for c in frame.columns}
    return pd.concat([frame, pd.DataFrame([row], columns=frame.columns)], ignore_index=True)


def _note(frame: pd.DataFrame, index: Any, note_column: str, text: str) -> None:
    before = str(frame.at[index, note_column] or "")
    frame.at[index, note_column] = f"{before}; {text}" if before and before != "nan" else text


def with_planned_cells(results: Path, plan_file: Optional[Path], t14: pd.DataFrame, t15: pd.DataFrame,
                       stale_min: float = 30.0) -> Tuple[pd.DataFrame, pd.DataFrame, str]:
    """Tables 14 and 15 with a row (or a note) for every planned run that has no rows yet, and a sentence saying so.

    The plan is `plan_file`, else RESULTS/plan.json; without one the tables come back unchanged.
    """
    from probes.report.tables.columns import NOTE
    from probes.report.tables.layouts import t15_column

    path = find_plan(Path(results), plan_file)
    if path is None:
        return t14, t15, ""
    plan = read_plan(path)
    statuses = campaign_status(plan, path.parent, stale_min)
    t14, t15 = t14.copy(), t15.copy()
    missing: List[str] = []
    for entry, status in zip(plan["entries"], statuses):
        if status.state == "done":
            continue
        missing.append(entry["key"])
        label = entry["label"]
        if entry["task"] == "classify":
            for probe in entry.get("probes") or list(PROBE_LABELS):
                text = f"missing ({status.state})"
                t14 = _blank(t14, {"encoder": label, "probe": PROBE_LABELS.get(probe, probe), NOTE: text})
            continue
        text = f"{t15_column(entry['dataset'], entry['mode'])}: missing ({status.state})"
        here = t15.index[t15["encoder"] == label]
        if len(here):
            _note(t15, here[0], NOTE, text)
        else:
            t15 = _blank(t15, {"encoder": label, NOTE: text})
    if not missing:
        return t14, t15, f"Every run of the campaign plan {path} has its rows."
    return t14, t15, (f"{len(missing)} of {len(statuses)} runs of the campaign plan {path} have no rows yet; "
                      "their cells are listed as missing with the run's state (`probes status` says how to "
                      "continue them).")
