"""Percentile bootstrap over images, with resamples shared wherever quantities are paired.

The resample indices of a set key depend only on (seed, set key, number of images), so every head,
every version and every *score* of the same images is resampled identically: their per-resample
values can be added, subtracted and averaged (``Samples``) and the interval of an average over sets,
or of a difference between two heads or versions, comes out of the same resamples. The unit is the
image: a key names a list of images, not a score, so two scores of one image list (IN-1K and
IN-ReaL on the ImageNet val images) share one key, and a score that counts only some of the images
(ReaL leaves out images without a label set) passes a ``scored`` mask: on each resample its accuracy
is over the drawn images it scores. Different set keys get independent streams.

Training noise: a head trained K times with different seeds (its replicas, all scored on the same images)
is resampled hierarchically (``Bootstrap.over_replicas``): each resample draws the images as above *and*
one of the K replicas, so the interval covers which images were drawn and which seed trained the head.
The replica drawn depends only on (seed, model, K): every set a model scored (and every comparison it
enters) draws the same replica on the same resample, so an average over sets uses one trained model per
resample. ``Samples.models`` records, per model, how many replicas it was drawn from (1: test images only).

Why not the cheaper multinomial-over-outcome-cells trick: it needs every vector of a set at once, while
here a later call (another version's file, read later) must land on the same resamples.
"""
from __future__ import annotations

import hashlib
import numbers
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np

from probes.errors import ProbeError
from probes.report.stats.indices import UniformIndices
from probes.report.stats.metrics import mean_class_ratio


class StatsError(ProbeError):
    """Quantities that cannot be combined or compared (unpaired resamples, no shared images, ...)."""


Source = Tuple[str, int, int, int]  # (set key, seed, n images, n resamples): one resample stream


@dataclass(frozen=True, eq=False)
class Samples:
    """A statistic's point estimate and its value on each bootstrap resample (same units, e.g. %).

    Supports ``+``, ``-``, ``*``/``/`` by a number and ``Samples.mean(items)``; combining two Samples
    that were resampled on the same set with different streams (another seed or another image count)
    is refused, since their resamples would not be paired.
    """

    point: float
    values: np.ndarray          # (R,)
    sources: FrozenSet[Source]  # the resample streams these values came from
    images: Optional[Mapping[str, int]] = None  # per set key, the images it is scored on (default: all)
    models: Mapping[str, int] = field(default_factory=dict)  # per trained model, the replicas drawn from
    centre: Optional[float] = None  # the mean over replicas of the point (default: the point)

    def __post_init__(self) -> None:
        if self.centre is None:
            object.__setattr__(self, "centre", self.point)
        keys = [s[0] for s in self.sources]
        if len(keys) != len(set(keys)):
            detail = ", ".join(f"{k} (seed {s}, n {n}, R {r})" for k, s, n, r in sorted(self.sources))
            raise StatsError(f"unpaired resamples of one set cannot be combined: {detail}; "
                             "align both to the same images and use one Bootstrap")
        if self.images is None:
            object.__setattr__(self, "images", {s[0]: s[2] for s in self.sources})

    @property
    def n_images(self) -> int:
        """Images the statistic rests on, each counted once however many of its scores enter it."""
        return int(sum(self.images.values()))

    @property
    def n_resamples(self) -> int:
        """Number of bootstrap resamples R."""
        return len(self.values)

    def _combine(self, other, op) -> "Samples":
        if isinstance(other, Samples):
            if other.n_resamples != self.n_resamples:
                raise StatsError(f"cannot combine {self.n_resamples} resamples with {other.n_resamples}")
            # The larger count per key: the scored images of a key are a subset of its image list
            # (IN-ReaL's of IN-1K's), so the union of two scores' images is the larger of the two.
            images = {k: max(self.images.get(k, 0), other.images.get(k, 0))
                      for k in {**self.images, **other.images}}
            clash = sorted(m for m in set(self.models) & set(other.models) if self.models[m] != other.models[m])
            if clash:
                raise StatsError(f"model {clash[0]} drawn from {self.models[clash[0]]} and "
                                 f"{other.models[clash[0]]} replicas: its draws would not be paired")
            return Samples(op(self.point, other.point), op(self.values, other.values), self.sources | other.sources,
                           images, {**self.models, **other.models}, op(self.centre, other.centre))
        if isinstance(other, numbers.Real):
            return Samples(op(self.point, other), op(self.values, other), self.sources, self.images, self.models,
                           op(self.centre, other))
        return NotImplemented

    def __add__(self, other) -> "Samples":
        return self._combine(other, lambda x, y: x + y)

    def __radd__(self, other) -> "Samples":  # lets sum() start from 0
        return self._combine(other, lambda x, y: y + x)

    def __sub__(self, other) -> "Samples":
        return self._combine(other, lambda x, y: x - y)

    def __rsub__(self, other) -> "Samples":
        return self._combine(other, lambda x, y: y - x)

    def __mul__(self, factor: float) -> "Samples":
        if isinstance(factor, Samples):
            return NotImplemented  # a product of two statistics is not needed and easy to misuse
        return self._combine(factor, lambda x, y: x * y)

    __rmul__ = __mul__

    def __truediv__(self, divisor: float) -> "Samples":
        if isinstance(divisor, Samples):
            return NotImplemented
        return self._combine(divisor, lambda x, y: x / y)

    def __neg__(self) -> "Samples":
        return self * -1.0

    @staticmethod
    def mean(items: Sequence["Samples"]) -> "Samples":
        """Per-resample mean of several statistics (e.g. the average over test sets)."""
        items = list(items)
        if not items:
            raise StatsError("the mean of no Samples is undefined")
        return sum(items[1:], items[0]) / len(items)

    def interval(self, level: float = 0.95) -> Tuple[float, float]:
        """Percentile interval of the resample values at ``level``."""
        return interval(self, level)


def interval(samples: Samples, level: float = 0.95) -> Tuple[float, float]:
    """Percentile bootstrap interval (low, high) at ``level`` (NaN if any resample value is NaN)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(samples.values, [tail, 100.0 - tail])
    return float(low), float(high)


class Bootstrap:
    """Seeded image resampling: ``n_resamples`` draws with replacement per set, shared across calls.

    ``chunk_elements`` bounds memory (indices drawn per step); results do not depend on it.
    """

    def __init__(self, n_resamples: int = 1000, seed: int = 0, chunk_elements: int = 1 << 19) -> None:
        if n_resamples < 1 or seed < 0 or chunk_elements < 1:
            raise ValueError("n_resamples and chunk_elements must be >= 1 and seed >= 0")
        self.n_resamples, self.seed, self.chunk_elements = int(n_resamples), int(seed), int(chunk_elements)

    def __repr__(self) -> str:
        return f"Bootstrap(n_resamples={self.n_resamples}, seed={self.seed})"

    # -- resample indices
    def _stream(self, set_key: str, n: int) -> UniformIndices:
        # sha256, not hash(): Python salts str hashes per process, and the streams must be reproducible.
        words = np.frombuffer(hashlib.sha256(set_key.encode("utf-8")).digest(), dtype="<u4").tolist()
        return UniformIndices(np.random.SeedSequence([self.seed, n, *words]), n)

    def _source(self, set_key: str, n: int) -> Source:
        return (set_key, self.seed, n, self.n_resamples)

    def index_chunks(self, set_key: str, n: int) -> Iterator[Tuple[slice, np.ndarray]]:
        """(rows, indices) blocks of the (R, n) resample index matrix of this set, drawn in order."""
        if n < 1:
            raise StatsError(f"set {set_key}: no images to resample")
        stream = self._stream(set_key, n)
        rows = max(1, self.chunk_elements // n)
        for start in range(0, self.n_resamples, rows):
            stop = min(start + rows, self.n_resamples)
            # One stream consumed in order, so the matrix is the same whatever the chunking.
            yield slice(start, stop), stream.take((stop - start) * n).reshape(stop - start, n)

    def indices(self, set_key: str, n: int) -> np.ndarray:
        """The whole (R, n) resample index matrix of a set (for checks and small sets)."""
        return np.concatenate([idx for _, idx in self.index_chunks(set_key, n)], axis=0)

    # -- training replicas
    def replica_draws(self, model: str, k: int) -> np.ndarray:
        """Which of a model's k replicas each resample uses (R ints in [0, k)): a function of (seed, model, k)."""
        if k < 1:
            raise StatsError(f"model {model}: no replica to draw from")
        words = np.frombuffer(hashlib.sha256(f"replicas\0{model}".encode("utf-8")).digest(), dtype="<u4").tolist()
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, k, *words])))
        return rng.integers(k, size=self.n_resamples)

    def over_replicas(self, model: str, replicas: Sequence[Samples]) -> Samples:
        """One statistic of a model trained K times: each resample takes its images' value under the replica
        `replica_draws` picks; the point stays replica 0's (the result row's), `centre` is the replicas' mean.

        All replicas must be resampled over the same images with the same streams (one ``accuracies`` call).
        K = 1 returns replica 0 with the model recorded as drawn from one replica (test images only).
        """
        replicas = list(replicas)
        if not replicas:
            raise StatsError(f"model {model}: no replica to draw from")
        first = replicas[0]
        if any(r.sources != first.sources or r.n_resamples != first.n_resamples for r in replicas[1:]):
            raise StatsError(f"model {model}: its replicas were not resampled over the same images")
        k = len(replicas)
        if k == 1:
            values = first.values
        else:
            values = np.stack([r.values for r in replicas])[self.replica_draws(model, k),
                                                            np.arange(first.n_resamples)]
        return Samples(first.point, values, first.sources, first.images, {**first.models, model: k},
                       float(np.mean([r.point for r in replicas])))

    # -- accuracy
    def accuracy(self, set_key: str, correct: np.ndarray, scored: Optional[np.ndarray] = None) -> Samples:
        """Top-1 accuracy (%) of one per-image correct vector, resampled over the set's images."""
        return self.accuracies(set_key, {"": correct}, None if scored is None else {"": scored})[""]

    def accuracies(self, set_key: str, correct: Mapping[str, np.ndarray],
                   scored: Optional[Mapping[str, np.ndarray]] = None) -> Dict[str, Samples]:
        """Accuracy (%) of several heads / versions / scores on the same images, from one pass of shared indices.

        Every vector must list the same images in the same order: heads of one side file do, and two
        side files of the same images do (rows are sorted by id); otherwise match ids first
        (``shared_images``, or ``compare_accuracy`` which does it). ``scored[name]`` (bool per image)
        restricts a vector to the images its score counts (IN-ReaL: those with a label set): each
        resample's accuracy is then right / scored among the drawn images, so a ReaL head and an
        IN-1K head on one key are resampled with the very same draws of images.
        """
        vectors = {name: np.asarray(c, dtype=bool) for name, c in correct.items()}
        masks = {name: np.asarray(m, dtype=bool) for name, m in (scored or {}).items()}
        unknown = sorted(set(masks) - set(vectors))
        if unknown:
            raise StatsError(f"set {set_key}: scored masks for vectors it was not given: {', '.join(unknown)}")
        n = _common_length(set_key, [*vectors.values(), *masks.values()])
        # Fields to count per resample: each vector's right-and-scored images, and each distinct mask once.
        fields: Dict[object, np.ndarray] = {}
        mask_of: Dict[str, object] = {}
        for name, vector in vectors.items():
            mask = masks.get(name)
            if mask is None:
                fields[("right", name)] = vector
                continue
            if not mask.any():
                raise StatsError(f"set {set_key} {name or 'vector'}: scores no image")
            key = ("scored", hashlib.sha1(np.packbits(mask).tobytes()).hexdigest())
            fields.setdefault(key, mask)
            mask_of[name] = key
            fields[("right", name)] = vector & mask
        counts = self._count(set_key, n, fields)
        source = frozenset([self._source(set_key, n)])
        out = {}
        for name, vector in vectors.items():
            right = counts[("right", name)]
            if name in mask_of:
                mask = fields[mask_of[name]]
                with np.errstate(invalid="ignore", divide="ignore"):  # no scored image drawn: NaN
                    values = 100.0 * right / counts[mask_of[name]]
                point = 100.0 * float(np.count_nonzero(vector & mask)) / float(np.count_nonzero(mask))
                out[name] = Samples(point, values, source, {set_key: int(np.count_nonzero(mask))})
            else:
                out[name] = Samples(100.0 * float(np.count_nonzero(vector)) / n, 100.0 * right / n, source)
        return out

    def _count(self, set_key: str, n: int, fields: Mapping[object, np.ndarray]) -> Dict[object, np.ndarray]:
        """Per resample, how many drawn images each boolean field holds (drawn twice: counted twice)."""
        # Several fields share one 64-bit word, one bit field each, wide enough that a field's sum over
        # n draws (at most n) never carries into the next: one gather + sum serves up to 64 // width
        # fields (4 at ImageNet sizes), ~1.6x faster than one boolean gather per field.
        width = n.bit_length()
        names = list(fields)
        words = []
        for start in range(0, len(names), 64 // width):
            group = names[start:start + 64 // width]
            word = np.zeros(n, dtype=np.uint64)
            for j, name in enumerate(group):
                word |= fields[name].astype(np.uint64) << np.uint64(j * width)
            words.append((group, word))
        mask = np.uint64((1 << width) - 1)
        counts = {name: np.empty(self.n_resamples, dtype=np.int64) for name in fields}
        for rows, idx in self.index_chunks(set_key, n):
            for group, word in words:
                sums = word[idx].sum(axis=1, dtype=np.uint64)
                for j, name in enumerate(group):
                    counts[name][rows] = (sums >> np.uint64(j * width)) & mask
        return counts

    # -- segmentation
    def miou(self, set_key: str, intersect: np.ndarray, union: np.ndarray) -> Samples:
        """mIoU (%) from per-image (n, K) intersection / union counts, resampled over images."""
        return self.class_ratios(set_key, {"": (intersect, union)})[""]

    def macc(self, set_key: str, intersect: np.ndarray, label_area: np.ndarray) -> Samples:
        """mAcc (%) from per-image (n, K) intersection / label counts, resampled over images."""
        return self.class_ratios(set_key, {"": (intersect, label_area)})[""]

    def class_ratios(self, set_key: str, counts: Mapping[str, Tuple[np.ndarray, np.ndarray]]
                     ) -> Dict[str, Samples]:
        """Mean over classes of sum(numerator) / sum(denominator) (mIoU: intersect / union; mAcc:
        intersect / label_area) for several runs on the same images, from shared resamples.

        Each resample sums the drawn images' counts with multiplicity: a (rows, n) multiplicity matrix
        from bincount times the (n, K) counts, in float64 (exact for integer sums below 2**53).
        """
        pairs = {name: (np.asarray(a), np.asarray(b)) for name, (a, b) in counts.items()}
        for name, (a, b) in pairs.items():
            if a.ndim != 2 or a.shape != b.shape:
                raise StatsError(f"set {set_key} {name}: counts must be two (images, classes) arrays of one shape")
        n = _common_length(set_key, [a for pair in pairs.values() for a in pair])
        k = {name: a.shape[1] for name, (a, _) in pairs.items()}
        stacked = np.concatenate([x for pair in pairs.values() for x in pair], axis=1).astype(np.float64)
        sums = np.empty((self.n_resamples, stacked.shape[1]), dtype=np.float64)
        for rows, idx in self.index_chunks(set_key, n):
            m = rows.stop - rows.start
            flat = (idx + (np.arange(m, dtype=np.int64) * n)[:, None]).ravel()
            multiplicity = np.bincount(flat, minlength=m * n).reshape(m, n).astype(np.float64)
            sums[rows] = multiplicity @ stacked
        out, col = {}, 0
        source = frozenset([self._source(set_key, n)])
        for name, (a, b) in pairs.items():
            num, den = sums[:, col:col + k[name]], sums[:, col + k[name]:col + 2 * k[name]]
            col += 2 * k[name]
            point = mean_class_ratio(a.sum(axis=0), b.sum(axis=0))
            out[name] = Samples(float(point), mean_class_ratio(num, den), source)
        return out


def _common_length(set_key: str, arrays: Iterable[np.ndarray]) -> int:
    lengths = {len(a) for a in arrays}
    if not lengths:
        raise StatsError(f"set {set_key}: nothing to resample")
    if len(lengths) != 1:
        raise StatsError(f"set {set_key}: the vectors cover different numbers of images {sorted(lengths)}; "
                         "align them on shared image ids first")
    return lengths.pop()
