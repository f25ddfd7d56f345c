"""The one place that decides how images travel from files to a uint8 batch on the device.

Three ways, chosen from ``data.decode`` and ``data.crop_on`` ('auto' times the first two, :func:`crop_place`);
each module builds its own way's halves (a :class:`~.images.SetCrops` per set) from one :class:`~.images.CropSpec`:
- worker crops: workers decode and resize with Pillow, return uint8 crops (:func:`.images.worker_crops`);
- device crops: workers decode, crop and plan; the device resizes exactly as Pillow would
  (:func:`.device_crops.crops_on_device`): the same pixels for a fraction of a worker's time;
- ``data.decode='gpu'`` (training only, not the published protocol): workers read bytes, the GPU
  decodes and crops on tensors (:func:`.gpu_decode.gpu_decoded_crops`).
Normalisation always happens afterwards, on the device (:mod:`.device_batches`).

``data.crop_on='auto'``: both crop paths give the same uint8 pixels (tests/classification/test_device_crops.py),
so the choice changes speed, never results. Per image, the worker path costs a worker's Pillow crop + resize
+ collate; the device path costs a worker's crop + plan + collate plus the device's resample (copy in,
products, flip; synchronised). 'auto' keeps the device path when its total is smaller, i.e. when the device
resamples faster than the worker time it frees. It is timed once per run on a few batches of the run's own
training images, logged, and the torch RNG is restored afterwards. Off CUDA 'auto' is the worker path,
untimed (a CPU resamples slower with float64 products than Pillow does).
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from probes.classification.config import DataSpec, TrainRecipe
from probes.classification.datasets import ImageSet
from probes.classification.pipeline.device_crops import CROP_PLACES, crops_on_device
from probes.classification.pipeline.gpu_decode import decode_protocol_note, gpu_decoded_crops
from probes.classification.pipeline.images import CropSpec, SetCrops, decode_rgb, worker_crops
from probes.classification.pipeline.preprocessing import Preprocessing
from probes.errors import ConfigError

log = logging.getLogger(__name__)
TIMED_BATCHES = 2      # timed after one untimed warm-up batch (first-call allocation, kernel selection)
BATCH_IMAGES = 16


@dataclass(frozen=True)
class CropTiming:
    """Seconds per image of each path's parts, measured on the same images and crops."""
    worker_s: float        # worker path: Pillow crop + resize + collate (one worker's CPU time)
    plan_s: float          # device path, worker half: crop + Pillow's weights + collate (CPU time)
    device_s: float        # device path, device half: copy, resample, flip (wall time, synchronised)
    images: int

    @property
    def faster(self) -> str:
        """'device' when the device path costs less per image than the worker path, else 'worker'."""
        return "device" if self.plan_s + self.device_s < self.worker_s else "worker"

    def describe(self) -> str:
        """One line for the log."""
        ms = 1e3
        return (f"worker path {self.worker_s * ms:.2f} ms/img vs device path {(self.plan_s + self.device_s) * ms:.2f} "
                f"ms/img (worker {self.plan_s * ms:.2f} + device {self.device_s * ms:.2f}) over {self.images} images")


def crop_place(crop_on: str, device: torch.device, measure: Callable[[], CropTiming]) -> str:
    """'worker' or 'device' for ``data.crop_on`` on ``device``; 'auto' calls ``measure`` on CUDA only."""
    if crop_on not in CROP_PLACES:
        raise ConfigError(f"data.crop_on is {crop_on!r}; use one of {list(CROP_PLACES)}.")
    if crop_on != "auto":
        return crop_on
    device = torch.device(device)
    if device.type != "cuda":
        return "worker"
    try:
        timing = measure()
    except ConfigError as exc:  # the device's float64 products do not reproduce Pillow
        log.warning("data.crop_on='auto': resizing in the workers on %s (%s)", device, exc)
        return "worker"
    if timing.images == 0:
        log.warning("data.crop_on='auto': no readable image to time the crop paths; resizing in the workers")
        return "worker"
    log.info("data.crop_on='auto' on %s: %s: resizing %s", device, timing.describe(),
             "on the device" if timing.faster == "device" else "in the workers")
    return timing.faster


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_crop_paths(images: ImageSet, size: int, interpolation: str, recipe: TrainRecipe,
                    device: torch.device, batch: int = BATCH_IMAGES, timed_batches: int = TIMED_BATCHES
                    ) -> CropTiming:
    """Time both paths' training crops for ``recipe`` on up to (1 + timed_batches) x batch images of ``images``."""
    spec = CropSpec(size, interpolation, 1.0, recipe.scale, recipe.ratio, recipe.hflip)
    device = torch.device(device)
    return time_paths(images, worker_crops(spec)[0], crops_on_device(spec, device)[0], device, batch, timed_batches)


def time_paths(images: ImageSet, worker: SetCrops, on_device: SetCrops, device: torch.device,
               batch: int = BATCH_IMAGES, timed_batches: int = TIMED_BATCHES,
               decode: Callable[[Path], Image.Image] = decode_rgb) -> CropTiming:
    """Time two built training paths on up to (1 + timed_batches) x batch images spread over ``images``."""
    wanted = min(len(images.files), (1 + timed_batches) * batch)
    picks = np.unique(np.linspace(0, len(images.files) - 1, wanted).round().astype(int)) if wanted else []
    decoded: List[Image.Image] = []
    for i in picks:   # decoding is the same on both paths: left out of the timings
        try:
            decoded.append(decode(images.files[int(i)]))
        except Exception:   # an unreadable file is the loader's business, not the timing's
            continue
    groups = [decoded[s:s + batch] for s in range(0, len(decoded), batch)]
    totals, counted = [0.0, 0.0, 0.0], 0
    # The run's crops are drawn from the torch RNG: what the timing draws must not shift them.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for g, group in enumerate(groups):
            torch.manual_seed(g)   # both paths draw the same boxes and flips
            start = time.thread_time()
            worker.collate([(worker.transform(img), 0, i, None) for i, img in enumerate(group)])
            worker_s = time.thread_time() - start
            torch.manual_seed(g)
            start = time.thread_time()
            host = on_device.collate([(on_device.transform(img), 0, i, None) for i, img in enumerate(group)])
            plan_s = time.thread_time() - start
            _sync(device)
            start = time.perf_counter()
            on_device.hook(host)
            _sync(device)
            device_s = time.perf_counter() - start
            if g == 0 and len(groups) > 1:
                continue   # warm-up
            totals = [a + b for a, b in zip(totals, (worker_s, plan_s, device_s))]
            counted += len(group)
    if not counted:
        return CropTiming(0.0, 0.0, 0.0, 0)
    return CropTiming(*(t / counted for t in totals), images=counted)


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

    @functools.cache   # built once: for the timing, then for the run when it wins
    def on_device() -> Tuple[SetCrops, SetCrops]:
        # 'auto' keeps a padding evaluation crop in the workers; data.crop_on='device' refuses it.
        return crops_on_device(spec, device, None if data.crop_on == "device" else worker[1])

    def measure() -> CropTiming:
        if sample is None:
            raise ValueError("crop_paths: data.crop_on='auto' on CUDA needs sample images to time the paths")
        return time_paths(sample, worker[0], on_device()[0], device)

    train, evaluation = on_device() if crop_place(data.crop_on, device, measure) == "device" else worker
    if decode_protocol_note(data.decode, device) is not None:
        train = gpu_decoded_crops(spec, device)
    return CropPaths(train, evaluation)
