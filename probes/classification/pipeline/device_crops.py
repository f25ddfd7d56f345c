"""Crops resampled on the accelerator, pixel for pixel as Pillow resamples them in a worker.

The published pipelines resize with Pillow (RandomResizedCrop for training, resize + centre crop
for evaluation). Pillow's bicubic loop is about 60% of a worker's time per image; decoding is
most of the rest. On this path a worker decodes, draws the crop exactly as torchvision draws it
(same calls, same torch RNG), crops (a copy), and computes Pillow's integer resampling weights; the
accelerator resizes with them (:mod:`probes.classification.pipeline.pil_resample`) and flips. The uint8
batch equals the worker path's bit for bit (tests/classification/test_device_crops.py), so results
carry no protocol note. ``data.crop_on`` picks the path (:func:`probes.classification.pipeline.image_paths.crop_place`):
'auto' times both on CUDA and keeps the faster, and crops in the workers elsewhere (a CPU would
resample slower than Pillow does).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from probes.classification.pipeline.batch_memory import shared_bytes
from probes.classification.pipeline.images import (
    CropSpec, ImageFiles, SetCrops, build_eval_transform, interpolation_mode)
from probes.classification.pipeline.pil_resample import (
    AxisWeights, axis_weights, pass_order, pil_filter, resize_pil_exact, resize_planned, stack_axes,
    vertical_first)
from probes.errors import ConfigError

CROP_PLACES = ("auto", "worker", "device")
# Input pixels (images x padded height x width) resampled per pair of float64 products: bounds
# the device memory of one call to about 0.5 GB (32 ImageNet-sized images; a 4000x3000 photo alone).
CHUNK_PIXELS = 32 * 512 * 512


@dataclass(frozen=True)
class CropPlan:
    """What a worker hands over for one image: the pixels to resample and how."""
    pixels: np.ndarray  # HWC uint8: the crop (training) or the whole image (evaluation)
    x: AxisWeights
    y: AxisWeights
    vertical_first: bool
    flip: bool


class TrainCropPlans:
    """RandomResizedCrop + horizontal flip as torchvision draws them; the resize left to the device."""

    def __init__(self, image_size: int, interpolation: str = "bicubic",
                 scale: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3),
                 hflip: float = 0.5) -> None:
        interpolation_mode(interpolation)
        self.size, self.interpolation = int(image_size), interpolation
        self.scale, self.ratio, self.hflip = tuple(scale), tuple(ratio), hflip
        self.rule = pass_order()  # asked here, in the main process, before workers start

    def __call__(self, img: Image.Image) -> CropPlan:
        # The draws of T.RandomResizedCrop then T.RandomHorizontalFlip, in their order.
        top, left, h, w = T.RandomResizedCrop.get_params(img, self.scale, self.ratio)
        flip = bool(torch.rand(1) < self.hflip)
        pixels = np.asarray(img.crop((left, top, left + w, top + h)))
        s = self.size
        return CropPlan(pixels, axis_weights(w, s, self.interpolation), axis_weights(h, s, self.interpolation),
                        vertical_first(w, h, s, s, self.rule), flip)


class EvalCropPlans:
    """timm's evaluation transform (short side resized, centre crop) with the resize left to the device.

    The geometry is read from the transform the worker path uses, so the two cannot drift apart.
    """

    def __init__(self, image_size: int, interpolation: str = "bicubic", crop_pct: float = 1.0) -> None:
        steps = build_eval_transform(image_size, interpolation, crop_pct).transforms
        resize, crop = steps[0], steps[1]
        if not (isinstance(resize, T.Resize) and isinstance(crop, T.CenterCrop)
                and isinstance(resize.size, int) and resize.max_size is None):
            raise ConfigError(f"data.crop_on='device' does not know the evaluation transform {steps}; "
                              "set data.crop_on='worker'.")
        self.short, (self.crop_h, self.crop_w) = resize.size, tuple(crop.size)
        if self.short < max(self.crop_h, self.crop_w):
            raise ConfigError(f"data.crop_on='device' needs the centre crop inside the resized image "
                              f"(crop_pct={crop_pct} pads); set data.crop_on='worker'.")
        self.interpolation = interpolation
        self.rule = pass_order()

    def resized(self, w: int, h: int) -> Tuple[int, int]:
        """torchvision's Resize(int) output (width, height): short side to ``short``, long truncated."""
        if w <= h:
            return self.short, int(self.short * h / w)
        return int(self.short * w / h), self.short

    def __call__(self, img: Image.Image) -> CropPlan:
        w, h = img.size
        new_w, new_h = self.resized(w, h)
        top = int(round((new_h - self.crop_h) / 2.0))  # CenterCrop's rounding (round half to even)
        left = int(round((new_w - self.crop_w) / 2.0))
        x, (x0, x1) = _used_inputs(axis_weights(w, new_w, self.interpolation, (left, left + self.crop_w)))
        y, (y0, y1) = _used_inputs(axis_weights(h, new_h, self.interpolation, (top, top + self.crop_h)))
        # Only the inputs the centre crop reads travel to the device (a landscape photo loses its sides).
        return CropPlan(np.asarray(img.crop((x0, y0, x1, y1))), x, y,
                        vertical_first(w, h, new_w, new_h, self.rule), False)


def _used_inputs(axis: AxisWeights) -> Tuple[AxisWeights, Tuple[int, int]]:
    """The input span [lo, hi) that non-zero weights read, and the weights re-based onto that span."""
    nonzero = axis.weights != 0
    last = axis.weights.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)  # one past each row's last tap
    lo, hi = int(axis.first.min()), int((axis.first + last).max())
    return AxisWeights(hi - lo, axis.first - lo, axis.weights), (lo, hi)


def collate_plans(batch: List[Tuple[Any, int, int, Optional[str]]]) -> Dict[str, Any]:
    """Pack the readable samples' plans into a few tensors; keep the errors of the unreadable ones."""
    good = [b for b in batch if b[3] is None]
    plans: List[CropPlan] = [b[0] for b in good]
    sizes = [p.pixels.size for p in plans]
    pixels = shared_bytes(sum(sizes))
    flat, at = pixels.numpy(), 0
    for plan, size in zip(plans, sizes):
        flat[at:at + size] = plan.pixels.reshape(-1)
        at += size
    out: Dict[str, Any] = {
        "pixels": pixels,
        "shapes": torch.tensor([p.pixels.shape for p in plans], dtype=torch.long).view(-1, 3),
        "vertical_first": torch.tensor([p.vertical_first for p in plans], dtype=torch.bool),
        "flip": torch.tensor([p.flip for p in plans], dtype=torch.bool),
        "targets": torch.tensor([b[1] for b in good], dtype=torch.long),
        "indices": torch.tensor([b[2] for b in good], dtype=torch.long),
        "errors": [b[3] for b in batch if b[3] is not None]}
    if plans:
        out["x_first"], out["x_weights"] = stack_axes([p.x for p in plans])
        out["y_first"], out["y_weights"] = stack_axes([p.y for p in plans])
    return out


class DeviceCrops:
    """Resample a :func:`collate_plans` batch on ``device``: a uint8 NCHW batch, as the worker path's.

    Pass it as ``decode=`` to :class:`~probes.classification.pipeline.device_batches.DeviceBatches`.
    """

    def __init__(self, device: torch.device, interpolation: str = "bicubic") -> None:
        self.device = torch.device(device)
        check_exact_on(self.device, interpolation)

    def __call__(self, host: Mapping[str, Any]) -> Dict[str, Any]:
        shapes = host["shapes"].tolist()
        rest = {k: host[k] for k in ("targets", "indices", "errors")}
        if not shapes:
            return {"images": torch.empty(0, dtype=torch.uint8, device=self.device), **rest}
        pixels = host["pixels"].to(self.device, non_blocking=True)
        images, at = [], 0
        for h, w, c in shapes:
            images.append(pixels[at:at + h * w * c].view(h, w, c))
            at += h * w * c
        weights = [host[k].to(self.device, non_blocking=True)
                   for k in ("x_first", "x_weights", "y_first", "y_weights")]
        vfirst = host["vertical_first"].tolist()
        parts = [resize_planned(images[a:b], *(t[a:b] for t in weights), vfirst[a:b])
                 for a, b in _chunks([(h, w) for h, w, _ in shapes])]
        out = torch.cat(parts) if len(parts) > 1 else parts[0]
        flip = host["flip"].to(self.device, non_blocking=True)
        out = torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)
        return {"images": out, **rest}


def _chunks(sizes: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """[start, stop) runs of images whose padded batch stays within CHUNK_PIXELS (one image at least)."""
    runs, start, h, w = [], 0, 0, 0
    for i, (ih, iw) in enumerate(sizes):
        h2, w2 = max(h, ih), max(w, iw)
        if i > start and (i - start + 1) * h2 * w2 > CHUNK_PIXELS:
            runs.append((start, i))
            start, h2, w2 = i, ih, iw
        h, w = h2, w2
    runs.append((start, len(sizes)))
    return runs


_CHECKED: Dict[Tuple[str, str], bool] = {}


def check_exact_on(device: torch.device, interpolation: str) -> None:
    """Refuse a device whose float64 products do not reproduce Pillow (checked once per device)."""
    key = (str(device), interpolation)
    if key in _CHECKED:
        return
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (57, 83, 3), dtype=np.uint8)
    for size in ((448, 448), (40, 20)):  # an enlargement, and a shrink that goes height first
        ref = np.asarray(Image.fromarray(pixels).resize(size, pil_filter(interpolation)))
        got = resize_pil_exact([torch.from_numpy(pixels).to(device)], size, interpolation)
        if not np.array_equal(got[0].permute(1, 2, 0).cpu().numpy(), ref):
            raise ConfigError(f"float64 products on {device} do not reproduce Pillow's resize; "
                              "set data.crop_on='worker'.")
    _CHECKED[key] = True



def crops_on_device(spec: CropSpec, device: torch.device, worker_eval: Optional[SetCrops] = None
                    ) -> Tuple[SetCrops, SetCrops]:
    """Training and evaluation crops planned in the workers and resized on ``device`` (the worker path's pixels).

    An evaluation crop the device cannot take (a padding ``crop_pct``) raises ConfigError, or stays
    ``worker_eval`` when one is given ('auto'). A device whose float64 products do not reproduce Pillow
    raises ConfigError (:class:`DeviceCrops`).
    """
    resample = DeviceCrops(device, spec.interpolation)
    plans = TrainCropPlans(spec.size, spec.interpolation, spec.scale, spec.ratio, spec.hflip)
    train = SetCrops(plans, collate_plans, resample, partial(ImageFiles, transform=plans))
    try:
        eval_plans = EvalCropPlans(spec.size, spec.interpolation, spec.crop_pct)
    except ConfigError:
        if worker_eval is None:
            raise
        return train, worker_eval
    return train, SetCrops(eval_plans, collate_plans, resample, partial(ImageFiles, transform=eval_plans))
