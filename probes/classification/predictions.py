"""The run's per-image side file: top-5 and correct/incorrect of the published and selected heads, per set."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Mapping, Sequence, Tuple

import numpy as np

from probes.classification.datasets import ImageSet
from probes.classification.metrics import Top1Table
from probes.classification.sweep import HeadSpec
from probes.results import prediction_head_name, replica_head_name
from probes.sidefiles import HeadPredictions, RealLabels, SetPredictions, write_classification_predictions

HELDOUT = "heldout"


def kept_heads(specs: Sequence[HeadSpec], chosen: Iterable[Tuple[str, bool]], published: Iterable[Tuple[str, bool]],
               last_layer: int) -> Dict[Tuple[str, bool], str]:
    """(head key, EMA?) -> side-file name, for the published head(s) and every held-out choice, and every
    training replica of those (`replica_head_name`: `<name>_seed<r>`)."""
    by_key = {s.key: s for s in specs}
    replicas = {}
    for spec in specs:
        replicas.setdefault(spec.first, []).append(spec)
    keep = {}
    published_heads = {(by_key[k].probe, by_key[k].lr, e, by_key[k].layer) for k, e in published}
    for key, ema in [*published, *chosen]:
        spec = by_key[key]
        twin = not spec.published and (spec.probe, spec.lr, ema, spec.layer) in published_heads
        name = prediction_head_name(spec.probe, spec.lr, ema, spec.layer or last_layer, twin)
        for replica in replicas[spec]:
            keep[(replica.key, ema)] = replica_head_name(name, replica.replica)
    return keep


def _set_predictions(image_set: ImageSet, table: Top1Table, score: str,
                     keep: Mapping[Tuple[str, bool], str]) -> SetPredictions:
    rows = None
    heads = {}
    for head, name in keep.items():
        positions, top5 = table.per_image(head)
        rows = positions if rows is None else rows
        top1 = top5[:, 0].astype(np.int64)
        if score == "IN-ReaL":
            correct = np.array([int(p) in image_set.real_labels[i] for p, i in zip(top1, positions)], dtype=bool)
        else:
            correct = top1 == np.asarray(image_set.targets, dtype=np.int64)[positions]
        heads[name] = HeadPredictions(top5.astype(np.int16), correct)
    ids = np.array([str(Path(image_set.files[i]).relative_to(image_set.root)) for i in rows], dtype=str)
    if score == "IN-ReaL":
        return SetPredictions(ids, None, heads, RealLabels.from_lists(image_set.real_labels[i] for i in rows))
    return SetPredictions(ids, np.asarray(image_set.targets, dtype=np.int64)[rows], heads)


def write_run_predictions(path: Path, tests: Sequence[Tuple[ImageSet, Top1Table]], heldout: Tuple[ImageSet, Top1Table],
                          keep: Mapping[Tuple[str, bool], str]) -> Path:
    """Write the side file of one run (every test set under each of its scores, and the held-out split)."""
    sets = {score: _set_predictions(image_set, table, score, keep)
            for image_set, table in tests for score in image_set.scores}
    sets[HELDOUT] = _set_predictions(heldout[0], heldout[1], HELDOUT, keep)
    return write_classification_predictions(path, sets)
