"""The result-row schemas every command writes and `probes report` reads, and atomic CSV appends."""
from __future__ import annotations

import csv
import fcntl
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

TEST_SETS = ("IN-1K", "IN-ReaL", "IN-V2", "IN-A", "IN-R", "IN-Sketch")
PROBES = ("linear", "attention_pooling")
BASELINES = ("knn", "logreg")  # scikit-learn baselines on cached pooled features
DATASETS = ("ADE20K", "COCO-Stuff")
MODES = ("linear", "head", "full")
# `protocol` is one word: `published` (the published recipe, whole test sets), or what departed
# from it (`modified`, `cached`, `demo`); `protocol_notes` lists every change.
STANDARD_PROTOCOL = "published"

CLASSIFICATION_COLUMNS = (
    "encoder", "encoder_version", "probe", "lr", "ema", "test_set", "n_images", "top1", "epochs",
    "image_size", "protocol", "protocol_notes", "subset", "selected", "heldout_top1", "n_skipped", "date")
SEGMENTATION_COLUMNS = (
    "encoder", "encoder_version", "dataset", "mode", "mIoU", "aAcc", "mAcc", "n_images", "iters",
    "crop_size", "batch_size", "trainable_params", "protocol", "protocol_notes", "config", "date")


def append_rows(path: Path, rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> Path:
    """Append rows to a CSV by rewriting it to a temporary file and renaming it over the old one.

    A reader never sees a half-written file, and a kill at any point leaves the old file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several runs may share one --out folder
        existing: list[dict[str, str]] = []
        header = list(columns)
        if path.is_file():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                existing = list(reader)
                header += [c for c in (reader.fieldnames or []) if c not in header]
        header += [c for row in rows for c in row if c not in header]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(existing)
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a result CSV (empty if it does not exist yet)."""
    if not Path(path).is_file():
        return []
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))
