"""Per-image evidence of the report's cells: which side file a cell reads, and its per-image vectors.

A cell names its side file (a row's `predictions` column, relative to its CSV's folder), its set, its
head and the value the result CSV gives. `SideFiles` reads each file once and hands out per-image
vectors with the resample key of the images they score; `evidence.resample` turns them into resamples.

The resampling unit is the image. The key of a set is the name of the images it scores (its
`image_pool`: IN-1K and IN-ReaL are both the ImageNet val images) plus a fingerprint of the side
file's image ids (every image of the set, scored or not): the same images always get the same stream
(so two versions, two modes, or IN-1K and IN-ReaL scored on them are paired), different image lists
never pass for paired ones. IN-ReaL passes the images it scores (those with a label set) as a mask,
so one resample of the val images drives both scores.

Training seeds: a head trained K times (`probes classify --seeds K`: the side file holds `<head>_seed1`
... beside the head; segmentation: repeated runs of one configuration that differ only in
`randomness.seed`, see `evidence.replicas`) gives one vector per replica (`classification_replicas`,
`segmentation_replicas`).

A cell without per-image data gets a one-line note instead (no side file, a file that cannot be read,
a head or set it lacks, or a side file that disagrees with the CSV: a wrong head name must never put
someone else's interval on a cell). Nothing here raises for a bad side file.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Hashable, Optional, Tuple, Union

import numpy as np

from probes.errors import ProbeError
from probes.report.stats import miou
from probes.results import replica_head_name
from probes.sidefiles import (HeadPredictions, SegmentationCounts, SetPredictions, read_classification_predictions,
                              read_segmentation_counts)

NO_SIDE_FILE = "no per-image predictions: no interval"
# The CSV writes the same number the side file recomputes; a gap above this means the wrong head or run.
POINT_TOLERANCE = 0.05


@dataclass(frozen=True)
class Cell:
    """One table value to put an interval on: where its per-image data lives and what the CSV says."""

    side_file: Optional[Path]   # None: the row kept no per-image predictions
    set_name: str               # test set (classification) or dataset (segmentation)
    value: float                # the result CSV's value, checked against the side file
    head: str = ""              # the head's name in a classification side file
    note: str = ""              # set instead of a side file: why this cell has no interval
    replicas: Tuple[Path, ...] = ()   # segmentation: side files of the same run trained with other seeds


def side_file_of(csv_file: str, predictions: str) -> Optional[Path]:
    """A row's side file: its `predictions` path taken relative to the result CSV's folder, or None."""
    predictions = str(predictions or "").strip()
    return Path(csv_file).parent / predictions if predictions and predictions != "nan" else None


def fingerprint(ids: np.ndarray) -> str:
    """A short digest of an image-id list (order included): equal lists, equal fingerprints."""
    return hashlib.sha1("\n".join(ids.tolist()).encode("utf-8")).hexdigest()[:12]


# Sets that score the same images: IN-ReaL relabels the IN-1K validation images (same files, same ids).
IMAGE_POOLS = {"IN-1K": "ImageNet-val", "IN-ReaL": "ImageNet-val"}


def image_pool(set_name: str) -> str:
    """The name of the images a set scores: shared by sets that score the same images, else the set's name."""
    return IMAGE_POOLS.get(set_name, set_name)


def resample_key(set_name: str, ids: np.ndarray) -> str:
    """The Bootstrap set key of a set's images: the name of its image pool and its ids' fingerprint."""
    return f"{image_pool(set_name)}:{fingerprint(ids)}"


def no_interval(error: BaseException) -> str:
    """A cell's note for an error that left it without an interval: the error's one line."""
    return f"{' '.join(str(error).split())}: no interval"


def _off(side: float, table: float) -> Optional[str]:
    if math.isnan(table) or abs(side - table) <= POINT_TOLERANCE:
        return None
    return f"its side file gives {side:.2f}, the result CSV {table:.2f}: no interval"


class SideFiles:
    """Every side file the report needs, each read once; a file that cannot be read yields its note."""

    def __init__(self) -> None:
        self._classification: Dict[Path, Union[Dict[str, SetPredictions], str]] = {}
        self._segmentation: Dict[Path, Union[SegmentationCounts, str]] = {}
        self._fingerprints: Dict[Tuple[Path, str], str] = {}
        self.reads = 0  # files read from disk (each at most once)

    def classification(self, path: Path) -> Union[Dict[str, SetPredictions], str]:
        """{set: predictions} of a classification side file (top-5 dropped: the report needs `correct`)."""
        path = Path(path).resolve()
        if path not in self._classification:
            self.reads += 1
            try:
                sets = read_classification_predictions(path)
            except (ProbeError, OSError, ValueError) as error:
                self._classification[path] = no_interval(error)
            else:
                # Top-5 indices are 10 bytes per image and head, `correct` one: keep memory to what is used.
                self._classification[path] = {
                    name: SetPredictions(s.ids, s.labels, {h: HeadPredictions(np.empty((len(s), 0), np.int16),
                                                                               p.correct)
                                                           for h, p in s.heads.items()}, s.real_sets)
                    for name, s in sets.items()}
        return self._classification[path]

    def segmentation(self, path: Path) -> Union[SegmentationCounts, str]:
        """A segmentation side file's per-image counts."""
        path = Path(path).resolve()
        if path not in self._segmentation:
            self.reads += 1
            try:
                self._segmentation[path] = read_segmentation_counts(path)
            except (ProbeError, OSError, ValueError) as error:
                self._segmentation[path] = no_interval(error)
        return self._segmentation[path]

    def predictions(self, cell: Cell) -> Union[Tuple[SetPredictions, str], str]:
        """(the set's predictions, its resample key) for a classification cell, or why not."""
        if cell.side_file is None:
            return cell.note or NO_SIDE_FILE
        sets = self.classification(cell.side_file)
        if isinstance(sets, str):
            return sets
        if cell.set_name not in sets:
            return f"side file {cell.side_file.name} has no set {cell.set_name}: no interval"
        preds = sets[cell.set_name]
        if cell.head not in preds.heads:
            return f"side file {cell.side_file.name} has no head {cell.head} on {cell.set_name}: no interval"
        if not np.any(preds.scored()):
            return f"side file {cell.side_file.name} scores no image of {cell.set_name}: no interval"
        off = _off(preds.top1(cell.head), cell.value)
        if off:
            return f"{cell.set_name} {cell.head}: {off}"
        token = (Path(cell.side_file).resolve(), cell.set_name)
        if token not in self._fingerprints:
            # Every image of the set, scored or not: IN-ReaL's list is IN-1K's, so the two share a key.
            self._fingerprints[token] = resample_key(cell.set_name, preds.ids)
        return preds, self._fingerprints[token]

    def counts(self, cell: Cell) -> Union[Tuple[SegmentationCounts, str], str]:
        """(a segmentation cell's counts, its resample key), or why not."""
        if cell.side_file is None:
            return cell.note or NO_SIDE_FILE
        counts = self.segmentation(cell.side_file)
        if isinstance(counts, str):
            return counts
        if len(counts) == 0:
            return f"side file {cell.side_file.name} holds no image: no interval"
        off = _off(miou(counts.intersect, counts.union), cell.value)
        if off:
            return f"{cell.set_name}: {off}"
        token = (Path(cell.side_file).resolve(), "")
        if token not in self._fingerprints:
            self._fingerprints[token] = resample_key(cell.set_name, counts.ids)
        return counts, self._fingerprints[token]


Token = Hashable  # names one per-image vector: (side file, set, head) or (side file,)
Scored = Tuple[np.ndarray, Optional[np.ndarray]]  # (correct per image, scored mask or None: all scored)


def correct_vector(preds: SetPredictions, head: str) -> Scored:
    """(correct, scored) of a head over every image of its set; the mask only where some images are not scored."""
    scored = preds.scored()
    return preds.heads[head].correct, (None if scored.all() else scored)


def token_of(cell: Cell) -> Token:
    """The name of a cell's per-image vector, the same for every cell (and comparison) that reads it."""
    return (str(Path(cell.side_file).resolve()), cell.set_name, cell.head)


def model_of(cell: Cell) -> str:
    """The trained model a cell scores (its run's side file and head): the same for every set it scored, so
    all of them draw the same training replica on a resample."""
    return f"{Path(cell.side_file).resolve()}|{cell.head}"


def replica_heads(preds: SetPredictions, head: str) -> list[str]:
    """A head and its training replicas in a side file: [head, head_seed1, head_seed2, ...] while present."""
    names = [head]
    while replica_head_name(head, len(names)) in preds.heads:
        names.append(replica_head_name(head, len(names)))
    return names


def classification_replicas(preds: SetPredictions, cell: Cell) -> list[Tuple[Token, Scored]]:
    """(token, (correct, scored)) of every training replica of a cell's head, replica 0 (the cell's own) first."""
    base = token_of(cell)
    return [(base if r == 0 else (*base, r), correct_vector(preds, name))
            for r, name in enumerate(replica_heads(preds, cell.head))]


def segmentation_replicas(counts: SegmentationCounts, cell: Cell, side_files: "SideFiles"
                          ) -> list[Tuple[Token, Tuple[np.ndarray, np.ndarray]]]:
    """(token, (intersect, union)) of a segmentation cell's run and of its seed replicas that scored the very
    same images with the same classes (a replica that did not is left out: K counts the ones used)."""
    found = [(token_of(cell), (counts.intersect, counts.union))]
    for path in cell.replicas:
        other = side_files.segmentation(path)
        if (isinstance(other, str) or tuple(other.class_names) != tuple(counts.class_names)
                or not np.array_equal(other.ids, counts.ids)):
            continue
        found.append(((str(Path(path).resolve()), cell.set_name, cell.head), (other.intersect, other.union)))
    return found
