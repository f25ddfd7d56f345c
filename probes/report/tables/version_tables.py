"""Is B really better than A? Paired comparisons of two compared names on the images both scored.

For each image list (a set, or sets that score the same images: IN-1K and IN-ReaL), every vector both
names bring (A and B, each probe, score or mode) is cut to the images all of them hold and resampled in
one `Bootstrap` call: each cell's difference, each average's and each Δ's come out of the same
resamples of images (`stats.compare`: percentile interval of B* − A*, centred-bootstrap two-sided
p-value). The cells of one comparison (B against A: every cell, average and Δ of both tasks) are one
family, their p-values Holm-adjusted (`stats.adjust`). Results are keyed like the comparison table's
rows, (other name, (task, setting, column)), each a `Comparison` or a one-line note why there is none.
"""
from __future__ import annotations

from functools import reduce
from typing import Dict, Hashable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from probes.report.evidence.per_image import (Cell, SideFiles, classification_replicas, image_pool, model_of,
                                              no_interval, resample_key, segmentation_replicas)
from probes.report.evidence.resample import Resampler, over_replicas
from probes.report.stats import Comparison, Samples, StatsError, adjust, compare
from probes.report.tables.layouts import (DELTA, DELTA1, DELTA2, PROBE_NAMES, classification_rows, segmentation_rows)
from probes.results import DATASETS, MODES, PROBES, TEST_SETS

NO_PAIR = "no per-image predictions for both: no interval"
Result = Union[Comparison, str]
Key = Tuple[str, str, str]  # (task, setting, column) of the comparison table


def _common(ids: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Positions, in each id list, of the ids every list holds (in sorted-id order)."""
    shared = reduce(lambda x, y: np.intersect1d(x, y, assume_unique=True), ids)
    return [np.intersect1d(i, shared, assume_unique=True, return_indices=True)[1] for i in ids]


def _compare(a: Optional[Samples], b: Optional[Samples], why: str) -> Result:
    if a is None or b is None:
        return why
    try:
        return compare(a, b)
    except StatsError as error:
        return no_interval(error)


def _mean(items: Sequence[Optional[Samples]]) -> Optional[Samples]:
    return None if any(i is None for i in items) or not items else Samples.mean(list(items))


def _summaries(per_set: Mapping[str, Mapping[Tuple[str, str], Samples]], sets: Sequence[str], setting: str,
               side: str) -> Optional[Samples]:
    return _mean([per_set.get(s, {}).get((side, setting)) for s in sets])


def _shared_samples(set_name: str, vectors: Mapping[Hashable, tuple], resample) -> Tuple[Dict[Hashable, Samples], str]:
    """Cut every vector to the ids all of them hold and resample them together: ({key: Samples}, note).

    ``vectors[key]`` = (ids, data, token, resample key of all its ids); ``resample(set_key, {token: (data,
    positions)})`` returns {token: Samples}. When every vector lists the same images (both versions
    scored the whole set) nothing is cut and the tables' resamples are reused as they are.
    """
    if not vectors:
        return {}, ""
    keys = list(vectors)
    whole = {vectors[k][3] for k in keys}
    if len(whole) == 1:
        set_key, positions = whole.pop(), [slice(None)] * len(keys)
    else:
        positions = _common([vectors[k][0] for k in keys])
        if len(positions[0]) == 0:
            return {}, f"{set_name}: the compared runs share no image: no interval"
        set_key = resample_key(set_name, vectors[keys[0]][0][positions[0]])
    try:
        done = resample(set_key, {vectors[k][2]: (vectors[k][1], p) for k, p in zip(keys, positions)})
    except StatsError as error:  # e.g. the shared images hold none that IN-ReaL scores
        return {}, no_interval(error)
    return {k: done[vectors[k][2]] for k in keys}, ""


def _pools(sets: Sequence[str]) -> Dict[str, List[str]]:
    """{image pool: its sets, in order}: the sets resampled together."""
    pools: Dict[str, List[str]] = {}
    for name in sets:
        pools.setdefault(image_pool(name), []).append(name)
    return pools


def classification_differences(rows_a: pd.DataFrame, rows_b: pd.DataFrame, cells: Mapping[Hashable, Cell],
                               side_files: SideFiles, resampler: Resampler) -> Dict[Key, Result]:
    """B − A on every Table 14 cell, avg and Δ the two names share, from one pass per image list."""
    runs = {("a", p): r for p, r in zip(rows_a["probe_key"], rows_a["run_key"])}
    runs |= {("b", p): r for p, r in zip(rows_b["probe_key"], rows_b["run_key"])}
    per_set: Dict[str, Dict[Tuple[str, str], Samples]] = {s: {} for s in TEST_SETS}
    why: Dict[Tuple[str, str, str], str] = {}
    models: Dict[Tuple[str, str, str], Tuple[str, int]] = {}   # the model a cell scores, and its replicas
    for sets in _pools(TEST_SETS).values():
        vectors = {}
        for test_set in sets:
            for (side, probe), run in runs.items():
                cell = cells.get((run, probe, test_set))
                found = side_files.predictions(cell) if cell is not None else None
                if isinstance(found, str):
                    why[(side, probe, test_set)] = found
                elif found is not None:
                    # Every image of the set (IN-ReaL with its scored mask), so IN-1K and ReaL cut alike; every
                    # training replica of the head beside it (one per resample is drawn below).
                    replicas = classification_replicas(found[0], cell)
                    models[(side, probe, test_set)] = (model_of(cell), len(replicas))
                    for r, (token, scored) in enumerate(replicas):
                        vectors[(side, probe, test_set, r)] = (found[0].ids, scored, token, found[1])

        def resample(set_key, aligned):
            return resampler.accuracies(set_key, {t: (c[p], None if m is None else m[p])
                                                  for t, ((c, m), p) in aligned.items()})

        # The sets of a pool list the same images (IN-ReaL's side-file ids are IN-1K's): one cut, one
        # resample. Side files whose sets share no image (hand-made ones) fall back to a set at a time.
        together = not vectors or len(sets) == 1 or len(_common([v[0] for v in vectors.values()])[0]) > 0
        for group in ([sets] if together else [[s] for s in sets]):
            mine = {k: v for k, v in vectors.items() if k[2] in group}
            done, note = _shared_samples(group[0], mine, resample)
            for key in {k[:3] for k in done}:
                model, k = models[key]
                found = over_replicas(resampler.bootstrap, model, [done[(*key, r)] for r in range(k)])
                if isinstance(found, str):
                    why[key] = found
                else:
                    per_set[key[2]][key[:2]] = found
            for key in (mine if note else ()):
                why[key[:3]] = note
    out: Dict[Key, Result] = {}
    for probe in PROBES:
        setting = PROBE_NAMES[probe]
        for test_set in TEST_SETS:
            note = why.get(("a", probe, test_set)) or why.get(("b", probe, test_set)) or NO_PAIR
            out[("classification", setting, test_set)] = _compare(
                per_set[test_set].get(("a", probe)), per_set[test_set].get(("b", probe)), note)
        note = _first_note(why, probe) or NO_PAIR
        out[("classification", setting, "avg")] = _compare(
            _summaries(per_set, TEST_SETS, probe, "a"), _summaries(per_set, TEST_SETS, probe, "b"), note)
    deltas = {}
    for side in ("a", "b"):
        attention, linear = (_summaries(per_set, TEST_SETS, p, side) for p in ("attention_pooling", "linear"))
        deltas[side] = attention - linear if attention is not None and linear is not None else None
    note = _first_note(why, "attention_pooling") or _first_note(why, "linear") or NO_PAIR
    out[("classification", PROBE_NAMES["attention_pooling"], DELTA)] = _compare(deltas["a"], deltas["b"], note)
    return out


def segmentation_differences(runs_a: pd.DataFrame, runs_b: pd.DataFrame, cells: Mapping[str, Cell],
                             side_files: SideFiles, resampler: Resampler) -> Dict[Key, Result]:
    """B − A on every Table 15 cell, mode average, Δ1 and Δ2 the two names share."""
    runs = {(side, d, m): r for side, frame in (("a", runs_a), ("b", runs_b))
            for d, m, r in zip(frame["dataset"], frame["mode"], frame["run"])}
    per_set: Dict[str, Dict[Tuple[str, str], Samples]] = {}
    why: Dict[Tuple[str, str, str], str] = {}
    for dataset in DATASETS:
        vectors, names, models = {}, set(), {}
        for (side, d, mode), run in runs.items():
            if d != dataset:
                continue
            found = side_files.counts(cells[run]) if run in cells else None
            if isinstance(found, str):
                why[(side, mode, dataset)] = found
            elif found is not None:
                # The run and its seed replicas (repeated runs that scored the same images).
                replicas = segmentation_replicas(found[0], cells[run], side_files)
                models[(side, mode)] = (model_of(cells[run]), len(replicas))
                for r, (token, pair) in enumerate(replicas):
                    vectors[(side, mode, r)] = (found[0].ids, pair, token, found[1])
                names.add(tuple(found[0].class_names))
        if len(names) > 1:
            for key in vectors:
                why[(*key[:2], dataset)] = f"{dataset}: the compared runs have different class lists: no interval"
            vectors = {}

        def resample(set_key, aligned):
            return resampler.class_ratios(set_key, {t: (i[p], u[p]) for t, ((i, u), p) in aligned.items()})

        done, note = _shared_samples(dataset, vectors, resample)  # each dataset its own images
        per_set[dataset] = {}
        for key in {k[:2] for k in done}:
            model, k = models[key]
            found = over_replicas(resampler.bootstrap, model, [done[(*key, r)] for r in range(k)])
            if isinstance(found, str):
                why[(*key, dataset)] = found
            else:
                per_set[dataset][key] = found
        for key in (vectors if note else ()):
            why[(*key[:2], dataset)] = note
    out: Dict[Key, Result] = {}
    averages = {}
    for mode in MODES:
        for dataset in DATASETS:
            note = why.get(("a", mode, dataset)) or why.get(("b", mode, dataset)) or NO_PAIR
            out[("segmentation", mode, dataset)] = _compare(
                per_set[dataset].get(("a", mode)), per_set[dataset].get(("b", mode)), note)
        for side in ("a", "b"):
            averages[(side, mode)] = _summaries(per_set, DATASETS, mode, side)
        out[("segmentation", mode, "avg")] = _compare(averages[("a", mode)], averages[("b", mode)],
                                                      _first_note(why, mode) or NO_PAIR)
    for delta, mode in ((DELTA1, "head"), (DELTA2, "full")):
        pair = []
        for side in ("a", "b"):
            top, base = averages[(side, mode)], averages[(side, "linear")]
            pair.append(top - base if top is not None and base is not None else None)
        out[("segmentation", mode, delta)] = _compare(*pair, _first_note(why, mode) or _first_note(why, "linear")
                                                      or NO_PAIR)
    return out


def _first_note(why: Mapping[Tuple[str, str, str], str], setting: str) -> str:
    return next((note for (_, s, _), note in why.items() if s == setting), "")


def compare_names(names: Sequence[str], runs14: pd.DataFrame, seg_runs: pd.DataFrame,
                  classification: Mapping[Hashable, Cell], segmentation: Mapping[str, Cell],
                  side_files: SideFiles, resampler: Resampler) -> Dict[Tuple[str, Key], Result]:
    """{(other, key): Comparison or note} of every other name against the first, as the comparison table wants.

    The family of Holm's adjustment is one comparison: every cell, average and Δ (both tasks) of one
    other name against the first that has a p-value.
    """
    base, out = names[0], {}
    for other in names[1:]:
        found = classification_differences(classification_rows(runs14, base), classification_rows(runs14, other),
                                           classification, side_files, resampler)
        found |= segmentation_differences(segmentation_rows(seg_runs, base), segmentation_rows(seg_runs, other),
                                          segmentation, side_files, resampler)
        out |= {(other, key): result for key, result in adjust(found).items()}
    return out
