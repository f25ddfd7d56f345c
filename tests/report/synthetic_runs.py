"""Hand-made runs for report statistics: result rows plus the per-image side files the runners keep.

Classification: every test set holds `n` images of classes 0..9 (IN-ReaL: label sets, a few empty),
and a head is a per-image correct vector; the CSV's top1 is that vector's accuracy, exactly as a
runner would write it. Segmentation: per-image intersection / union counts over a few classes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from probes.encoders.versions import VERSIONS
from probes.report.evidence.per_image import image_pool
from probes.report.stats import miou
from probes.results import TEST_SETS, prediction_head_name, replica_head_name
from probes.sidefiles import (HeadPredictions, RealLabels, SetPredictions, write_classification_predictions,
                              write_segmentation_counts)

from .test_report import cls_rows, seg_row

N_CLASSES = 10


def image_ids(test_set: str, n: int) -> np.ndarray:
    """The ids of a set's images (the same for every run: one dataset; IN-ReaL's are IN-1K's, as a runner
    writes them: the same validation files under a second score)."""
    return np.array([f"{image_pool(test_set)}/img_{i:05d}.JPEG" for i in range(n)])


def labels_of(test_set: str, n: int) -> np.ndarray:
    """Each image's class: image i is class i mod 10 (so classes are balanced and predictable)."""
    return np.arange(n) % N_CLASSES


def real_sets(n: int) -> RealLabels:
    """ReaL label sets: every tenth image has none (not scored), the others their class and the next."""
    return RealLabels.from_lists([() if i % 10 == 9 else (i % N_CLASSES, (i + 1) % N_CLASSES) for i in range(n)])


def random_correct(seed: int, n: int, accuracy: float) -> np.ndarray:
    """A per-image correct vector with about `accuracy` of the images right."""
    return np.random.default_rng(seed).random(n) < accuracy


def top1(test_set: str, correct: np.ndarray) -> float:
    """A head's top-1 (%) under the set's rule, as the runner writes it into the CSV."""
    if test_set == "IN-ReaL":
        scored = real_sets(len(correct)).scored()
        return 100.0 * float(np.mean(correct[scored]))
    return 100.0 * float(np.mean(correct))


def write_classification_run(folder: Path, run_id: str, version: str,
                             heads: Mapping[tuple, Mapping[str, np.ndarray]], side_file: Optional[str] = "auto",
                             date: str = "2026-11-01", last_layer: int = 24,
                             replicas: Optional[Mapping[tuple, Sequence[Mapping[str, np.ndarray]]]] = None
                             ) -> list[dict]:
    """Result rows of one run (and its side file): `heads` maps (probe, layer) to {test set: correct vector}.

    Every head is lr 0.1, raw weights and selected on the held-out split; the last layer's heads are the
    published ones. `side_file` None writes no side file and leaves `predictions` empty. `replicas` maps
    (probe, layer) to the correct vectors of its training replicas 1, 2, ... (`--seeds`), kept in the side
    file only, as the runner keeps them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{run_id}_predictions.npz" if side_file == "auto" else side_file
    rows, sets = [], {}
    for (probe, layer), per_set in heads.items():
        head = prediction_head_name(probe, 0.1, False, layer)
        scores = {s: top1(s, c) for s, c in per_set.items()}
        size = VERSIONS[version].image_size if version in VERSIONS else 224  # native: no ' @size' in labels
        rows += cls_rows(f"/ckpt/{version}", version, size, probe, scores, run_id=run_id, date=date, layer=layer,
                         head="published" if layer == last_layer else "grid", predictions=name or "")
        for test_set, correct in per_set.items():
            n = len(correct)
            if test_set not in sets:
                real = real_sets(n) if test_set == "IN-ReaL" else None
                sets[test_set] = SetPredictions(image_ids(test_set, n), None if real else labels_of(test_set, n),
                                                {}, real)
            top5 = np.zeros((n, 5), dtype=np.int16)
            sets[test_set].heads[head] = HeadPredictions(top5, np.asarray(correct, dtype=bool))
            for r, more in enumerate((replicas or {}).get((probe, layer), ()), start=1):
                sets[test_set].heads[replica_head_name(head, r)] = HeadPredictions(
                    top5, np.asarray(more[test_set], dtype=bool))
    if name and side_file == "auto":
        write_classification_predictions(folder / name, sets)
    return rows


def both_probes(seed: int, n: int = 400, linear: float = 0.7, attention: float = 0.8,
                sets: Sequence[str] = TEST_SETS, layer: int = 24) -> dict:
    """{(probe, layer): {set: correct}} of one run's two probes on every set, at about the given accuracies."""
    return {("linear", layer): {s: random_correct(seed + i, n, linear) for i, s in enumerate(sets)},
            ("attention_pooling", layer): {s: random_correct(seed + 100 + i, n, attention)
                                           for i, s in enumerate(sets)}}


def plant_gain(correct: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """A copy with `fraction` of all images turned from wrong to right (a real gain of 100 x fraction points)."""
    out = correct.copy()
    wrong = np.flatnonzero(~out)
    out[np.random.default_rng(seed).choice(wrong, size=int(round(fraction * len(out))), replace=False)] = True
    return out


# ----------------------------------------------------------------------------- segmentation
SEG_CLASSES = ("wall", "sky", "tree", "road", "person")


def segmentation_counts(seed: int, n: int = 60, quality: float = 0.6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image (n, 5) intersection, union and label counts with per-class IoU around `quality`."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 400, size=(n, len(SEG_CLASSES))) * (rng.random((n, len(SEG_CLASSES))) < 0.7)
    intersect = (label * rng.beta(10 * quality, 10 * (1 - quality), size=label.shape)).astype(np.int64)
    union = label + (label - intersect) // 2
    return intersect, union, label


def write_segmentation_run(folder: Path, run_id: str, version: str, dataset: str, mode: str,
                           counts: tuple[np.ndarray, np.ndarray, np.ndarray], side_file: bool = True,
                           class_names: Sequence[str] = SEG_CLASSES) -> dict:
    """One segmentation result row and its counts side file; the row's mIoU is the counts' mIoU."""
    folder.mkdir(parents=True, exist_ok=True)
    intersect, union, label = counts
    name = f"{run_id}_counts.npz" if side_file else ""
    if side_file:
        ids = [f"{dataset}/val_{i:04d}.png" for i in range(len(intersect))]
        write_segmentation_counts(folder / name, ids, intersect, union, label, class_names)
    return seg_row(version, dataset, mode, miou(intersect, union), encoder=f"/ckpt/{version}", run_id=run_id,
                   predictions=name)
