"""Mixup/CutMix on the device, drawn per group of images as the official per-GPU batches did."""
from __future__ import annotations

from typing import Tuple

import torch
from timm.data import Mixup


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
