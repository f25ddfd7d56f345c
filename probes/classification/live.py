"""Features computed live: uint8 images → device batches (normalise, Mixup) → frozen backbone → heads' inputs."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

import torch
from timm.data.mixup import mixup_target
from torch import nn

from probes.classification.config import DataSpec, TrainRecipe
from probes.classification.datasets import ImageSet
from probes.classification.distributed import DistInfo
from probes.classification.pipeline import Preprocessing, build_pipeline
from probes.classification.sweep import FeatureNeeds, make_features
from probes.errors import ConfigError, TrainingDivergedError

Features = Dict[str, torch.Tensor]


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
        # Loaders, crops and the device-side step (normalise, Mixup): the image pipeline's one builder.
        self.images = build_pipeline(train, pre, recipe, data, num_classes, dist, self.batch, self.eval_batch)
        self.mixup = self.images.mixup
        self.iters_per_epoch = len(self.images.sampler) // self.batch

    def skipped_counts(self, names: Sequence[str]) -> Dict[str, int]:
        """Distinct files left out per set over the run, on every process (see ImagePipeline.skipped_counts)."""
        return self.images.skipped_counts(names)

    def features(self, images: torch.Tensor, needs: Optional[FeatureNeeds] = None) -> Features:
        """Heads' inputs for a normalised device batch (`needs` defaults to the sweep's)."""
        return backbone_features(self.encoder, images, needs or self.needs, self.autocast)

    def train_batches(self, epoch: int) -> Iterator[Tuple[Features, torch.Tensor, Optional[torch.Tensor]]]:
        """One epoch of (features, soft targets, grid mask): Mixup/CutMix per group, smoothing on labels.

        The mask (None without held-out images) is False for a held-out image and for any image mixed with one.
        """
        for batch in self.images.train_batches(epoch):
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
        for batch in self.images.eval_batches(image_set):
            yield self.features(batch["images"], needs), batch["indices"]


def per_rank_batch(total: int, world: int, key: str) -> int:
    """The per-process batch for a total batch; it must split evenly over the processes."""
    if total % world:
        raise ConfigError(f"{key}={total} does not split evenly over {world} processes.")
    return total // world
