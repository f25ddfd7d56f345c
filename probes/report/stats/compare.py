"""Paired comparison of two versions on the images both scored: B - A, its interval and a p-value.

Method: a paired bootstrap. Both versions are resampled with the SAME image indices (match by image
id, then one ``Bootstrap`` stream), giving R values of the difference Δ* = B* - A*.

* interval: percentile interval of Δ* (per comparison, not adjusted for multiplicity).
* p-value (two-sided): the bootstrap distribution of the difference centred at zero approximates the
  null distribution of the observed difference Δ, so p = (1 + #{|Δ* - Δ| >= |Δ|}) / (R + 1)
  (Hall & Wilson 1991: resample the centred statistic; the +1's make it a valid Monte-Carlo p-value,
  never 0, resolution 1 / (R + 1)).
* ``p_adjusted``: the p-value adjusted over the family of comparisons it was made in (``adjust``:
  Holm); one ``compare`` call alone is a family of one (p_adjusted = p_value).
  ``significant`` = p_adjusted < 1 - level.

Why this one rather than McNemar's exact test or a sign-flip permutation test: those are exact for
one accuracy on one set, but a report also compares averages over sets and mIoU (a ratio of sums,
not a per-image mean); the centred bootstrap works for any statistic built from paired ``Samples``
(``compare`` below), so every p-value in a report comes from one method and the same resamples as
its interval. Its calibration is checked in tests/report/test_stats.py (equal-rate flips: p > 0.05 in
>= 90 of 100 seeds; the family-wise error of Holm's marks over many null cells). Near the threshold
the interval excluding 0 and ``p_value < 0.05`` can disagree by a resample or two: they are two
readings of the same distribution, not the same rule; after adjustment a cell whose interval
excludes 0 may well be unmarked.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Hashable, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from probes.report.stats.bootstrap import Bootstrap, Samples, StatsError, interval
from probes.report.stats.multiplicity import holm
from probes.sidefiles import SegmentationCounts, SetPredictions


@dataclass(frozen=True)
class Comparison:
    """B - A on the shared images: difference with its interval, raw and adjusted p-value, image count.

    ``n`` counts each image once (IN-1K and IN-ReaL score the same images); ``significant`` is
    ``p_adjusted < 1 - level``.
    """

    a: float
    b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    significant: bool
    n: int
    level: float = 0.95
    covers: str = "test images"   # what the interval and p-value resample (see `covers`)


def compare(a: Samples, b: Samples, level: float = 0.95) -> Comparison:
    """Compare two statistics resampled with the same streams (e.g. two versions' averages over sets)."""
    if {s[0] for s in a.sources} != {s[0] for s in b.sources}:
        raise StatsError("compare() needs both statistics resampled over the same sets: "
                         f"{sorted(s[0] for s in a.sources)} vs {sorted(s[0] for s in b.sources)}")
    delta = b - a  # refuses unpaired streams of one set
    low, high = interval(delta, level)
    # Centred at the observed difference; the tolerance keeps float noise from flipping ties
    # (identical versions: every |Δ* - Δ| is 0 >= 0, so p = 1). With training replicas the resamples
    # spread around the replicas' mean difference (`centre`), which is then the tested statistic.
    extreme = np.count_nonzero(np.abs(delta.values - delta.centre) >= abs(delta.centre) - 1e-9)
    p_value = min(1.0, (1 + extreme) / (delta.n_resamples + 1))
    return Comparison(a=a.point, b=b.point, difference=delta.point, ci_low=low, ci_high=high, p_value=p_value,
                      p_adjusted=p_value, significant=bool(p_value < 1.0 - level), n=delta.n_images, level=level,
                      covers=covers(delta.models))


def covers(models: Mapping[str, int]) -> str:
    """What an interval resamples, from its `Samples.models`: 'test images', or 'test images + training seeds
    (K=3)' (and for how many of its trained models, when only some had replicas)."""
    replicated = {m: k for m, k in models.items() if k > 1}
    if not replicated:
        return "test images"
    ks = sorted(set(replicated.values()))
    k = f"K={ks[0]}" if len(ks) == 1 else f"K={ks[0]}–{ks[-1]}"
    if len(replicated) == len(models):
        return f"test images + training seeds ({k})"
    return f"test images + training seeds ({k}) for {len(replicated)} of {len(models)} models"


K = TypeVar("K", bound=Hashable)


def adjust(family: Mapping[K, Union[Comparison, str]]) -> Dict[K, Union[Comparison, str]]:
    """The family's comparisons with Holm-adjusted p-values and ``significant`` read from them.

    Entries that are not comparisons (a note why a cell has none) pass through and are not tests.
    """
    keys = [k for k, c in family.items() if isinstance(c, Comparison)]
    adjusted = holm([family[k].p_value for k in keys])
    out = dict(family)
    for key, p in zip(keys, adjusted.tolist()):
        out[key] = dataclasses.replace(family[key], p_adjusted=p, significant=bool(p < 1.0 - family[key].level))
    return out


def shared_images(ids_a: Sequence[str], ids_b: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """(positions in A, positions in B) of the images both list, in sorted-id order."""
    ids_a, ids_b = np.asarray(ids_a, dtype=str), np.asarray(ids_b, dtype=str)
    for which, ids in (("A", ids_a), ("B", ids_b)):
        if len(np.unique(ids)) != len(ids):
            raise StatsError(f"version {which} lists an image id twice; ids must be unique to pair images")
    _, where_a, where_b = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    return where_a, where_b


def compare_accuracy(ids_a: Sequence[str], correct_a: np.ndarray, ids_b: Sequence[str], correct_b: np.ndarray,
                     set_key: str, bootstrap: Optional[Bootstrap] = None, level: float = 0.95) -> Comparison:
    """Accuracy B - A (points) on the images both scored, paired by image id."""
    where_a, where_b = shared_images(ids_a, ids_b)
    if len(where_a) == 0:
        raise StatsError(f"set {set_key}: versions A and B share no scored image")
    samples = (bootstrap or Bootstrap()).accuracies(
        set_key, {"a": np.asarray(correct_a, dtype=bool)[where_a], "b": np.asarray(correct_b, dtype=bool)[where_b]})
    return compare(samples["a"], samples["b"], level)


def compare_classification(a: SetPredictions, head_a: str, b: SetPredictions, head_b: str, set_key: str,
                           bootstrap: Optional[Bootstrap] = None, level: float = 0.95) -> Comparison:
    """Top-1 B - A of two heads (two versions) on one test set, on the images both scored."""
    ids_a, correct_a = a.scored_correct(head_a)
    ids_b, correct_b = b.scored_correct(head_b)
    return compare_accuracy(ids_a, correct_a, ids_b, correct_b, set_key, bootstrap, level)


def compare_segmentation(a: SegmentationCounts, b: SegmentationCounts, set_key: str, metric: str = "mIoU",
                         bootstrap: Optional[Bootstrap] = None, level: float = 0.95) -> Comparison:
    """mIoU (or mAcc) B - A of two segmentation runs on the validation images both scored."""
    if tuple(a.class_names) != tuple(b.class_names):
        raise StatsError(f"set {set_key}: the two runs have different class lists")
    if metric not in ("mIoU", "mAcc"):
        raise ValueError(f"metric must be mIoU or mAcc, got {metric!r}")
    where_a, where_b = shared_images(a.ids, b.ids)
    if len(where_a) == 0:
        raise StatsError(f"set {set_key}: runs A and B share no validation image")

    def pair(run: SegmentationCounts, where: np.ndarray):
        denominator = run.union if metric == "mIoU" else run.label_area
        return run.intersect[where], denominator[where]

    samples = (bootstrap or Bootstrap()).class_ratios(set_key, {"a": pair(a, where_a), "b": pair(b, where_b)})
    return compare(samples["a"], samples["b"], level)
