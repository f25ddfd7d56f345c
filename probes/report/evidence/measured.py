"""Read every result CSV under a folder; a malformed row is skipped and named by file and line.

One bad row never blocks a report: it is left out, listed (`Results.skipped`) and counted, and
`probes report --strict` turns any skip into an error. Columns a file lacks (older CSVs written
before a column existed) read as empty.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from probes.errors import DatasetError
from probes.results import (BASELINES, CLASSIFICATION_COLUMNS, DATASETS, EPOCH_COLUMNS, MODES, PROBES, SEGMENTATION_COLUMNS,
                            TEST_SETS)

CLASSIFICATION, SEGMENTATION = "classification", "segmentation"
_REQUIRED = {
    CLASSIFICATION: ("encoder", "encoder_version", "probe", "test_set", "top1", "image_size", "protocol"),
    SEGMENTATION: ("encoder", "encoder_version", "dataset", "mode", "mIoU", "protocol"),
}
_COLUMNS = {CLASSIFICATION: CLASSIFICATION_COLUMNS, SEGMENTATION: SEGMENTATION_COLUMNS}
_CHOICES = {CLASSIFICATION: {"probe": PROBES + BASELINES, "test_set": TEST_SETS},
            SEGMENTATION: {"dataset": DATASETS, "mode": MODES}}
NUMBERS = ("top1", "max_over_epochs_top1", "heldout_top1", "lr", "layer", "image_size", "epochs", "n_images",
           "mIoU", "best_mIoU", "best_iter", "aAcc", "mAcc", "iters", "crop_size")
# Where each row came from: the CSV and its line (1 = the header), for skip messages and run identity.
SOURCE_COLUMNS = ("file", "line")


class ResultFileError(DatasetError):
    """A results folder that cannot be read at all."""


@dataclass(frozen=True)
class Skipped:
    """A row (or, at line 1, a whole file) left out of the report, and why."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class Results:
    """Every readable result row, by kind, and what was skipped."""

    classification: pd.DataFrame
    segmentation: pd.DataFrame
    skipped: list[Skipped] = field(default_factory=list)


def _kind(header: list[str]) -> Optional[str]:
    if "test_set" in header:
        return CLASSIFICATION
    if "mode" in header and "mIoU" in header:
        return SEGMENTATION
    return None


def _row_problem(row: dict, header: list[str], kind: str) -> Optional[str]:
    """Why a row cannot be used, or None; numbers that read as NaN become empty."""
    if None in row or any(v is None for v in row.values()):
        found = len(header) + len(row.get(None) or []) - sum(v is None for k, v in row.items() if k is not None)
        return f"wrong number of fields ({found}, the header has {len(header)})"
    for column, allowed in _CHOICES[kind].items():
        if row[column] not in allowed:
            return f"{column} {row[column]!r} is not one of {', '.join(allowed)}"
    for column in NUMBERS:
        value = row.get(column, "")
        if value in ("", None):
            continue
        try:
            number = float(value)
        except ValueError:
            return f"{column} {value!r} is not a number"
        if math.isnan(number):
            row[column] = ""
    return None


def read_result_file(path: Path) -> tuple[Optional[str], list[dict], list[Skipped]]:
    """(kind, usable rows, skipped) of one CSV; kind is None when the whole file is skipped."""
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            if "epoch" in header and set(header) <= set(EPOCH_COLUMNS):   # also files from before `head`
                return None, [], []   # a run's per-epoch scores: read by nobody here, and not a problem
            kind = _kind(header)
            if kind is None:
                return None, [], [Skipped(path, 1, "not a probes result CSV (no test_set or mode/mIoU column)")]
            unknown = [c for c in header if c not in _COLUMNS[kind]]
            missing = [c for c in _REQUIRED[kind] if c not in header]
            if unknown or missing:
                what = f"unknown column(s) {', '.join(unknown)}" if unknown else \
                    f"missing column(s) {', '.join(missing)}"
                return None, [], [Skipped(path, 1, f"{what} (whole file skipped)")]
            rows, skipped = [], []
            for row in reader:
                row = dict(row)
                problem = _row_problem(row, header, kind)
                if problem:
                    skipped.append(Skipped(path, reader.line_num, problem))
                else:
                    rows.append(row | {"file": str(path), "line": reader.line_num})
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return None, [], [Skipped(path, 1, f"unreadable ({exc.__class__.__name__}: {exc}; whole file skipped)")]
    return kind, rows, skipped


def _frame(rows: list[dict], columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows as a DataFrame with every schema column: numbers as floats, everything else as text ('' if absent)."""
    frame = pd.DataFrame(rows, columns=[*columns, *SOURCE_COLUMNS])
    for column in frame.columns:
        if column == "line":
            frame[column] = frame[column].astype(int)
        elif column in NUMBERS:
            frame[column] = pd.to_numeric(frame[column].replace("", None), errors="coerce").astype(float)
        else:
            frame[column] = pd.Series([("" if value is None or value != value else str(value))
                                       for value in frame[column]], index=frame.index, dtype=str)
    return frame


def load_results(results_dir: Path, exclude: Path | None = None) -> Results:
    """Every result row under a folder (recursively), except rows and files that cannot be used."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ResultFileError(f"results folder {results_dir} does not exist")
    read = {}
    for path in sorted(results_dir.rglob("*.csv")):
        if exclude is not None and Path(exclude).resolve() in path.resolve().parents:
            continue
        read[path.resolve()] = (path, *read_result_file(path))
    # A run's per-image side files (the `predictions` column) are not result CSVs: leave them out.
    side_files = {(Path(row["file"]).parent / row["predictions"]).resolve()
                  for _, _, rows, _ in read.values() for row in rows if row.get("predictions")}
    found: dict[str, list[dict]] = {CLASSIFICATION: [], SEGMENTATION: []}
    skipped: list[Skipped] = []
    for resolved, (path, kind, rows, problems) in read.items():
        if resolved in side_files:
            continue
        skipped += problems
        if kind is not None:
            found[kind] += rows
    return Results(_frame(found[CLASSIFICATION], CLASSIFICATION_COLUMNS),
                   _frame(found[SEGMENTATION], SEGMENTATION_COLUMNS), skipped)
