"""The result-row schemas every command writes and `probes report` reads, and atomic CSV appends."""
from __future__ import annotations

import contextlib
import csv
import fcntl
import math
import os
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Sequence

from probes.io import write_atomic

TEST_SETS = ("IN-1K", "IN-ReaL", "IN-V2", "IN-A", "IN-R", "IN-Sketch")
PROBES = ("linear", "attention_pooling")
BASELINES = ("knn", "logreg")  # scikit-learn baselines on cached pooled features
DATASETS = ("ADE20K", "COCO-Stuff")
MODES = ("linear", "head", "full")

# `protocol` is one word: `published` (the published recipe, whole test sets), or what departed
# from it (`modified`, `lr-grid`, `cached`, `demo`); `protocol_notes` lists every change.
STANDARD_PROTOCOL = "published"
MODIFIED_PROTOCOL = "modified"
LR_GRID_PROTOCOL = "lr-grid"       # a head of the lr x EMA selection grid, not the published head
CACHED_PROTOCOL = "cached"         # heads trained on cached features (no augmentation)
RANDOM_WEIGHTS_PROTOCOL = "random-weights"  # seeded random weights (random:, untagged timm): never published
# `head`: which head of a classification run a row scores.
PUBLISHED_HEAD = "published"       # base lr 0.1 per 512 images, raw weights, final epoch
GRID_HEAD = "grid"                 # any other (lr, EMA) of the sweep; one per probe is `selected`

# Column order of the result CSVs. Every row names its run (`run_id`); `predictions` is the path of
# the run's per-image side file relative to the CSV's folder ('' when none was kept).
CLASSIFICATION_COLUMNS = (
    "run_id", "encoder", "encoder_version", "probe", "layer", "head", "lr", "ema", "test_set",
    "n_images", "top1", "max_over_epochs_top1", "epochs", "image_size", "precision", "protocol",
    "protocol_notes", "subset", "selected", "heldout_top1", "n_skipped", "predictions", "date",
    "n_skipped_train", "seeds")
# `n_skipped`: files of the row's test set left out as unreadable (data.on_corrupt='skip');
# `n_skipped_train`: training files left out (held-out split included). Older CSVs lack the latter.
# `seeds`: the training replicas of the row's head (`train.seeds`); the row scores replica 0, the side
# file holds the others as `<head>_seed<r>` (`replica_head_name`). Older CSVs lack it (one replica).
# A run's per-epoch scores (`OUT/epochs/<run_id>.csv`): what the official loop logs after every epoch.
EPOCH_COLUMNS = ("run_id", "epoch", "probe", "head", "lr", "ema", "layer", "test_set", "top1")
SEGMENTATION_COLUMNS = (
    "run_id", "encoder", "encoder_version", "dataset", "mode", "mIoU", "best_mIoU", "best_iter",
    "aAcc", "mAcc", "n_images", "iters", "crop_size", "batch_size", "trainable_params", "precision",
    "protocol", "protocol_notes", "config", "predictions", "date", "subset")


def set_average(values: Mapping[str, Optional[float]], sets: Sequence[str] = TEST_SETS) -> float:
    """The mean over every one of `sets`, NaN when any is missing or NaN (never a mean of what happens to be there).

    The one rule for an average over test sets (or datasets): the report's tables and the classify
    terminal summary both use it, so they never disagree about an incomplete run.
    """
    found = [values.get(s) for s in sets]
    if not found or any(v is None or math.isnan(float(v)) for v in found):
        return float("nan")
    return sum(float(v) for v in found) / len(found)


def missing_sets(values: Mapping[str, Optional[float]], sets: Sequence[str] = TEST_SETS) -> list[str]:
    """The sets among `sets` without a value (why `set_average` is NaN)."""
    return [s for s in sets if values.get(s) is None or math.isnan(float(values[s]))]


def prediction_head_name(probe: str, lr: object, ema: object, layer: object, grid_twin: bool = False) -> str:
    """How a row's head is named inside its run's classification side file, e.g. `linear_lr0.1_L24_raw`.

    `layer` is the row's `layer` column (the block counted from 1); `ema` True/False (or 'True'/'False').
    The published head keeps the plain name; a grid head with the same probe, lr, weights and block (its
    `grid_twin`, trained without the held-out images) is `..._raw_grid`.
    """
    is_ema = str(ema).strip().lower() in ("true", "1")
    lr_text = f"{float(lr):g}" if str(lr).strip() not in ("", "None", "nan") else "na"
    layer_text = str(int(float(layer))) if str(layer).strip() not in ("", "None", "nan") else "last"
    return f"{probe}_lr{lr_text}_L{layer_text}_{'ema' if is_ema else 'raw'}" + ("_grid" if grid_twin else "")


def replica_head_name(head: str, replica: int) -> str:
    """A training replica's name in a classification side file: replica 0 is the head itself, r > 0 `<head>_seed<r>`."""
    return head if replica == 0 else f"{head}_seed{replica}"


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path`, and remove the file when done (nothing is left in the folder).

    The file is unlinked while still locked: a process that was waiting on it then holds a lock on a file no
    longer at that path, sees so, and locks the path again, so two writers never hold "the" lock at once.
    """
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)


def append_rows(path: Path, rows: Iterable[Mapping[str, object]], columns: Sequence[str],
                replace_run: str | None = None) -> Path:
    """Append rows to a CSV by rewriting it to a temporary file and renaming it over the old one.

    A reader never sees a half-written file, and a kill at any point leaves the old file intact. With
    `replace_run`, the rows of that run id are dropped in the same write (`--overwrite`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    with locked(path.with_name(f".{path.name}.lock")):  # several runs may share one --out folder
        existing: list[dict[str, str]] = []
        header = list(columns)
        if path.is_file():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                existing = [r for r in reader if replace_run is None or r.get("run_id") != replace_run]
                header += [c for c in (reader.fieldnames or []) if c not in header]
        header += [c for row in rows for c in row if c not in header]

        def write(handle) -> None:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(existing)
            writer.writerows(rows)

        write_atomic(path, write, newline="")
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a result CSV (empty if it does not exist yet)."""
    if not Path(path).is_file():
        return []
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def run_finished(path: Path, run_id: str) -> bool:
    """Whether the CSV already holds rows of this run (rows are written only when a run ends)."""
    return any(row.get("run_id") == run_id for row in read_rows(path))
