"""Result rows of a `probes classify` run: which head is the published one, which one the held-out split picks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from probes.classification.datasets import ImageSet
from probes.classification.metrics import Top1Table
from probes.classification.sweep import HeadSpec
from probes.classification.training import EpochScores
from probes.protocol import ProtocolWords
from probes.results import (CACHED_PROTOCOL, GRID_HEAD, LR_GRID_PROTOCOL, MODIFIED_PROTOCOL, PUBLISHED_HEAD,
                            STANDARD_PROTOCOL)

HeadChoice = Tuple[str, bool]   # (head key, EMA weights?)


@dataclass(frozen=True)
class RunFacts:
    """What every row of one run states."""
    run_id: str
    encoder: str
    encoder_version: str
    last_layer: int
    epochs: Any
    image_size: int
    precision: str
    protocol: ProtocolWords
    subset_train: bool
    predictions: str
    date: str
    seeds: int = 1   # training replicas of every head (`train.seeds`); rows score replica 0


def is_published(spec: HeadSpec, ema: bool) -> bool:
    """The head comparable with the paper: the published head's raw weights (published lr, last block), replica 0."""
    return spec.published and not ema and not spec.replica


def has_rows(spec: HeadSpec, ema: bool) -> bool:
    """Every grid head (raw and EMA) has rows; of a published head only the raw weights, the published result.

    A published head trained on the held-out images too, so neither its weights nor their EMA may be picked
    on them.
    """
    return not (spec.published and ema)


def select_heads(specs: Sequence[HeadSpec], heldout: Top1Table) -> Dict[Tuple[str, Optional[int]], HeadChoice]:
    """Per (probe, block): the (head, EMA?) with the best held-out top-1 (never a test set)."""
    best: Dict[Tuple[str, Optional[int]], Tuple[float, HeadChoice]] = {}
    for spec in specs:
        if spec.published or spec.replica:
            continue   # it learned from the held-out images; replicas follow their replica 0's choice
        for ema in (False, True):
            top, _ = heldout.top1(spec.key, ema, "heldout")
            group = (spec.probe, spec.layer)
            if group not in best or top > best[group][0]:
                best[group] = (top, (spec.key, ema))
    return {group: choice for group, (_, choice) in best.items()}


def _protocol(facts: RunFacts, published: bool, spec: HeadSpec, ema: bool, published_lr: float) -> Dict[str, str]:
    words = facts.protocol
    if published or words.protocol not in (STANDARD_PROTOCOL, MODIFIED_PROTOCOL):
        return words.as_row()   # cached / demo runs keep their word on every row
    head = f"lr {spec.lr:g}" + (", EMA" if ema else "") + (f", block {spec.layer}" if spec.layer else "")
    note = (f"lr-grid head ({head}; trained without the held-out images; the published head is lr "
            f"{published_lr:g}, raw, last block, trained on every image)")
    return {"protocol": LR_GRID_PROTOCOL, "protocol_notes": "; ".join(filter(None, [note, words.notes]))}


def head_rows(facts: RunFacts, specs: Sequence[HeadSpec], tests: Sequence[Tuple[ImageSet, Top1Table]],
              heldout: Top1Table, history: EpochScores, skipped: Mapping[str, int], published_lr: float
              ) -> List[Dict[str, Any]]:
    """One row per (head, EMA, test set): published head marked, held-out choice `selected`.

    Rows score replica 0 of each head (what a 1-seed run trains); the other replicas go to the side file.
    """
    chosen = select_heads(specs, heldout)
    rows = []
    for spec in specs:
        if spec.replica:
            continue
        for ema in (False, True):
            if not has_rows(spec, ema):
                continue
            published = is_published(spec, ema)
            for image_set, table in tests:
                for score in image_set.scores:
                    top1, n = table.top1(spec.key, ema, score)
                    rows.append({
                        "run_id": facts.run_id, "encoder": facts.encoder, "encoder_version": facts.encoder_version,
                        "probe": spec.probe, "layer": spec.layer or facts.last_layer,
                        "head": PUBLISHED_HEAD if published else GRID_HEAD, "lr": spec.lr, "ema": ema,
                        "test_set": score, "n_images": n, "top1": round(top1, 3),
                        "max_over_epochs_top1": round(history.max_over_epochs(spec.key, ema, score), 3),
                        "epochs": facts.epochs, "image_size": facts.image_size, "precision": facts.precision,
                        **_protocol(facts, published, spec, ema, published_lr),
                        "subset": bool(image_set.subset.get(score) or facts.subset_train),
                        "selected": chosen.get((spec.probe, spec.layer)) == (spec.key, ema),
                        # The published head learned from the held-out images: its score there means nothing.
                        "heldout_top1": None if spec.published else
                        round(heldout.top1(spec.key, ema, "heldout")[0], 3),
                        "n_skipped": skipped.get(image_set.name, 0), "predictions": facts.predictions,
                        "date": facts.date, "n_skipped_train": skipped.get("train", 0),
                        "seeds": facts.seeds})
    return rows


def baseline_rows(facts: RunFacts, names: Sequence[str], tests: Sequence[Tuple[ImageSet, Top1Table]],
                  heldout: Top1Table, skipped: Mapping[str, int]) -> List[Dict[str, Any]]:
    """kNN / logistic-regression rows (cached features): one model each, so each is its own choice."""
    rows = []
    for name in names:
        for image_set, table in tests:
            for score in image_set.scores:
                top1, n = table.top1(name, False, score)
                rows.append({
                    "run_id": facts.run_id, "encoder": facts.encoder, "encoder_version": facts.encoder_version,
                    "probe": name, "layer": facts.last_layer, "head": GRID_HEAD, "lr": "", "ema": False,
                    "test_set": score, "n_images": n, "top1": round(top1, 3), "max_over_epochs_top1": "",
                    "epochs": "", "image_size": facts.image_size, "precision": facts.precision,
                    "protocol": CACHED_PROTOCOL if facts.protocol.protocol != "demo" else facts.protocol.protocol,
                    "protocol_notes": facts.protocol.notes,
                    "subset": bool(image_set.subset.get(score) or facts.subset_train), "selected": True,
                    "heldout_top1": round(heldout.top1(name, False, "heldout")[0], 3),
                    "n_skipped": skipped.get(image_set.name, 0), "predictions": "", "date": facts.date,
                    "n_skipped_train": skipped.get("train", 0), "seeds": 1})
    return rows
