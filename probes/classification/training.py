"""The epoch loop shared by live (images → backbone → heads) and cached (stored features → heads) runs.

Features come from a source object with two methods, so the loop does not care where they come from:
``train_batches(epoch)`` yields ``(features, soft_targets, grid_keep)`` (the samples the grid heads learn
from; None: all) and ``eval_batches(image_set)`` yields
``(features, indices)``. As the official loop, every test set can be scored after every epoch: the
per-epoch top-1 is kept (its maximum is what the official log reports) and the final epoch's scores
are the result.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Protocol, Sequence, Tuple

import numpy as np
import torch

from probes.classification.sweep_state import load_checkpoint, save_atomic
from probes.classification.datasets import ImageSet
from probes.classification.distributed import DistInfo, all_gather_objects, all_reduce_sum, barrier
from probes.classification.metrics import Top1Table
from probes.classification.sweep import SweepTrainer
from probes.errors import DatasetError
from probes.progress import Progress

log = logging.getLogger(__name__)
Features = Dict[str, torch.Tensor]


class FeatureSource(Protocol):
    """Where a sweep's features come from (the live backbone or the feature cache)."""

    iters_per_epoch: int
    eval_batch: int
    batch: int
    n_skipped: Dict[str, int]

    def train_batches(self, epoch: int) -> Iterator[Tuple[Features, torch.Tensor, Optional[torch.Tensor]]]: ...

    def eval_batches(self, image_set: ImageSet) -> Iterator[Tuple[Features, torch.Tensor]]: ...


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed every RNG the epoch uses (crops, flips, Mixup, worker seeds) from (seed, epoch, rank).

    Each epoch then replays identically whether it follows the previous epoch in the same process
    or a checkpoint loaded by ``--resume``: that is what makes a resumed run end with the same numbers.
    """
    value = (seed * 1_000_003 + epoch * 1_009 + rank) % (2**31)
    random.seed(value)
    np.random.seed(value)  # timm's Mixup draws lambda and the mode from numpy's global RNG
    torch.manual_seed(value)


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A short hash of the settings a checkpoint must share with the run that resumes it."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class LoopSettings:
    """What the epoch loop needs besides the trainer and the features."""
    epochs: int
    seed: int
    checkpoint: Path
    fingerprint: str
    resume: bool
    show_progress: bool
    log_interval_s: float = 60.0
    eval_every_epoch: bool = True


@dataclass
class EpochScores:
    """Top-1 per (head key, ema, score) after each evaluated epoch (epoch counted from 1)."""
    by_epoch: Dict[int, Dict[Tuple[str, bool, str], float]] = field(default_factory=dict)

    def add(self, epoch: int, tables: Sequence[Tuple[ImageSet, Top1Table]]) -> None:
        """Record one epoch's scores."""
        scores = {}
        for image_set, table in tables:
            for (key, ema, score) in table.counts:
                scores[(key, ema, score)] = table.top1(key, ema, score)[0]
        self.by_epoch[epoch] = scores

    def max_over_epochs(self, key: str, ema: bool, score: str) -> float:
        """The best top-1 of a head over the evaluated epochs (test-set selection, as the official log)."""
        values = [s[(key, ema, score)] for s in self.by_epoch.values() if (key, ema, score) in s]
        values = [v for v in values if v == v]
        return max(values) if values else float("nan")


def train_sweep(trainer: SweepTrainer, source: FeatureSource, loss_fn: torch.nn.Module,
                settings: LoopSettings, dist: DistInfo,
                evaluate: Optional[Callable[[bool], List[Tuple[ImageSet, Top1Table]]]] = None
                ) -> Tuple[EpochScores, List[Tuple[ImageSet, Top1Table]]]:
    """Train every head for the configured epochs, checkpointing after each; evaluate as configured.

    `evaluate(final)` scores the test sets (recording per-image predictions when `final`); it runs after
    every epoch when `eval_every_epoch`, else after the last one. Returns the per-epoch scores and the
    final epoch's tables.
    """
    start, history = 0, EpochScores()
    if settings.resume:
        state = load_checkpoint(settings.checkpoint, settings.fingerprint)
        if state is None:
            log.warning("--resume: no checkpoint at %s, starting from scratch", settings.checkpoint)
        else:
            trainer.load_state_dict(state["trainer"])
            start = int(state["epoch"])
            history.by_epoch = {int(e): {tuple(k): v for k, v in s} for e, s in state.get("epoch_scores", [])}
            log.info("resumed from %s after epoch %d of %d", settings.checkpoint, start, settings.epochs)
    final: List[Tuple[ImageSet, Top1Table]] = []
    for epoch in range(start, settings.epochs):
        seed_epoch(settings.seed, epoch, dist.rank)
        bar = Progress(source.train_batches(epoch), source.iters_per_epoch,
                       f"Epoch(train) [{epoch + 1}/{settings.epochs}]", settings.show_progress and dist.is_main,
                       settings.log_interval_s, images_per_step=source.batch * dist.world)
        for feats, soft_targets, grid_keep in bar:
            losses = trainer.step(feats, soft_targets, loss_fn, grid_keep)
            bar.note(lr=max(trainer.current_lrs().values()), loss=min(losses.values()))
        last = epoch + 1 == settings.epochs
        if evaluate is not None and (settings.eval_every_epoch or last):
            tables = evaluate(last)
            history.add(epoch + 1, tables)
            if last:
                final = tables
        if dist.is_main:
            save_atomic({"epoch": epoch + 1, "trainer": trainer.state_dict(), "fingerprint": settings.fingerprint,
                         "epoch_scores": [(e, list(s.items())) for e, s in history.by_epoch.items()]},
                        settings.checkpoint)
        barrier(dist)
    if evaluate is not None and not final:
        final = evaluate(True)   # resumed after the last epoch: score the finished heads
        if not history.by_epoch:
            history.add(settings.epochs, final)
    return history, final


def evaluate_sweep(trainer: SweepTrainer, source: FeatureSource, image_set: ImageSet,
                   scores: Sequence[str], dist: DistInfo, show_progress: bool, record: bool = False,
                   log_interval_s: float = 60.0) -> Top1Table:
    """Top-1 of every raw and EMA head on one image set (one feature pass for all heads)."""
    scores = tuple(scores)
    table = Top1Table(record=record)
    keys = [(s.key, ema) for s in trainer.bank.specs for ema in (False, True)]
    table.ensure(keys, scores)
    raw, ema = trainer.bank.eval(), trainer.ema.module.eval()
    total = -(-len(image_set) // (dist.world * source.eval_batch))
    batches = Progress(source.eval_batches(image_set), total, f"Eval({image_set.name})",
                       show_progress and dist.is_main, log_interval_s)
    with torch.inference_mode():
        for feats, indices in batches:
            with trainer.autocast():
                logits = {(k, False): v.float() for k, v in raw(feats).items()}
                logits.update({(k, True): v.float() for k, v in ema(feats).items()})
            table.update(logits, indices, image_set, scores)
    table.all_reduce(lambda t: all_reduce_sum(t, dist), lambda obj: all_gather_objects(obj, dist))
    if sum(n for _, n in table.counts.values()) == 0:
        raise DatasetError(f"{image_set.name}: no image under {image_set.root} could be scored.")
    return table
