"""Where two versions differ: per-class scores of A and B on shared images, largest gains and losses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from probes.report.stats.bootstrap import StatsError
from probes.report.stats.compare import shared_images
from probes.report.stats.metrics import class_ratio
from probes.sidefiles import SegmentationCounts, SetPredictions

COLUMNS = ("class_index", "class_name", "a", "b", "change", "n")


@dataclass(frozen=True)
class ClassChanges:
    """Per-class scores (%) of A and B: every class with a score in both, and the top-k gains / losses.

    Columns of each frame: class_index, class_name, a, b, change (= b - a, points), n (images of the
    class for classification, labelled pixels for segmentation).
    """

    classes: pd.DataFrame  # every class scored by both, largest change first
    gains: pd.DataFrame    # change > 0, largest first (at most k)
    losses: pd.DataFrame   # change < 0, most negative first (at most k)


def _changes(a: np.ndarray, b: np.ndarray, n: np.ndarray, class_names: Optional[Sequence[str]], k: int,
             min_n: int) -> ClassChanges:
    index = np.arange(len(a))
    names = [str(i) for i in index] if class_names is None else [str(x) for x in class_names]
    if len(names) != len(a):
        raise StatsError(f"{len(names)} class names for {len(a)} classes")
    frame = pd.DataFrame({"class_index": index, "class_name": names, "a": a, "b": b, "change": b - a, "n": n})
    frame = frame[np.isfinite(frame["change"].to_numpy()) & (frame["n"].to_numpy() >= min_n)]
    # Ties broken by class index so the lists are reproducible.
    ranked = frame.sort_values(["change", "class_index"], ascending=[False, True], kind="stable")
    gains = ranked[ranked["change"] > 0].head(k)
    losses = frame[frame["change"] < 0].sort_values(["change", "class_index"], kind="stable").head(k)
    return ClassChanges(*(f.reset_index(drop=True) for f in (ranked, gains, losses)))


def accuracy_class_changes(labels: np.ndarray, correct_a: np.ndarray, correct_b: np.ndarray,
                           class_names: Optional[Sequence[str]] = None, k: int = 10, min_n: int = 1,
                           num_classes: Optional[int] = None) -> ClassChanges:
    """Per true class accuracy of A and B from aligned per-image (label, correct) vectors."""
    labels = np.asarray(labels, dtype=np.int64)
    size = num_classes or (len(class_names) if class_names is not None else int(labels.max()) + 1)
    n = np.bincount(labels, minlength=size)
    right_a = np.bincount(labels, weights=np.asarray(correct_a, dtype=np.float64), minlength=size)
    right_b = np.bincount(labels, weights=np.asarray(correct_b, dtype=np.float64), minlength=size)
    return _changes(class_ratio(right_a, n), class_ratio(right_b, n), n, class_names, k, min_n)


def classification_class_changes(a: SetPredictions, head_a: str, b: SetPredictions, head_b: str,
                                 class_names: Optional[Sequence[str]] = None, k: int = 10,
                                 min_n: int = 1) -> ClassChanges:
    """Per true class top-1 of two versions' heads on the images of one test set both scored.

    ``class_names`` defaults to the 1000 ImageNet names (all our sets use the 1000-class index).
    """
    if a.labels is None or b.labels is None:
        raise StatsError("per-class changes need one true class per image; IN-ReaL has label sets (use IN-1K)")
    where_a, where_b = shared_images(a.ids, b.ids)
    if len(where_a) == 0:
        raise StatsError("versions A and B share no scored image")
    labels = a.labels[where_a]
    if not np.array_equal(labels, b.labels[where_b]):
        raise StatsError("versions A and B give different true labels to the same image ids")
    if class_names is None:
        from probes.report.class_names import imagenet_class_names

        class_names = imagenet_class_names()
    return accuracy_class_changes(labels, a.heads[head_a].correct[where_a], b.heads[head_b].correct[where_b],
                                  class_names, k, min_n)


def segmentation_class_changes(a: SegmentationCounts, b: SegmentationCounts, k: int = 10,
                               min_n: int = 1) -> ClassChanges:
    """Per-class IoU of two runs from the counts summed over the validation images both scored."""
    if tuple(a.class_names) != tuple(b.class_names):
        raise StatsError("the two runs have different class lists")
    where_a, where_b = shared_images(a.ids, b.ids)
    if len(where_a) == 0:
        raise StatsError("runs A and B share no validation image")
    iou_a = class_ratio(a.intersect[where_a].sum(axis=0), a.union[where_a].sum(axis=0))
    iou_b = class_ratio(b.intersect[where_b].sum(axis=0), b.union[where_b].sum(axis=0))
    pixels = a.label_area[where_a].sum(axis=0)
    if not np.array_equal(pixels, b.label_area[where_b].sum(axis=0)):
        raise StatsError("runs A and B count different labelled pixels on the same images (another annotation set?)")
    return _changes(iou_a, iou_b, pixels, a.class_names, k, min_n)
