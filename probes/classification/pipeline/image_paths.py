"""The one place that decides how images travel from files to a uint8 batch on the device.

Three ways, chosen from ``data.decode`` and ``data.crop_on`` (:mod:`.crop_choice`: 'auto' times the first two):
- worker crops: workers decode and resize with Pillow, return uint8 crops (:mod:`.images`);
- device crops: workers decode, crop and plan; the device resizes exactly as Pillow would
  (:mod:`.device_crops`): the same pixels for a fraction of a worker's time;
- ``data.decode='gpu'`` (training only, not the published protocol): workers read bytes, the GPU
  decodes and crops on tensors (:mod:`.gpu_decode`).
Normalisation always happens afterwards, on the device (:mod:`.device_batches`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch.utils.data import Dataset

from probes.classification.config import DataSpec, TrainRecipe
from probes.classification.datasets import ImageSet
from probes.classification.pipeline.crop_choice import crop_place, time_crop_paths
from probes.classification.pipeline.device_crops import DeviceCrops, EvalCropPlans, TrainCropPlans, collate_plans
from probes.classification.pipeline.gpu_decode import (
    EncodedFiles, TensorDecodeCrops, collate_encoded, decode_protocol_note)
from probes.classification.pipeline.images import ImageFiles, build_eval_transform, build_train_transform, collate
from probes.classification.pipeline.preprocessing import Preprocessing
from probes.errors import ConfigError


@dataclass(frozen=True)
class CropPaths:
    """Datasets, collate functions and device-side hooks for the training and evaluation loaders."""
    train_transform: Optional[Callable]  # None: data.decode='gpu', the training set yields file bytes
    train_collate: Callable
    train_hook: Optional[Callable]
    eval_transform: Callable
    eval_collate: Callable
    eval_hook: Optional[Callable]
    encoded_train: bool

    def train_set(self, images: ImageSet) -> Dataset:
        """The training set's dataset for this path."""
        if self.encoded_train:
            return EncodedFiles(images.files, images.targets)
        return ImageFiles(images.files, images.targets, self.train_transform)

    def eval_set(self, images: ImageSet) -> Dataset:
        """An evaluation set's dataset for this path."""
        return ImageFiles(images.files, images.targets, self.eval_transform)


def crop_paths(pre: Preprocessing, recipe: TrainRecipe, data: DataSpec, device: torch.device,
               sample: Optional[ImageSet] = None) -> CropPaths:
    """The paths for a run: device crops where ``data.crop_on`` asks ('auto': where timed faster on ``sample``)."""
    device = torch.device(device)

    def measure():
        if sample is None:
            raise ValueError("crop_paths: data.crop_on='auto' on CUDA needs sample images to time the paths")
        return time_crop_paths(sample, pre.size, pre.interpolation, recipe, device)

    on_device = crop_place(data.crop_on, device, measure) == "device"
    crop_args = (pre.size, pre.interpolation, recipe.scale, recipe.ratio, recipe.hflip)
    resample = DeviceCrops(device, pre.interpolation) if on_device else None
    evaluation: tuple = (build_eval_transform(pre.size, pre.interpolation, pre.crop_pct), collate, None)
    if resample is not None:
        try:
            evaluation = (EvalCropPlans(pre.size, pre.interpolation, pre.crop_pct), collate_plans, resample)
        except ConfigError:
            if data.crop_on == "device":
                raise
            # 'auto' and an evaluation crop that pads (crop_pct > 1): Pillow in the workers.
    if decode_protocol_note(data.decode, device) is not None:
        training: tuple = (None, collate_encoded, TensorDecodeCrops(device, *crop_args))
    elif resample is not None:
        training = (TrainCropPlans(*crop_args), collate_plans, resample)
    else:
        training = (build_train_transform(*crop_args), collate, None)
    return CropPaths(*training, *evaluation, encoded_train=training[0] is None)
