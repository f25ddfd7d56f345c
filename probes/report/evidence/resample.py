"""Resample the report's cells: every requested cell of a set in as few `Bootstrap` passes as possible.

`accuracy_samples` / `miou_samples` read each cell's per-image vectors through `SideFiles`
(`evidence.per_image`); cells whose set lists the same images share one ``Bootstrap`` call (and so the
same resamples), which is what makes averages, Δ and version differences paired. A cell whose head or
run has training replicas is resampled hierarchically (`Bootstrap.over_replicas`): each resample draws
images and one replica. Every estimate says what it covers (its models, see `stats.covers`).

An estimate is the cell's `Samples`, or the one-line note of why it has none; `combine` / `mean` /
`difference` carry notes through the arithmetic. Nothing here raises for a bad side file.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Hashable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from probes.report.evidence.per_image import (Cell, Scored, SideFiles, Token, classification_replicas, model_of,
                                              no_interval, segmentation_replicas)
from probes.report.stats import Bootstrap, Samples, StatsError

# Cap on the columns one mIoU resampling call stacks (images x columns float64), to bound memory.
_MAX_SEGMENTATION_COLUMNS = 2048

Estimate = Union[Samples, str]  # a cell's resamples, or why it has none


class Resampler:
    """`Bootstrap` with a memory: a vector resampled once over a set's images is never resampled again.

    Keyed by (resample key, token): the resample key names the images (see `per_image.resample_key`), the token
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
