"""Where two compared names differ: the classes with the largest gains and losses, per set and setting.

Classification: per probe and test set (IN-ReaL left out: its images carry label sets, not one
class), per true class top-1 of A's and B's Table 14 heads on the images both scored, named with
the ImageNet class names. Segmentation: per mode and dataset, per-class IoU from the counts summed
over the validation images both runs scored, named from the side file (mmseg's names as fallback).
A per-class change rests on few images (50 per class on IN-1K): read it as where to look, not as
a measured difference.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Hashable, Mapping, Optional, Sequence, Tuple

import pandas as pd

from probes.errors import ProbeError
from probes.report.class_names import segmentation_class_names
from probes.report.evidence.per_image import Cell, SideFiles
from probes.report.stats import ClassChanges, StatsError, classification_class_changes, segmentation_class_changes
from probes.report.tables.layouts import PROBE_NAMES
from probes.results import MODES, PROBES, TEST_SETS
from probes.sidefiles import SegmentationCounts

CHANGE_COLUMNS = ["setting", "set", "direction", "rank", "class_index", "class_name", "a", "b", "change", "n"]
LABEL_SETS = ("IN-ReaL",)  # sets whose images have several true classes: no per-class accuracy


def slug(name: str) -> str:
    """A label as a file-name part: lower case, runs of anything but letters, digits, '.', '-' as '_'."""
    return re.sub(r"[^a-z0-9.\-]+", "_", name.lower()).strip("_") or "unnamed"


def table_name(task: str, base: str, other: str) -> str:
    """`class_changes_<task>_<other>_vs_<base>` (B, then A)."""
    return f"class_changes_{task}_{slug(other)}_vs_{slug(base)}"


def _rows(changes: ClassChanges, setting: str, set_name: str) -> list[dict]:
    rows = []
    for direction, frame in (("gain", changes.gains), ("loss", changes.losses)):
        for rank, record in enumerate(frame.to_dict("records"), start=1):
            rows.append({"setting": setting, "set": set_name, "direction": direction, "rank": rank, **record})
    return rows


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS)


def classification_changes(rows_a: pd.DataFrame, rows_b: pd.DataFrame, cells: Mapping[Hashable, Cell],
                           side_files: SideFiles, k: int = 10,
                           class_names: Optional[Sequence[str]] = None) -> Tuple[pd.DataFrame, list[str]]:
    """(the k largest per-class top-1 gains and losses of B against A per probe and set, notes on what is missing)."""
    run_a = dict(zip(rows_a["probe_key"], rows_a["run_key"]))
    run_b = dict(zip(rows_b["probe_key"], rows_b["run_key"]))
    rows, notes = [], []
    for probe in PROBES:
        if probe not in run_a or probe not in run_b:
            continue
        for test_set in (s for s in TEST_SETS if s not in LABEL_SETS):
            cell_a, cell_b = cells.get((run_a[probe], probe, test_set)), cells.get((run_b[probe], probe, test_set))
            if cell_a is None or cell_b is None:
                continue
            found = [side_files.predictions(cell_a), side_files.predictions(cell_b)]
            missing = next((f for f in found if isinstance(f, str)), None)
            where = f"{PROBE_NAMES[probe]} {test_set}"
            if missing:
                notes.append(f"{where}: {missing.replace(': no interval', '')}")
                continue
            try:
                changes = classification_class_changes(found[0][0], cell_a.head, found[1][0], cell_b.head,
                                                       class_names=class_names, k=k)
            except StatsError as error:
                notes.append(f"{where}: {error}")
                continue
            rows += _rows(changes, PROBE_NAMES[probe], test_set)
    return _frame(rows), notes


def _named(counts: SegmentationCounts, dataset: str) -> SegmentationCounts:
    """The counts with mmseg's class names where the side file carries none (empty or bare indices)."""
    if not all(not name.strip() or name.strip().isdigit() for name in counts.class_names):
        return counts
    try:
        names = segmentation_class_names(dataset)
    except ProbeError:
        return counts
    return dataclasses.replace(counts, class_names=names) if len(names) == len(counts.class_names) else counts


def segmentation_changes(runs_a: pd.DataFrame, runs_b: pd.DataFrame, cells: Mapping[str, Cell],
                         side_files: SideFiles, k: int = 10) -> Tuple[pd.DataFrame, list[str]]:
    """(the k largest per-class IoU gains and losses of B against A per mode and dataset, notes)."""
    run_a = {(d, m): r for d, m, r in zip(runs_a["dataset"], runs_a["mode"], runs_a["run"])}
    run_b = {(d, m): r for d, m, r in zip(runs_b["dataset"], runs_b["mode"], runs_b["run"])}
    rows, notes = [], []
    for mode in MODES:
        for dataset in sorted({d for d, m in run_a if m == mode} & {d for d, m in run_b if m == mode}):
            found = [side_files.counts(cells[run[(dataset, mode)]]) for run in (run_a, run_b)]
            missing = next((f for f in found if isinstance(f, str)), None)
            if missing:
                notes.append(f"{mode} {dataset}: {missing.replace(': no interval', '')}")
                continue
            try:
                changes = segmentation_class_changes(_named(found[0][0], dataset), _named(found[1][0], dataset), k=k)
            except StatsError as error:
                notes.append(f"{mode} {dataset}: {error}")
                continue
            rows += _rows(changes, mode, dataset)
    return _frame(rows), notes
