"""Cost of the report's bootstrap intervals: the vectorised paired bootstrap vs a numpy loop over resamples.

The work is what `probes report` does to put 95% intervals on one encoder version, at the real sizes,
1,000 resamples each, on synthetic per-image outcomes:

* Table 14: 12 cells = 6 test sets (IN-1K 50,000, IN-ReaL 46,837 scored of the same 50,000 val
  images, IN-V2 10,000, IN-A 7,500, IN-R 30,000, IN-Sketch 50,889 images) x 2 probes, plus each
  probe's average over the sets and Δ = attention pooling - linear, all from shared resamples; IN-1K
  and IN-ReaL from one resample of the val images (ReaL over the drawn images it labels), as the
  report does;
* Table 15: 6 cells = ADE20K (2,000 validation images x 150 classes) and COCO-Stuff (5,000 x 171)
  x 3 modes (linear, head, full), mIoU from per-image intersection / union counts.

Ours: ``probes.report.stats.Bootstrap``. Headline reference: the obvious numpy code, a Python loop
over resamples with numpy inside each (one index draw per image list, a gather per head / mode),
timed on ``--numpy-resamples`` resamples and extrapolated linearly to 1,000. Both are the best of
``--repeats`` runs, alternated (on a shared machine other processes only ever add time). A second
reference, a plain Python loop (``random.Random.choices`` per resample, list sums; per-image sparse
class counts for mIoU), timed on a few resamples per cell and extrapolated, is printed for
information. Also written and read: a full-size classification side file (4 heads).
``--smoke`` runs the same code on 2% of the sizes with 20 resamples (seconds; figures meaningless).
The last printed line is exactly ``report_stats_seconds=X ratio_vs_numpy_loop=Y``.
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from probes.report.stats import Bootstrap, Samples, interval
from probes.sidefiles import (HeadPredictions, SetPredictions, read_classification_predictions,
                              write_classification_predictions)

# (test set, images, scored images, linear top-1, attention-pooling top-1)
TABLE14 = [("IN-1K", 50_000, 50_000, 0.88, 0.89), ("IN-ReaL", 50_000, 46_837, 0.905, 0.91),
           ("IN-V2", 10_000, 10_000, 0.80, 0.81), ("IN-A", 7_500, 7_500, 0.70, 0.75),
           ("IN-R", 30_000, 30_000, 0.85, 0.87), ("IN-Sketch", 50_889, 50_889, 0.65, 0.67)]
POOLS = {"IN-1K": "val", "IN-ReaL": "val"}  # sets scored on the same images: resampled together
TABLE15 = [("ADE20K", 2_000, 150), ("COCO-Stuff", 5_000, 171)]
MODES = {"linear": 0.45, "head": 0.55, "full": 0.60}  # mean per-class overlap quality of each mode


# ----------------------------------------------------------------------------- synthetic data
def paired_correct(rng: np.random.Generator, n: int, p_a: float, p_b: float) -> tuple[np.ndarray, np.ndarray]:
    """Correlated outcomes of two heads at about top-1 ``p_a`` and ``p_b``: they disagree on a few % of images."""
    a = rng.random(n) < p_a
    b = a.copy()
    flip_down = rng.random(n) < 0.03  # some images only A gets right
    b[a & flip_down] = False
    need = int(round(p_b * n)) - int(b.sum())
    wrong = np.flatnonzero(~b)
    b[rng.choice(wrong, size=min(max(need, 0), len(wrong)), replace=False)] = True
    return a, b


def segmentation_counts(rng: np.random.Generator, n: int, k: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-image (n, k) intersection / union counts of three modes on the same images and labels."""
    pixels = 512 * 683
    freq = 1.0 / np.arange(1, k + 1) ** 0.8  # a few classes (wall, sky) are everywhere, most are rare
    freq /= freq.sum()
    label = np.zeros((n, k), dtype=np.int64)
    for i in range(n):
        present = rng.choice(k, size=min(k, 1 + rng.poisson(8)), replace=False, p=freq)
        label[i, present] = (rng.dirichlet(np.ones(len(present))) * pixels).astype(np.int64)
    out = {}
    for mode, quality in MODES.items():
        hit = rng.beta(8 * quality, 8 * (1 - quality), size=(n, k))
        intersect = (label * hit).astype(np.int64)
        spill = (rng.random((n, k)) < 0.05) * rng.integers(0, pixels // 20, size=(n, k))  # false positives
        pred = intersect + (label - intersect) // 2 + spill
        out[mode] = (intersect, pred + label - intersect)
    return out


def _scaled(n: int, scale: float) -> int:
    return n if scale == 1 else max(20, int(n * scale))


def make_work(seed: int = 0, scale: float = 1.0):
    """Synthetic per-image outcomes of every Table 14 and Table 15 cell (``scale``: of the real sizes).

    Table 14: {image list: {(set, probe): correct over all its images}, {(set, probe): scored mask}}.
    """
    rng = np.random.default_rng(seed)
    table14: dict = {}
    for name, n, scored, p_lin, p_att in TABLE14:
        vectors, masks = table14.setdefault(POOLS.get(name, name), ({}, {}))
        n, scored = _scaled(n, scale), min(_scaled(scored, scale), _scaled(n, scale))
        lin, att = paired_correct(rng, n, p_lin, p_att)
        vectors[(name, "linear")], vectors[(name, "attention_pooling")] = lin, att
        if scored < n:  # the images without a ReaL label set
            mask = np.zeros(n, dtype=bool)
            mask[rng.choice(n, size=scored, replace=False)] = True
            masks[(name, "linear")] = masks[(name, "attention_pooling")] = mask
    table15 = {name: segmentation_counts(rng, _scaled(n, scale), k) for name, n, k in TABLE15}
    return table14, table15


# ----------------------------------------------------------------------------- ours
def ours(table14, table15, n_resamples: int) -> dict[str, tuple[float, float]]:
    """Every interval of the two tables with the vectorised paired bootstrap."""
    boot = Bootstrap(n_resamples=n_resamples, seed=0)
    out = {}
    cells = {}
    for pool, (vectors, masks) in table14.items():
        cells.update(boot.accuracies(pool, vectors, masks))
    for (s, probe), samples in cells.items():
        out[f"{s}/{probe}"] = interval(samples)
    avg = {p: Samples.mean([cells[(s[0], p)] for s in TABLE14]) for p in ("linear", "attention_pooling")}
    out["avg/linear"], out["avg/attention_pooling"] = interval(avg["linear"]), interval(avg["attention_pooling"])
    out["delta"] = interval(avg["attention_pooling"] - avg["linear"])
    for dataset, modes in table15.items():
        for mode, samples in boot.class_ratios(dataset, modes).items():
            out[f"{dataset}/{mode}"] = interval(samples)
    return out


# ----------------------------------------------------------------------------- references
def _percentile_interval(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]  # noqa: E731
    return pick(0.025), pick(0.975)


def python_loop_inputs(table14, table15):
    """Plain Python data: lists of 0/1 per head (None: not scored); per image, sparse (class, intersect, union) rows."""
    sets = {pool: {key: [None if m is not None and not m[i] else bool(x) for i, x in enumerate(v.tolist())]
                   if (m := masks.get(key)) is not None else v.tolist() for key, v in vectors.items()}
            for pool, (vectors, masks) in table14.items()}
    seg = {}
    for dataset, modes in table15.items():
        n, k = next(iter(modes.values()))[0].shape
        seg[dataset] = (n, k, {mode: [[(c, int(intersect[i, c]), int(union[i, c]))
                                       for c in np.flatnonzero(union[i]).tolist()] for i in range(n)]
                               for mode, (intersect, union) in modes.items()})
    return sets, seg


def python_loop(inputs, n_resamples: int) -> None:
    """The same intervals with plain Python: one resample at a time, lists and sums."""
    sets, seg = inputs
    rng = random.Random(0)
    per_set = {}
    for lists in sets.values():
        n = len(next(iter(lists.values())))
        values = {key: [] for key in lists}
        population = range(n)
        for _ in range(n_resamples):
            drawn = rng.choices(population, k=n)  # shared by every head and score of the images: paired
            for key, correct in lists.items():
                outcomes = [x for x in map(correct.__getitem__, drawn) if x is not None]
                values[key].append(100.0 * sum(outcomes) / len(outcomes))
        per_set.update(values)
        for key in values:
            _percentile_interval(values[key])
    for p in ("linear", "attention_pooling"):
        keys = [key for key in per_set if key[1] == p]
        _percentile_interval([sum(per_set[k][r] for k in keys) / len(keys) for r in range(n_resamples)])
    for n, k, sparse in seg.values():
        values = {mode: [] for mode in sparse}
        for _ in range(n_resamples):
            drawn = rng.choices(range(n), k=n)
            for mode, rows in sparse.items():
                inter, uni = [0] * k, [0] * k
                for i in drawn:
                    for c, x, u in rows[i]:
                        inter[c] += x
                        uni[c] += u
                ious = [100.0 * x / u for x, u in zip(inter, uni) if u > 0]
                values[mode].append(sum(ious) / len(ious))
        for mode in values:
            _percentile_interval(values[mode])


def numpy_loop(table14, table15, n_resamples: int) -> None:
    """The same intervals with a Python loop over resamples and numpy inside each."""
    rng = np.random.default_rng(0)
    per_set = {}
    for vectors, masks in table14.values():
        n = len(next(iter(vectors.values())))
        values = {key: np.empty(n_resamples) for key in vectors}
        for r in range(n_resamples):
            drawn = rng.integers(0, n, n)
            for key, correct in vectors.items():
                mask = masks.get(key)
                values[key][r] = (correct[drawn].mean() if mask is None
                                  else correct[drawn][mask[drawn]].mean())
        per_set.update(values)
    for p in ("linear", "attention_pooling"):
        np.percentile(np.mean([v for k, v in per_set.items() if k[1] == p], axis=0), [2.5, 97.5])
    for modes in table15.values():
        n = len(next(iter(modes.values()))[0])
        values = {mode: np.empty(n_resamples) for mode in modes}
        for r in range(n_resamples):
            drawn = rng.integers(0, n, n)
            for mode, (intersect, union) in modes.items():
                i, u = intersect[drawn].sum(axis=0), union[drawn].sum(axis=0)
                with np.errstate(invalid="ignore"):
                    values[mode][r] = np.nanmean(i / u)
        for v in values.values():
            np.percentile(v, [2.5, 97.5])


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- side file size
def side_file_cost(table14, tmp: Path, scale: float = 1.0) -> tuple[float, float, float]:
    """(MB, write s, read s) of a classification side file with 4 heads (full size unless ``scale``)."""
    rng = np.random.default_rng(1)
    sets = {}
    for name, n, _, _, _ in TABLE14 + [("heldout", 10_000, 10_000, 0, 0)]:
        n = _scaled(n, scale)
        labels = rng.integers(0, 1000, n)
        ids = np.array([f"n{label:08d}/ILSVRC2012_val_{i:08d}.JPEG" for i, label in enumerate(labels)])
        heads = {}
        for key in (f"{probe}_lr0.1_{ema}" for probe in ("linear", "attention_pooling") for ema in ("raw", "ema")):
            top5 = rng.integers(0, 1000, size=(n, 5)).astype(np.int16)
            top5[:, 0] = np.where(rng.random(n) < 0.85, labels, top5[:, 0])
            heads[key] = HeadPredictions(top5, top5[:, 0] == labels)
        sets[name] = SetPredictions(ids, labels, heads)
    path = tmp / "predictions.npz"
    write_s = timed(write_classification_predictions, path, sets)
    read_s = timed(read_classification_predictions, path)
    return path.stat().st_size / 1e6, write_s, read_s


def main() -> None:
    """Time ours end to end and the loops on a subset, print the summary line last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer reference resamples (< 2 minutes)")
    parser.add_argument("--smoke", action="store_true",
                        help="2%% of the sizes, 20 resamples: proves the script runs (figures meaningless)")
    parser.add_argument("--resamples", type=int, default=None)
    parser.add_argument("--numpy-resamples", type=int,
                        help="resamples the numpy loop is timed on (default 50 quick, 200 full)")
    parser.add_argument("--repeats", type=int, help="end-to-end runs of ours, best kept (default 2 quick, 3 full)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads for the mIoU products (default 1; 0 = the BLAS default)")
    args = parser.parse_args()
    threads = args.threads
    if threads:
        # On this shared 2-core machine a 2-thread BLAS product waiting for a descheduled thread ran
        # 2-4x slower than on one thread (Table 15: 1.3 s vs 0.64 s under load ~4, 4.2 s under ~6);
        # one thread is the conservative measure (a quiet 2-core machine only gets faster with two).
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    repeats = args.repeats or (1 if args.smoke else 2 if args.quick else 3)
    loop_resamples = 1 if args.smoke else 5 if args.quick else 20
    args.resamples = args.resamples or (20 if args.smoke else 1000)
    numpy_resamples = args.numpy_resamples or (5 if args.smoke else 50 if args.quick else 200)
    scale = 0.02 if args.smoke else 1.0
    table14, table15 = make_work(scale=scale)

    start = time.perf_counter()
    inputs = python_loop_inputs(table14, table15)
    loop_setup = time.perf_counter() - start  # paid once, not extrapolated
    ours_runs, numpy_runs, loop_runs = [], [], []
    for _ in range(repeats):  # alternated, so all see the same neighbours; the fastest of each is kept
        ours_runs.append(timed(ours, table14, table15, args.resamples))
        numpy_runs.append(timed(numpy_loop, table14, table15, numpy_resamples))
        loop_runs.append(timed(python_loop, inputs, loop_resamples))
    ours_s, numpy_part, loop_part = min(ours_runs), min(numpy_runs), min(loop_runs)
    loop_s = loop_setup + loop_part * args.resamples / loop_resamples
    numpy_s = numpy_part * args.resamples / numpy_resamples
    boot = Bootstrap(n_resamples=args.resamples)
    t14 = timed(lambda: [boot.accuracies(pool, vectors, masks) for pool, (vectors, masks) in table14.items()])
    t15 = timed(lambda: [boot.class_ratios(d, modes) for d, modes in table15.items()])
    with tempfile.TemporaryDirectory() as tmp:
        size_mb, write_s, read_s = side_file_cost(table14, Path(tmp), scale)

    result = ours(table14, table15, args.resamples)
    if args.smoke:
        print("smoke run: 2% of the real sizes, 20 resamples; the figures below are meaningless")
    images = sum(len(next(iter(v.values()))) for v, _ in table14.values())
    print(f"work: {len(TABLE14) * 2} Table-14 cells ({images:,} images, IN-1K and IN-ReaL on the same 50,000; "
          "2 probes) + averages + Δ, "
          f"{sum(len(m) for m in table15.values())} Table-15 cells (2,000 x 150 and 5,000 x 171, 3 modes), "
          f"{args.resamples} resamples each")
    print(f"machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f} (shared with other sessions), "
          f"BLAS threads: {threads or 'default'}")
    print(f"example intervals: IN-A linear {result['IN-A/linear'][0]:.2f}-{result['IN-A/linear'][1]:.2f}, "
          f"Δ {result['delta'][0]:.2f}-{result['delta'][1]:.2f}, "
          f"ADE20K full {result['ADE20K/full'][0]:.2f}-{result['ADE20K/full'][1]:.2f}")
    print(f"ours (vectorised paired bootstrap, best of {repeats}): {ours_s:.2f} s "
          f"(one more run: Table 14 {t14:.2f} s, Table 15 {t15:.2f} s)")
    print(f"numpy loop over resamples (best of {repeats}): {numpy_part:.2f} s for {numpy_resamples} resamples, "
          f"extrapolated linearly to {args.resamples}: {numpy_s:.1f} s")
    print(f"plain Python loop (best of {repeats}): {loop_part:.2f} s for {loop_resamples} resamples per cell, "
          f"extrapolated linearly to {args.resamples}, plus {loop_setup:.1f} s of list building: {loop_s:.0f} s "
          f"(ratio_vs_loop={loop_s / ours_s:.0f}, for information)")
    print(f"side file (all 7 sets, 208,389 images, 4 heads): {size_mb:.1f} MB, write {write_s:.1f} s, "
          f"read {read_s:.1f} s")
    print(f"report_stats_seconds={ours_s:.2f} ratio_vs_numpy_loop={numpy_s / ours_s:.1f}")


if __name__ == "__main__":
    main()
