"""The one place that decides how images travel from files to a uint8 batch on the device.

Three ways, chosen from ``data.decode`` and ``data.crop_on`` (:mod:`.crop_choice`: 'auto' times the first two);
each module builds its own way's halves (a :class:`~.images.SetCrops` per set) from one :class:`~.images.CropSpec`:
- worker crops: workers decode and resize with Pillow, return uint8 crops (:func:`.images.worker_crops`);
- device crops: workers decode, crop and plan; the device resizes exactly as Pillow would
  (:func:`.device_crops.crops_on_device`): the same pixels for a fraction of a worker's time;
- ``data.decode='gpu'`` (training only, not the published protocol): workers read bytes, the GPU
  decodes and crops on tensors (:func:`.gpu_decode.gpu_decoded_crops`).
Normalisation always happens afterwards, on the device (:mod:`.device_batches`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch.utils.data import Dataset

from probes.classification.config import DataSpec, TrainRecipe
from probes.classification.datasets import ImageSet
from probes.classification.pipeline.crop_choice import CropTiming, crop_place, time_paths
from probes.classification.pipeline.device_crops import crops_on_device
from probes.classification.pipeline.gpu_decode import decode_protocol_note, gpu_decoded_crops
from probes.classification.pipeline.images import CropSpec, SetCrops, worker_crops
from probes.classification.pipeline.preprocessing import Preprocessing


@dataclass(frozen=True)
class CropPaths:
    """How the training and the evaluation images travel: each set's transform, collate, device step, dataset."""
    train: SetCrops
    eval: SetCrops

    def train_set(self, images: ImageSet) -> Dataset:
        """The training set's dataset for this path."""
        return self.train.dataset(images.files, images.targets)

    def eval_set(self, images: ImageSet) -> Dataset:
        """An evaluation set's dataset for this path."""
        return self.eval.dataset(images.files, images.targets)


def crop_paths(pre: Preprocessing, recipe: TrainRecipe, data: DataSpec, device: torch.device,
               sample: Optional[ImageSet] = None) -> CropPaths:
    """The paths for a run: device crops where ``data.crop_on`` asks ('auto': where timed faster on ``sample``)."""
    device = torch.device(device)
    spec = CropSpec(pre.size, pre.interpolation, pre.crop_pct, tuple(recipe.scale), tuple(recipe.ratio), recipe.hflip)
    worker = worker_crops(spec)
    built: Dict[str, Tuple[SetCrops, SetCrops]] = {}

    def on_device() -> Tuple[SetCrops, SetCrops]:
        # 'auto' keeps a padding evaluation crop in the workers; data.crop_on='device' refuses it.
        if "device" not in built:
            built["device"] = crops_on_device(spec, device, None if data.crop_on == "device" else worker[1])
        return built["device"]

    def measure() -> CropTiming:
        if sample is None:
            raise ValueError("crop_paths: data.crop_on='auto' on CUDA needs sample images to time the paths")
        return time_paths(sample, worker[0], on_device()[0], device)

    train, evaluation = on_device() if crop_place(data.crop_on, device, measure) == "device" else worker
    if decode_protocol_note(data.decode, device) is not None:
        train = gpu_decoded_crops(spec, device)
    return CropPaths(train, evaluation)
