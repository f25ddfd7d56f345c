"""Bootstrap intervals for the report's cells, from the per-image side files the runs keep.

A cell names its side file (a row's `predictions` column, relative to its CSV's folder), its set, its
head and the value the result CSV gives. `SideFiles` reads each file once and hands out per-image
vectors; `accuracy_samples` / `miou_samples` resample every requested cell of a set in as few passes
as possible: cells whose set lists the same images share one ``Bootstrap`` call (and so the same
resamples), which is what makes averages, Δ and version differences paired.

The resampling unit is the image. The key of a set is the name of the images it scores (its
`image_pool`: IN-1K and IN-ReaL are both the ImageNet val images) plus a fingerprint of the side
file's image ids (every image of the set, scored or not): the same images always get the same stream
(so two versions, two modes, or IN-1K and IN-ReaL scored on them are paired), different image lists
never pass for paired ones. IN-ReaL passes the images it scores (those with a label set) as a mask,
so one resample of the val images drives both scores.

Training seeds: a cell whose head was trained K times (`probes classify --seeds K`: the side file holds
`<head>_seed1` ... beside the head; segmentation: repeated runs of one configuration that differ only in
`randomness.seed`, see `replicas.py`) is resampled hierarchically (`Bootstrap.over_replicas`): each
resample draws images and one replica. Every interval says what it covers (`interval_covers`).

A cell without an interval keeps its value and gets a one-line note instead (no side file, a file that
cannot be read, a head or set it lacks, or a side file that disagrees with the CSV: a wrong head
name must never put someone else's interval on a cell). Nothing here raises for a bad side file.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Hashable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from probes.errors import ProbeError
from probes.report.render import INTERVAL_COVERS, ci_columns
from probes.report.stats import Bootstrap, Samples, StatsError, covers, interval, miou
from probes.results import replica_head_name
from probes.sidefiles import (HeadPredictions, SegmentationCounts, SetPredictions, read_classification_predictions,
                              read_segmentation_counts)

NO_SIDE_FILE = "no per-image predictions: no interval"
# The CSV writes the same number the side file recomputes; a gap above this means the wrong head or run.
POINT_TOLERANCE = 0.05
# Cap on the columns one mIoU resampling call stacks (images x columns float64), to bound memory.
_MAX_SEGMENTATION_COLUMNS = 2048

Estimate = Union[Samples, str]  # a cell's resamples, or why it has none


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


class Resampler:
    """`Bootstrap` with a memory: a vector resampled once over a set's images is never resampled again.

    Keyed by (resample key, token): the resample key names the images (see `resample_key`), the token
    the vector, so a version comparison on the images the tables already resampled (the usual case:
    both versions scored the whole set) reuses the tables' resamples instead of drawing them again.
    """

    def __init__(self, bootstrap: Bootstrap) -> None:
        self.bootstrap = bootstrap
        self._done: Dict[Tuple[str, Token], Samples] = {}

    def accuracies(self, set_key: str, vectors: Mapping[Token, Scored]) -> Dict[Token, Samples]:
        """Resampled top-1 of each (correct, scored) vector (all over the same images), one pass for those not
        done yet."""
        todo = {t: v for t, v in vectors.items() if (set_key, t) not in self._done}
        if todo:
            correct = {t: c for t, (c, _) in todo.items()}
            scored = {t: m for t, (_, m) in todo.items() if m is not None}
            self._done.update({(set_key, t): s
                               for t, s in self.bootstrap.accuracies(set_key, correct, scored).items()})
        return {t: self._done[(set_key, t)] for t in vectors}

    def class_ratios(self, set_key: str, pairs: Mapping[Token, Tuple[np.ndarray, np.ndarray]]
                     ) -> Dict[Token, Samples]:
        """Resampled mIoU of each (intersect, union) pair, in batches that bound the stacked columns."""
        todo = {t: p for t, p in pairs.items() if (set_key, t) not in self._done}
        batch: Dict[Token, Tuple[np.ndarray, np.ndarray]] = {}
        columns = 0
        for token, pair in todo.items():  # every batch of a set draws the same stream: still paired
            if batch and columns + 2 * pair[0].shape[1] > _MAX_SEGMENTATION_COLUMNS:
                self._run(set_key, batch)
                batch, columns = {}, 0
            batch[token] = pair
            columns += 2 * pair[0].shape[1]
        if batch:
            self._run(set_key, batch)
        return {t: self._done[(set_key, t)] for t in pairs}

    def _run(self, set_key: str, batch: Mapping[Token, Tuple[np.ndarray, np.ndarray]]) -> None:
        self._done.update({(set_key, t): s for t, s in self.bootstrap.class_ratios(set_key, batch).items()})


def over_replicas(bootstrap: Bootstrap, model: str, replicas: Sequence[Samples]) -> Estimate:
    """`Bootstrap.over_replicas`, or the one-line note of why the replicas cannot be combined."""
    try:
        return bootstrap.over_replicas(model, replicas)
    except StatsError as error:
        return no_interval(error)


def _grouped_samples(cells: Mapping[Hashable, Cell], read: Callable, replicas: Callable, run: Callable,
                     bootstrap: Bootstrap) -> Dict[Hashable, Estimate]:
    """Resample every cell once per image list: `read` a cell's side-file data (or a note), take its
    `replicas` ([(token, vector)], replica 0 first), `run` the resampler on all the vectors of one image
    list (one resample key) together, and draw each cell's replica per resample."""
    out: Dict[Hashable, Estimate] = {}
    groups: Dict[str, Dict[Token, Any]] = {}
    keys: Dict[Hashable, Tuple[str, list, str]] = {}
    for key, cell in cells.items():
        found = read(cell)
        if isinstance(found, str):
            out[key] = found
            continue
        data, set_key = found
        vectors = replicas(data, cell)
        keys[key] = (set_key, [t for t, _ in vectors], model_of(cell))
        groups.setdefault(set_key, {}).update(vectors)
    done = {(k, t): s for k, batch in groups.items() for t, s in run(k, batch).items()}
    return {**out, **{key: over_replicas(bootstrap, model, [done[(set_key, t)] for t in tokens])
                      for key, (set_key, tokens, model) in keys.items()}}


def accuracy_samples(cells: Mapping[Hashable, Cell], side_files: SideFiles,
                     resampler: Resampler) -> Dict[Hashable, Estimate]:
    """Each cell's resampled top-1, one `Bootstrap.accuracies` pass per image list (IN-1K and IN-ReaL: one),
    over images and the head's training replicas when its side file holds them."""
    return _grouped_samples(cells, side_files.predictions, classification_replicas, resampler.accuracies,
                            resampler.bootstrap)


def miou_samples(cells: Mapping[Hashable, Cell], side_files: SideFiles,
                 resampler: Resampler) -> Dict[Hashable, Estimate]:
    """Each cell's resampled mIoU (images resampled, intersections / unions summed), shared per image list,
    over images and the run's seed replicas when there are some."""
    return _grouped_samples(cells, side_files.counts,
                            lambda counts, cell: segmentation_replicas(counts, cell, side_files),
                            resampler.class_ratios, resampler.bootstrap)


def combine(function: Callable[..., Samples], *items: Optional[Estimate]) -> Optional[Estimate]:
    """`function` of several estimates: None if a value is missing, the first note if one has none."""
    if any(item is None for item in items):
        return None
    notes = [item for item in items if isinstance(item, str)]
    if notes:
        return notes[0]
    try:
        return function(*items)
    except StatsError as error:
        return no_interval(error)


def mean(items: Sequence[Optional[Estimate]]) -> Optional[Estimate]:
    """The per-resample mean of several estimates (None if any value is missing)."""
    return combine(lambda *xs: Samples.mean(list(xs)), *items)


def difference(minuend: Optional[Estimate], subtrahend: Optional[Estimate]) -> Optional[Estimate]:
    """minuend − subtrahend, resample by resample."""
    return combine(lambda a, b: a - b, minuend, subtrahend)


def fill(frame: pd.DataFrame, estimates: Sequence[Mapping[str, Optional[Estimate]]], note_column: str = "note",
         level: float = 0.95) -> pd.DataFrame:
    """Write each row's intervals into its `X ci_low` / `X ci_high` columns, its notes into `note`, and what
    its intervals resample into `interval_covers` ('' for a row without one).

    ``estimates[i]`` maps value columns of row i to their estimates; a column whose row value is
    missing gets no interval and no note.
    """
    frame = frame.copy()
    notes, covered = [], []
    for position, (index, row_estimates) in enumerate(zip(frame.index, estimates)):
        said: list[str] = []
        models: Dict[str, int] = {}
        shown = False
        for column, estimate in row_estimates.items():
            if estimate is None or pd.isna(frame.at[index, column]):
                continue
            if isinstance(estimate, str):
                if estimate not in said:
                    said.append(estimate)
                continue
            low, high = ci_columns(column)
            frame.at[index, low], frame.at[index, high] = interval(estimate, level)
            models.update(estimate.models)
            shown = True
        notes.append("; ".join(said))
        covered.append(covers(models) if shown else "")
    if len(frame):
        frame[note_column] = notes
        frame[INTERVAL_COVERS] = covered
    return frame
