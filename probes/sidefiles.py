"""Per-image side files a run keeps beside its result CSV, so that a report can put intervals on its numbers.

Two kinds, each one compressed ``.npz`` (numpy only, no pickles) written atomically:

* classification predictions, one file per run: for every scored set (IN-1K, IN-ReaL, IN-V2, IN-A,
  IN-R, IN-Sketch, the held-out split) the image ids, the true labels (IN-ReaL: the ReaL label sets,
  ragged) and, per kept head, the top-5 class indices and whether the image was correct under the
  set's own rule;
* segmentation counts, one file per run: per validation image and class the intersection, union and
  label pixel counts that mmseg's ``IoUMetric`` accumulates, so mIoU / mAcc / aAcc can be recomputed
  on any subset or resample of the images.

Rows are stored sorted by image id, so two files of the same set that hold the same images line up
position by position. Keys (``S`` a set name, ``H`` a head key; names may not contain ``/``):

classification: ``format``, ``version``, ``sets`` (names); ``S/ids`` (UTF-8 bytes, ids joined by
``\\n``); ``S/labels`` (int32, n) or ``S/real_offsets`` (int64, n + 1) + ``S/real_values`` (int16);
``S/heads`` (names); ``S/head/H/top5`` (int16, n x 5, best first); ``S/head/H/correct`` (bool, n).

segmentation: ``format``, ``version``, ``ids`` (UTF-8, ``\\n``-joined), ``class_names`` (UTF-8,
``\\n``-joined), ``intersect``, ``union``, ``label_area`` (int64, n_images x n_classes), ``class_iou``
(float64, n_classes, in %, NaN where a class has no union in the whole set).
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from probes.errors import DatasetError
from probes.io import PathLike, atomic_path

CLASSIFICATION_FORMAT = "probes.classification_predictions"
SEGMENTATION_FORMAT = "probes.segmentation_counts"
FORMAT_VERSION = 1


class SideFileError(DatasetError):
    """A side file that is missing, truncated, corrupt, or lacks a key: named by path."""


# ----------------------------------------------------------------------------- records
@dataclass(frozen=True)
class RealLabels:
    """ReaL label sets stored ragged: the set of image i is ``values[offsets[i]:offsets[i + 1]]``."""

    offsets: np.ndarray  # int64, n + 1, starts at 0
    values: np.ndarray   # int16 class indices

    @classmethod
    def from_lists(cls, label_sets: Iterable[Sequence[int]]) -> "RealLabels":
        """Pack one label list per image (an empty list = the image is not scored)."""
        label_sets = [tuple(s) for s in label_sets]
        offsets = np.zeros(len(label_sets) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(s) for s in label_sets])
        values = np.fromiter((v for s in label_sets for v in s), dtype=np.int16, count=int(offsets[-1]))
        return cls(offsets, values)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def to_lists(self) -> list:
        """One tuple of class indices per image."""
        return [tuple(int(v) for v in self[i]) for i in range(len(self))]

    def scored(self) -> np.ndarray:
        """Bool per image: its set is non-empty (ReaL leaves the others out of the mean)."""
        return np.diff(self.offsets) > 0

    def take(self, order: np.ndarray) -> "RealLabels":
        """The label sets of the images at ``order``, in that order."""
        starts, stops = self.offsets[order], self.offsets[order + 1]
        lengths = stops - starts
        offsets = np.zeros(len(order) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(lengths)
        # Index of every kept value: each image's start repeated over its length, plus 0..len-1.
        positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return RealLabels(offsets, self.values[positions])


@dataclass(frozen=True)
class HeadPredictions:
    """One head's outputs on one set: top-5 class indices (best first) and correct under the set's rule."""

    top5: np.ndarray     # int16, n x 5
    correct: np.ndarray  # bool, n


@dataclass(frozen=True)
class SetPredictions:
    """Every kept head's predictions on one test set, with the images' ids and true labels.

    ``labels`` holds one class index per image; IN-ReaL instead has ``real_sets`` (and ``labels`` None).
    """

    ids: np.ndarray                                    # str, n (paths relative to the set's root)
    labels: Optional[np.ndarray]                       # int, n; None for IN-ReaL
    heads: Dict[str, HeadPredictions] = field(default_factory=dict)
    real_sets: Optional[RealLabels] = None

    def __len__(self) -> int:
        return len(self.ids)

    def scored(self) -> np.ndarray:
        """Bool per image: it enters the set's accuracy (all but IN-ReaL's empty label sets)."""
        if self.real_sets is not None:
            return self.real_sets.scored()
        return np.ones(len(self.ids), dtype=bool)

    def scored_correct(self, head: str) -> Tuple[np.ndarray, np.ndarray]:
        """(ids, correct) of the scored images for ``head``."""
        keep = self.scored()
        return self.ids[keep], self.heads[head].correct[keep]

    def top1(self, head: str) -> float:
        """Top-1 accuracy of ``head`` in percent under the set's rule."""
        return 100.0 * float(np.mean(self.scored_correct(head)[1]))

    def take(self, order: np.ndarray) -> "SetPredictions":
        """The rows at ``order`` (an index array), in that order."""
        order = np.asarray(order, dtype=np.int64)
        return SetPredictions(
            ids=self.ids[order], labels=None if self.labels is None else self.labels[order],
            heads={k: HeadPredictions(h.top5[order], h.correct[order]) for k, h in self.heads.items()},
            real_sets=None if self.real_sets is None else self.real_sets.take(order))

    def sorted_by_id(self) -> "SetPredictions":
        """The same predictions with rows sorted by image id (the order files are stored in)."""
        return self.take(np.argsort(self.ids, kind="stable"))


@dataclass(frozen=True)
class SegmentationCounts:
    """Per-image, per-class pixel counts of one segmentation run (mmseg IoUMetric's accumulators)."""

    ids: np.ndarray            # str, n
    class_names: Tuple[str, ...]
    intersect: np.ndarray      # int64, n x K
    union: np.ndarray          # int64, n x K
    label_area: np.ndarray     # int64, n x K
    class_iou: np.ndarray      # float64, K, in %; NaN where a class has no union in the whole set

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, order: np.ndarray) -> "SegmentationCounts":
        """The images at ``order``, in that order (``class_iou`` recomputed over them)."""
        order = np.asarray(order, dtype=np.int64)
        i, u, a = self.intersect[order], self.union[order], self.label_area[order]
        return SegmentationCounts(self.ids[order], self.class_names, i, u, a, _class_iou(i, u))


def _class_iou(intersect: np.ndarray, union: np.ndarray) -> np.ndarray:
    i, u = intersect.sum(axis=0).astype(np.float64), union.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * i / u  # 0/0 -> NaN, as mmseg's IoUMetric


# ----------------------------------------------------------------------------- encoding helpers
def _check_name(kind: str, name: str) -> None:
    if not name or "/" in name:
        raise ValueError(f"{kind} name {name!r} must be non-empty and contain no '/'")


def _pack_strings(kind: str, strings: Sequence[str]) -> np.ndarray:
    # One UTF-8 buffer joined by newlines: ~1 byte per character (numpy's str dtype takes 4, padded to
    # the longest id), and no pickles.
    strings = [str(s) for s in strings]
    if any("\n" in s for s in strings):
        raise ValueError(f"{kind} must not contain newlines")
    return np.frombuffer("\n".join(strings).encode("utf-8"), dtype=np.uint8)


def _unpack_strings(buffer: np.ndarray, count: int) -> np.ndarray:
    if count == 0:
        return np.array([], dtype=str)
    return np.array(buffer.tobytes().decode("utf-8").split("\n"))


def _write_npz(path: PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    with atomic_path(path) as tmp:
        # A file handle, not a name: np.savez would append '.npz' to the temporary name.
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return Path(path)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"


def _read_npz(path: PathLike, expected_format: str, what: str) -> Dict[str, np.ndarray]:
    """Every array of an npz file, read eagerly so that a corrupt member fails here, naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SideFileError(f"{what} file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise SideFileError(f"{what} file {path} is truncated or corrupt ({_one_line(error)})") from None
    found = str(arrays.get("format", "")) if "format" in arrays else None
    if found != expected_format:
        raise SideFileError(f"{what} file {path} is not a {expected_format} file (format {found!r})")
    version = int(arrays.get("version", -1))
    if version != FORMAT_VERSION:
        raise SideFileError(f"{what} file {path} has format version {version}, this reader knows {FORMAT_VERSION}")
    return arrays


class _Reader:
    """Key lookup with shape checks that name the file and the key at fault."""

    def __init__(self, path: PathLike, arrays: Mapping[str, np.ndarray], what: str) -> None:
        self.path, self.arrays, self.what = Path(path), arrays, what

    def fail(self, message: str) -> SideFileError:
        return SideFileError(f"{self.what} file {self.path}: {message}")

    def get(self, key: str, shape: Tuple[Optional[int], ...] = None) -> np.ndarray:
        if key not in self.arrays:
            raise self.fail(f"missing key {key!r}")
        value = self.arrays[key]
        if shape is not None and (value.ndim != len(shape)
                                  or any(s is not None and s != v for s, v in zip(shape, value.shape))):
            want = "x".join("?" if s is None else str(s) for s in shape)
            raise self.fail(f"key {key!r} has shape {value.shape}, expected {want}")
        return value

    def strings(self, key: str, count: int) -> np.ndarray:
        values = _unpack_strings(self.get(key, (None,)), count)
        if len(values) != count:
            raise self.fail(f"key {key!r} holds {len(values)} strings, expected {count}")
        return values


# ----------------------------------------------------------------------------- classification
def _check_set(name: str, preds: SetPredictions) -> None:
    n = len(preds.ids)
    if (preds.labels is None) == (preds.real_sets is None):
        raise ValueError(f"set {name}: give exactly one of labels and real_sets")
    if preds.labels is not None and np.shape(preds.labels) != (n,):
        raise ValueError(f"set {name}: labels have shape {np.shape(preds.labels)}, expected ({n},)")
    if preds.real_sets is not None and len(preds.real_sets) != n:
        raise ValueError(f"set {name}: {len(preds.real_sets)} ReaL label sets for {n} images")
    if len(np.unique(preds.ids)) != n:
        raise ValueError(f"set {name}: image ids are not unique")
    for head, h in preds.heads.items():
        _check_name("head", head)
        if np.shape(h.top5) != (n, 5) or np.shape(h.correct) != (n,):
            raise ValueError(f"set {name} head {head}: top5 {np.shape(h.top5)} / correct {np.shape(h.correct)} "
                             f"do not match {n} images")
        if n and not 0 <= np.min(h.top5) <= np.max(h.top5) <= np.iinfo(np.int16).max:
            raise ValueError(f"set {name} head {head}: top5 class indices must fit in int16")


def write_classification_predictions(path: PathLike, sets: Mapping[str, SetPredictions]) -> Path:
    """Write one run's per-image predictions on every set to ``path`` (.npz) atomically."""
    arrays: Dict[str, np.ndarray] = {"format": np.array(CLASSIFICATION_FORMAT),
                                     "version": np.array(FORMAT_VERSION), "sets": np.array(list(sets), dtype=str)}
    for name, preds in sets.items():
        _check_name("set", name)
        _check_set(name, preds)
        preds = preds.sorted_by_id()
        arrays[f"{name}/ids"] = _pack_strings(f"set {name} image ids", preds.ids)
        if preds.labels is not None:
            arrays[f"{name}/labels"] = np.asarray(preds.labels, dtype=np.int32)
        else:
            arrays[f"{name}/real_offsets"] = np.asarray(preds.real_sets.offsets, dtype=np.int64)
            arrays[f"{name}/real_values"] = np.asarray(preds.real_sets.values, dtype=np.int16)
        arrays[f"{name}/heads"] = np.array(list(preds.heads), dtype=str)
        for head, h in preds.heads.items():
            arrays[f"{name}/head/{head}/top5"] = np.asarray(h.top5, dtype=np.int16)
            arrays[f"{name}/head/{head}/correct"] = np.asarray(h.correct, dtype=bool)
    return _write_npz(path, arrays)


def read_classification_predictions(path: PathLike) -> Dict[str, SetPredictions]:
    """Read a classification side file back: {set name: SetPredictions}, rows sorted by image id."""
    what = "classification predictions"
    r = _Reader(path, _read_npz(path, CLASSIFICATION_FORMAT, what), what)
    out: Dict[str, SetPredictions] = {}
    for name in r.get("sets", (None,)).tolist():
        n = None
        labels = real = None
        if f"{name}/labels" in r.arrays:
            labels = r.get(f"{name}/labels", (None,)).astype(np.int64)
            n = len(labels)
        else:
            offsets = r.get(f"{name}/real_offsets", (None,)).astype(np.int64)
            values = r.get(f"{name}/real_values", (None,)).astype(np.int64)
            n = len(offsets) - 1
            if n < 0 or offsets[0] != 0 or offsets[-1] != len(values) or np.any(np.diff(offsets) < 0):
                raise r.fail(f"key {name + '/real_offsets'!r} does not index {name + '/real_values'!r}")
            real = RealLabels(offsets, values)
        ids = r.strings(f"{name}/ids", n)
        heads = {head: HeadPredictions(r.get(f"{name}/head/{head}/top5", (n, 5)).astype(np.int16),
                                       r.get(f"{name}/head/{head}/correct", (n,)).astype(bool))
                 for head in r.get(f"{name}/heads", (None,)).tolist()}
        out[name] = SetPredictions(ids=ids, labels=labels, heads=heads, real_sets=real)
    return out


# ----------------------------------------------------------------------------- segmentation
def write_segmentation_counts(path: PathLike, ids: Sequence[str], intersect: np.ndarray, union: np.ndarray,
                              label_area: np.ndarray, class_names: Sequence[str]) -> Path:
    """Write one run's per-image, per-class intersection / union / label pixel counts to ``path`` atomically."""
    ids = np.asarray([str(i) for i in ids], dtype=str)
    counts = [np.asarray(a) for a in (intersect, union, label_area)]
    shape = (len(ids), len(class_names))
    for key, a in zip(("intersect", "union", "label_area"), counts):
        if a.shape != shape:
            raise ValueError(f"{key} has shape {a.shape}, expected {shape} (images x classes)")
        if np.any(a < 0):
            raise ValueError(f"{key} holds negative pixel counts")
    if np.any(counts[0] > counts[1]) or np.any(counts[0] > counts[2]):
        raise ValueError("intersect exceeds union or label_area for some image and class")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("image ids are not unique")
    order = np.argsort(ids, kind="stable")
    intersect, union, label_area = (np.asarray(a[order], dtype=np.int64) for a in counts)
    return _write_npz(path, {
        "format": np.array(SEGMENTATION_FORMAT), "version": np.array(FORMAT_VERSION),
        "ids": _pack_strings("image ids", ids[order]), "class_names": _pack_strings("class names", class_names),
        "intersect": intersect, "union": union, "label_area": label_area,
        "class_iou": _class_iou(intersect, union)})


def read_segmentation_counts(path: PathLike) -> SegmentationCounts:
    """Read a segmentation side file back (rows sorted by image id)."""
    what = "segmentation counts"
    r = _Reader(path, _read_npz(path, SEGMENTATION_FORMAT, what), what)
    intersect = r.get("intersect", (None, None)).astype(np.int64)
    n, k = intersect.shape
    union = r.get("union", (n, k)).astype(np.int64)
    label_area = r.get("label_area", (n, k)).astype(np.int64)
    class_iou = r.get("class_iou", (k,)).astype(np.float64)
    names = tuple(r.strings("class_names", k).tolist())
    return SegmentationCounts(r.strings("ids", n), names, intersect, union, label_area, class_iou)

