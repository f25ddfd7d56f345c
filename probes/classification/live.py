"""Features computed live: uint8 images → device batches (normalise, Mixup) → frozen backbone → heads' inputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Set, Tuple

import torch
from timm.data import Mixup
from timm.data.mixup import mixup_target
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from probes.classification.config import DataSpec, ImageSpec, TrainRecipe
from probes.classification.datasets import ImageSet
from probes.classification.device_batches import DeviceBatches
from probes.classification.distributed import DistInfo, ShardSampler, all_gather_objects
from probes.classification.image_paths import crop_paths
from probes.classification.sweep import FeatureNeeds, make_features
from probes.errors import ConfigError, TrainingDivergedError
from probes.runtime import default_workers

Features = Dict[str, torch.Tensor]


@dataclass(frozen=True)
class Preprocessing:
    """What every image goes through: the resize/crop (see image_paths), the normalisation on the device."""
    size: int
    interpolation: str
    crop_pct: float
    mean: Sequence[float]
    std: Sequence[float]

    @classmethod
    def resolve(cls, image: ImageSpec, data_config: dict) -> "Preprocessing":
        """The recipe's values, falling back to the encoder's own `data_config` where the recipe says None."""
        return cls(image.size, image.interpolation or data_config.get("interpolation", "bicubic"),
                   image.crop_pct if image.crop_pct is not None else float(data_config.get("crop_pct", 1.0)),
                   tuple(data_config["mean"]), tuple(data_config["std"]))


def backbone_features(encoder: nn.Module, images: torch.Tensor, needs: FeatureNeeds,
                      autocast: Callable[[], Any]) -> Features:
    """Run the frozen encoder once and build every head's input from its tokens.

    The backbone runs under inference mode (no activations kept); the features are then cloned
    outside it, because inference tensors cannot be saved for the heads' backward pass.
    """
    with torch.inference_mode(), autocast():
        if needs.layers:
            indices = sorted({layer - 1 for layer in needs.layers} | {encoder.num_layers - 1})
            outputs = encoder.forward_intermediates(images, indices, output_fmt="NLC", intermediates_only=True,
                                                    return_prefix_tokens=True)
            by_layer = {i + 1: torch.cat([prefix, patches], dim=1) for i, (patches, prefix) in zip(indices, outputs)}
            tokens = by_layer[encoder.num_layers]
        else:
            tokens, by_layer = encoder.forward_features(images), {}
        feats = make_features(tokens, encoder.num_prefix_tokens, needs, by_layer)
    bad = [name for name, value in feats.items() if not torch.isfinite(value).all()]
    if bad:
        raise TrainingDivergedError(non_finite_features_message(encoder, images, bad[0], autocast))
    return {k: v.clone() for k, v in feats.items()}


def non_finite_features_message(encoder: nn.Module, images: torch.Tensor, feature: str,
                                autocast: Callable[[], Any]) -> str:
    """Name the first encoder block whose output is not finite (run again on the offending batch)."""
    first = None
    if hasattr(encoder, "forward_intermediates") and hasattr(encoder, "num_layers"):
        with torch.inference_mode(), autocast():
            outputs = encoder.forward_intermediates(images, list(range(encoder.num_layers)), output_fmt="NLC",
                                                    intermediates_only=True)
        first = next((i for i, out in enumerate(outputs) if not torch.isfinite(out).all()), None)
    where = f"encoder block {first}" if first is not None else f"the {feature} features"
    return (f"non-finite values from {where} of {getattr(encoder, 'name', getattr(encoder, 'version', 'the encoder'))}"
            " (likely an fp16 overflow: try train.precision=bf16 or fp32; or a bad checkpoint); no rows written")


class GroupedMixup:
    """timm's Mixup/CutMix applied to each group of `group` images of a batch, in place.

    The official run calls its Mixup on each GPU's 16-image batch: one lambda and one CutMix box per 16
    images, each image mixed with its mirror in the group. Drawing per group of the same size keeps that
    granularity whatever the process batch (1,024 images on one GPU are 64 groups, not one draw).
    """

    def __init__(self, mixup: Mixup, group: int) -> None:
        self.mixup, self.group = mixup, int(group)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        soft = []
        for chunk, labels in zip(images.split(self.group), targets.split(self.group)):
            mixed, chunk_soft = self.mixup(chunk, labels)
            if mixed.data_ptr() != chunk.data_ptr():   # timm mixes in place; never lose a copy if it did not
                chunk.copy_(mixed)
            soft.append(chunk_soft)
        return images, torch.cat(soft)

    def partners(self, flags: torch.Tensor) -> torch.Tensor:
        """Each sample's flag OR its Mixup partner's (the mirror image in its group)."""
        return flags | torch.cat([chunk.flip(0) for chunk in flags.split(self.group)])


class LiveSource:
    """Train and eval batches straight from the image files through the backbone.

    `heldout` marks the training images that are also the held-out split: they pass the backbone with the
    rest and feed the published heads only (`train_batches` yields which samples the grid heads may use).
    """

    def __init__(self, encoder: nn.Module, train: ImageSet, pre: Preprocessing, recipe: TrainRecipe,
                 data: DataSpec, num_classes: int, dist: DistInfo, needs: FeatureNeeds,
                 autocast: Callable[[], Any], heldout: Optional[Sequence[bool]] = None) -> None:
        self.encoder, self.pre, self.recipe, self.data = encoder, pre, recipe, data
        self.heldout = None if heldout is None else torch.as_tensor(list(heldout), dtype=torch.bool)
        self.num_classes, self.dist, self.needs, self.autocast = num_classes, dist, needs, autocast
        self.batch = per_rank_batch(recipe.batch_size, dist.world, "train.batch_size")
        self.eval_batch = per_rank_batch(recipe.eval_batch_size or recipe.batch_size, dist.world,
                                         "train.eval_batch_size")
        # The one place choosing how images reach the device (see crop_paths).
        self.paths = crop_paths(pre, recipe, data, dist.device, sample=train)
        self.train_set = self.paths.train_set(train)
        self.sampler = DistributedSampler(self.train_set, num_replicas=dist.world, rank=dist.rank,
                                          shuffle=True, seed=recipe.seed)
        self.iters_per_epoch = len(self.sampler) // self.batch
        use_mix = recipe.mixup > 0 or recipe.cutmix > 0
        self.mixup = GroupedMixup(Mixup(mixup_alpha=recipe.mixup, cutmix_alpha=recipe.cutmix,
                                        switch_prob=recipe.mixup_switch_prob, label_smoothing=recipe.smoothing,
                                        num_classes=num_classes), recipe.mixup_group) if use_mix else None
        # Per set, the errors of the files left out (data.on_corrupt='skip'), over every pass of the run.
        self.skipped: Dict[str, Set[str]] = {}
        self.logged: Set[str] = set()   # one log line per file, though several sets and epochs read it

    def _loader(self, dataset, batch: int, sampler, drop_last: bool, collate_fn: Callable) -> DataLoader:
        workers = default_workers() if self.data.workers is None else int(self.data.workers)
        return DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=drop_last,
                          num_workers=workers, collate_fn=collate_fn,
                          pin_memory=self.dist.device.type == "cuda",
                          persistent_workers=False, prefetch_factor=4 if workers else None)

    def _device_batches(self, name: str, loader: DataLoader, mixup: Optional[Mixup], min_images: int,
                        decode: Optional[Callable] = None) -> DeviceBatches:
        return DeviceBatches(loader, self.dist.device, self.pre.mean, self.pre.std, on_corrupt=self.data.on_corrupt,
                             mixup=mixup, min_images=min_images, decode=decode,
                             skipped=self.skipped.setdefault(name, set()), logged=self.logged)

    def skipped_counts(self, names: Sequence[str]) -> Dict[str, int]:
        """Distinct files left out per set over the run, on every process (sets are read once per epoch,
        and a training file may reach different processes in different epochs: files, not reads, count)."""
        gathered = all_gather_objects({n: sorted(self.skipped.get(n, ())) for n in names}, self.dist)
        return {n: len(set().union(*(g[n] for g in gathered))) for n in names}

    def features(self, images: torch.Tensor, needs: Optional[FeatureNeeds] = None) -> Features:
        """Heads' inputs for a normalised device batch (`needs` defaults to the sweep's)."""
        return backbone_features(self.encoder, images, needs or self.needs, self.autocast)

    def train_batches(self, epoch: int) -> Iterator[Tuple[Features, torch.Tensor, Optional[torch.Tensor]]]:
        """One epoch of (features, soft targets, grid mask): Mixup/CutMix per group, smoothing on labels.

        The mask (None without held-out images) is False for a held-out image and for any image mixed with one.
        """
        self.sampler.set_epoch(epoch)
        loader = self._loader(self.train_set, self.batch, self.sampler, drop_last=True,
                              collate_fn=self.paths.train_collate)
        # Heads with BatchNorm need two images; Mixup pairs images (odd batches lose one).
        batches = self._device_batches("train", loader, self.mixup, min_images=2, decode=self.paths.train_hook)
        for batch in batches:
            soft = batch["targets"] if self.mixup is not None else \
                mixup_target(batch["targets"], self.num_classes, 1.0, self.recipe.smoothing)
            keep = None
            if self.heldout is not None:
                held = self.heldout[torch.as_tensor(batch["indices"], dtype=torch.long)].to(soft.device)
                keep = ~(self.mixup.partners(held) if self.mixup is not None else held)
            yield self.features(batch["images"]), soft, keep

    def eval_batches(self, image_set: ImageSet, needs: Optional[FeatureNeeds] = None
                     ) -> Iterator[Tuple[Features, torch.Tensor]]:
        """(features, positions in the set) with the evaluation transform, sharded over ranks."""
        dataset = self.paths.eval_set(image_set)
        sampler = ShardSampler(len(dataset), self.dist.rank, self.dist.world)
        loader = self._loader(dataset, self.eval_batch, sampler, drop_last=False, collate_fn=self.paths.eval_collate)
        batches = self._device_batches(image_set.name, loader, None, 1, decode=self.paths.eval_hook)
        for batch in batches:
            yield self.features(batch["images"], needs), batch["indices"]


def per_rank_batch(total: int, world: int, key: str) -> int:
    """The per-process batch for a total batch; it must split evenly over the processes."""
    if total % world:
        raise ConfigError(f"{key}={total} does not split evenly over {world} processes.")
    return total // world
