"""Segmentation metrics from summed pixel counts, defined as mmseg's IoUMetric defines them."""
from __future__ import annotations

import warnings

import numpy as np


def class_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Per-class 100 * numerator / denominator; NaN where the denominator is 0 (mmseg's 0/0)."""
    num, den = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * num / den


def mean_class_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Mean over the last (class) axis of ``class_ratio``, NaN classes skipped (mIoU, mAcc), in %."""
    ratios = class_ratio(numerator, denominator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row with every class NaN is NaN, on purpose
        return np.nanmean(ratios, axis=-1)


def miou(intersect: np.ndarray, union: np.ndarray) -> float:
    """mIoU (%) of per-image (n, K) or summed (K,) counts: mean IoU over classes with a union."""
    i, u = np.asarray(intersect), np.asarray(union)
    if i.ndim == 2:
        i, u = i.sum(axis=0), u.sum(axis=0)
    return float(mean_class_ratio(i, u))


def macc(intersect: np.ndarray, label_area: np.ndarray) -> float:
    """mAcc (%) of per-image (n, K) or summed (K,) counts: mean accuracy over classes with labels."""
    return miou(intersect, label_area)


def aacc(intersect: np.ndarray, label_area: np.ndarray) -> float:
    """aAcc (%): all correctly labelled pixels over all labelled pixels."""
    return float(100.0 * np.sum(intersect) / np.sum(label_area))
