"""Features computed live: images → augmentation → frozen backbone (inference mode) → heads' inputs."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Mapping, Tuple

import torch
from timm.data import Mixup
from timm.data.mixup import mixup_target
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from probes.classification.datasets import ImageSet
from probes.classification.distributed import DistInfo, ShardSampler
from probes.classification.images import ImageFiles, check_errors, collate, eval_transform, train_transform
from probes.classification.sweep import make_features
from probes.errors import ConfigError

Features = Dict[str, torch.Tensor]


def backbone_features(encoder: nn.Module, images: torch.Tensor, need_tokens: bool, need_pooled: bool,
                      autocast: Callable[[], Any]) -> Features:
    """Run the frozen encoder once and build every head's input from its tokens.

    The backbone runs under inference mode (no activations kept); the features are then cloned
    outside it, because inference tensors cannot be saved for the heads' backward pass.
    """
    with torch.inference_mode(), autocast():
        tokens = encoder.forward_features(images)
        feats = make_features(tokens, encoder.num_prefix_tokens, need_tokens, need_pooled)
    return {k: v.clone() for k, v in feats.items()}


class LiveSource:
    """Train and eval batches straight from the image files through the backbone."""

    def __init__(self, encoder: nn.Module, train: ImageSet, cfg: Mapping[str, Any], dist: DistInfo,
                 need_tokens: bool, need_pooled: bool, autocast: Callable[[], Any]) -> None:
        self.encoder = encoder
        self.cfg = cfg
        self.dist = dist
        self.need_tokens, self.need_pooled = need_tokens, need_pooled
        self.autocast = autocast
        tcfg = cfg["train"]
        mean, std = encoder.data_config["mean"], encoder.data_config["std"]
        size = cfg["image_size"]
        self.eval_tf = eval_transform(size, mean, std, cfg["interpolation"])
        self.batch = per_rank_batch(tcfg["batch_size"], dist.world, "train.batch_size")
        self.eval_batch = per_rank_batch(tcfg["eval_batch_size"] or tcfg["batch_size"], dist.world,
                                         "train.eval_batch_size")
        self.train_set = ImageFiles(train.files, train.targets, train_transform(
            size, mean, std, cfg["interpolation"], tcfg["scale"], tcfg["ratio"], tcfg["hflip"]))
        self.sampler = DistributedSampler(self.train_set, num_replicas=dist.world, rank=dist.rank,
                                          shuffle=True, seed=tcfg["seed"])
        self.iters_per_epoch = len(self.sampler) // self.batch
        # Checked by the runner (a cached run never trains from these batches).
        use_mix = tcfg["mixup"] > 0 or tcfg["cutmix"] > 0
        self.mixup = Mixup(mixup_alpha=tcfg["mixup"], cutmix_alpha=tcfg["cutmix"],
                           switch_prob=tcfg["mixup_switch_prob"], label_smoothing=tcfg["smoothing"],
                           num_classes=cfg["probe"]["num_classes"]) if use_mix else None
        self.n_skipped: Dict[str, int] = {}

    def _loader(self, dataset, batch: int, sampler, drop_last: bool) -> DataLoader:
        workers = int(self.cfg["data"]["workers"])
        return DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=drop_last,
                          num_workers=workers, collate_fn=collate,
                          pin_memory=self.dist.device.type == "cuda",
                          persistent_workers=False, prefetch_factor=4 if workers else None)

    def _count(self, name: str, batch: Mapping[str, Any]) -> None:
        skipped = check_errors(batch, self.cfg["data"]["on_corrupt"])
        self.n_skipped[name] = self.n_skipped.get(name, 0) + skipped

    def train_batches(self, epoch: int) -> Iterator[Tuple[Features, torch.Tensor]]:
        """One epoch of (features, soft targets): Mixup/CutMix on the images, smoothing on labels."""
        self.sampler.set_epoch(epoch)
        loader = self._loader(self.train_set, self.batch, self.sampler, drop_last=True)
        device = self.dist.device
        for batch in loader:
            self._count("train", batch)
            images, targets = batch["images"], batch["targets"]
            if self.mixup is not None and len(images) % 2:
                # Mixup pairs images; a skipped corrupt file can leave an odd batch.
                images, targets = images[:-1], targets[:-1]
            if len(images) < 2:
                continue
            images = images.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            if self.mixup is not None:
                images, soft = self.mixup(images, targets)
            else:
                soft = mixup_target(targets, self.cfg["probe"]["num_classes"], 1.0,
                                    self.cfg["train"]["smoothing"])
            yield backbone_features(self.encoder, images, self.need_tokens, self.need_pooled,
                                    self.autocast), soft

    def eval_batches(self, image_set: ImageSet) -> Iterator[Tuple[Features, torch.Tensor]]:
        """(features, positions in the set) with the evaluation transform, sharded over ranks."""
        dataset = ImageFiles(image_set.files, image_set.targets, self.eval_tf)
        sampler = ShardSampler(len(dataset), self.dist.rank, self.dist.world)
        for batch in self._loader(dataset, self.eval_batch, sampler, drop_last=False):
            self._count(image_set.name, batch)
            if len(batch["images"]) == 0:
                continue
            images = batch["images"].to(self.dist.device, non_blocking=True)
            yield backbone_features(self.encoder, images, self.need_tokens, self.need_pooled,
                                    self.autocast), batch["indices"]


def per_rank_batch(total: int, world: int, key: str) -> int:
    """The per-process batch for a total batch; it must split evenly over the processes."""
    if total % world:
        raise ConfigError(f"{key}={total} does not split evenly over {world} processes.")
    return total // world
