"""The epoch loop shared by live (images → backbone → heads) and cached (stored features → heads) runs.

Features come from a source object with two methods, so the loop does not care where they come from:
``train_batches(epoch)`` yields ``(features, soft_targets)`` and ``eval_batches(image_set)`` yields
``(features, indices)``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, Protocol, Tuple

import numpy as np
import torch
from tqdm import tqdm

from probes.classification.checkpoint import load_checkpoint, save_atomic
from probes.classification.datasets import ImageSet
from probes.classification.distributed import DistInfo, all_reduce_sum, barrier
from probes.classification.metrics import Top1Table
from probes.classification.sweep import SweepTrainer
from probes.errors import DatasetError

log = logging.getLogger(__name__)
Features = Dict[str, torch.Tensor]


class FeatureSource(Protocol):
    """Where a sweep's features come from (the live backbone or the feature cache)."""

    iters_per_epoch: int
    eval_batch: int
    n_skipped: Dict[str, int]

    def train_batches(self, epoch: int) -> Iterator[Tuple[Features, torch.Tensor]]: ...

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


def progress(iterable: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    """A tqdm bar with ETA on the main process only."""
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, dynamic_ncols=True,
                leave=False, mininterval=1.0)


@dataclass
class LoopSettings:
    """What the epoch loop needs besides the trainer and the features."""
    epochs: int
    seed: int
    checkpoint: Path
    fingerprint: str
    resume: bool
    show_progress: bool


def train_sweep(trainer: SweepTrainer, source: FeatureSource, loss_fn: torch.nn.Module,
                settings: LoopSettings, dist: DistInfo, autocast: Callable[[], Any]) -> None:
    """Train every head for the configured epochs, checkpointing after each epoch."""
    start = 0
    if settings.resume:
        state = load_checkpoint(settings.checkpoint, settings.fingerprint)
        if state is None:
            log.warning("--resume: no checkpoint at %s, starting from scratch", settings.checkpoint)
        else:
            trainer.load_state_dict(state["trainer"])
            start = int(state["epoch"])
            log.info("resumed from %s after epoch %d of %d", settings.checkpoint, start, settings.epochs)
    for epoch in range(start, settings.epochs):
        seed_epoch(settings.seed, epoch, dist.rank)
        bar = progress(source.train_batches(epoch), source.iters_per_epoch,
                       f"epoch {epoch + 1}/{settings.epochs}", settings.show_progress and dist.is_main)
        for feats, soft_targets in bar:
            losses = trainer.step(feats, soft_targets, loss_fn, autocast())
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{min(losses.values()):.3f}", refresh=False)
        if dist.is_main:
            save_atomic({"epoch": epoch + 1, "trainer": trainer.state_dict(),
                         "fingerprint": settings.fingerprint}, settings.checkpoint)
        barrier(dist)


def evaluate_sweep(trainer: SweepTrainer, source: FeatureSource, image_set: ImageSet,
                   scores: Iterable[str], dist: DistInfo, autocast: Callable[[], Any],
                   show_progress: bool) -> Top1Table:
    """Top-1 of every raw and EMA head on one image set (one feature pass for all heads)."""
    scores = tuple(scores)
    table = Top1Table()
    keys = [(s.key, ema) for s in trainer.bank.specs for ema in (False, True)]
    table.ensure(keys, scores)
    raw, ema = trainer.bank.eval(), trainer.ema.module.eval()
    total = math.ceil(len(image_set) / dist.world / source.eval_batch)
    batches = progress(source.eval_batches(image_set), total, f"eval {image_set.name}",
                       show_progress and dist.is_main)
    with torch.inference_mode():
        for feats, indices in batches:
            with autocast():
                logits = {(k, False): v.float() for k, v in raw(feats).items()}
                logits.update({(k, True): v.float() for k, v in ema(feats).items()})
            table.update(logits, indices, image_set, scores)
    table.all_reduce(lambda t: all_reduce_sum(t, dist))
    if sum(n for _, n in table.counts.values()) == 0:
        raise DatasetError(f"{image_set.name}: no image under {image_set.root} could be scored.")
    return table
