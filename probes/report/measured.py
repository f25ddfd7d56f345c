"""Read every result CSV under a folder, checking each row, and pick the rows a report shows."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd

from probes.encoders.versions import VERSIONS
from probes.errors import DatasetError
from probes.results import (BASELINES, CLASSIFICATION_COLUMNS, DATASETS, MODES, PROBES, SEGMENTATION_COLUMNS,
                            STANDARD_PROTOCOL, TEST_SETS)

_REQUIRED = {
    "classification": ("encoder", "encoder_version", "probe", "test_set", "top1", "image_size", "protocol"),
    "segmentation": ("encoder", "encoder_version", "dataset", "mode", "mIoU", "protocol"),
}
_KNOWN = {"classification": set(CLASSIFICATION_COLUMNS), "segmentation": set(SEGMENTATION_COLUMNS)}
_CHOICES = {"classification": {"probe": PROBES + BASELINES, "test_set": TEST_SETS},
            "segmentation": {"dataset": DATASETS, "mode": MODES}}
_NUMBERS = ("top1", "mIoU", "aAcc", "mAcc", "lr", "image_size", "epochs", "iters", "n_images", "heldout_top1")
_TRUE = {"true", "1", "yes"}


class ResultFileError(DatasetError):
    """A result CSV that cannot be read: named by file and line."""


def _kind(path: Path, header: list[str]) -> str:
    if "test_set" in header:
        return "classification"
    if "mode" in header and "mIoU" in header:
        return "segmentation"
    raise ResultFileError(f"{path} line 1: not a probes result CSV (no test_set or mode/mIoU column)")


def _check_row(path: Path, line: int, row: dict, kind: str) -> dict:
    if None in row or any(v is None for v in row.values()):
        raise ResultFileError(f"{path} line {line}: wrong number of fields")
    for column, allowed in _CHOICES[kind].items():
        if row[column] not in allowed:
            raise ResultFileError(f"{path} line {line}: {column} {row[column]!r} is not one of {', '.join(allowed)}")
    for column in _NUMBERS:
        if row.get(column, "") not in ("", None):
            try:
                value = float(row[column])
            except ValueError:
                raise ResultFileError(f"{path} line {line}: {column} {row[column]!r} is not a number") from None
            if math.isnan(value):
                row[column] = ""
    return row


def read_result_file(path: Path) -> tuple[str, list[dict]]:
    """(kind, rows) of one result CSV; unknown columns and malformed rows name the file and line."""
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        kind = _kind(path, header)
        unknown = [c for c in header if c not in _KNOWN[kind]]
        if unknown:
            raise ResultFileError(f"{path} line 1: unknown column(s) {', '.join(unknown)}")
        missing = [c for c in _REQUIRED[kind] if c not in header]
        if missing:
            raise ResultFileError(f"{path} line 1: missing column(s) {', '.join(missing)}")
        rows = [_check_row(path, reader.line_num, dict(row), kind) | {"file": str(path)} for row in reader]
    return kind, rows


def load_results(results_dir: Path, exclude: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(classification, segmentation) rows of every result CSV under a folder."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ResultFileError(f"results folder {results_dir} does not exist")
    found: dict[str, list[dict]] = {"classification": [], "segmentation": []}
    for path in sorted(results_dir.rglob("*.csv")):
        if exclude is not None and Path(exclude).resolve() in path.resolve().parents:
            continue
        kind, rows = read_result_file(path)
        found[kind].extend(rows)
    frames = []
    for kind, columns in (("classification", CLASSIFICATION_COLUMNS), ("segmentation", SEGMENTATION_COLUMNS)):
        frame = pd.DataFrame(found[kind], columns=list(columns) + ["file"])
        for column in set(_NUMBERS) & set(frame.columns):
            frame[column] = pd.to_numeric(frame[column].replace("", None), errors="coerce")
        frame["label"] = [encoder_label(r) for r in frame.to_dict("records")] if len(frame) else []
        frame["flag"] = [protocol_flag(r) for r in frame.to_dict("records")] if len(frame) else []
        frames.append(frame)
    return frames[0], frames[1]


def encoder_label(row: dict) -> str:
    """How an encoder is named in tables: its version (or path), plus the input size if not native."""
    version = str(row.get("encoder_version") or "")
    # A user's own checkpoint is named by its folder (or file) name, not its whole path.
    name = version if version and version != "custom" else Path(str(row.get("encoder"))).name
    size = row.get("image_size")
    native = VERSIONS[version].image_size if version in VERSIONS else None
    if size not in (None, "") and not pd.isna(size) and native is not None and int(size) != native:
        name += f" @{int(size)}"
    return name


def protocol_flag(row: dict) -> str:
    """'' for a row produced by the published protocol on whole test sets, else what differed."""
    subset = str(row.get("subset") or "").strip().lower() not in ("", "false", "0", "none", "no", "nan")
    parts = [] if row.get("protocol") == STANDARD_PROTOCOL else [str(row.get("protocol"))]
    return "+".join(parts + (["subset"] if subset else []))


def selected_heads(classification: pd.DataFrame) -> pd.DataFrame:
    """For each (encoder, probe), the rows of the head chosen on the held-out split of train.

    A run with a single head needs no choice; with several and none marked, the cell stays missing.
    """
    if classification.empty:
        return classification
    flagged = classification["selected"].astype(str).str.strip().str.lower().isin(_TRUE)
    keep = []
    for _, group in classification.groupby(["label", "probe"], sort=False):
        chosen = group[flagged.loc[group.index]]
        if chosen.empty and group[["lr", "ema"]].drop_duplicates().shape[0] == 1:
            chosen = group
        keep.append(chosen.drop_duplicates(["test_set"], keep="last"))
    return pd.concat(keep) if keep else classification.iloc[0:0]


def latest_segmentation(segmentation: pd.DataFrame) -> pd.DataFrame:
    """The most recent row for each (encoder, dataset, mode)."""
    if segmentation.empty:
        return segmentation
    return segmentation.sort_values("date", kind="stable").drop_duplicates(["label", "dataset", "mode"], keep="last")
