"""Pillow's ``Image.resize`` (bicubic, bilinear; 8-bit images), bit for bit, as matrix products.

Pillow resizes in two separable passes of fixed-point convolution (``libImaging/Resample.c``):
each output pixel takes a window of input pixels with filter weights normalised to sum to one and
rounded to integers of 22 fractional bits; each pass sums pixel x weight as integers and shifts
back to 8 bits, clipped. Here the weights are computed as Pillow computes them (float64, the same
operations in the same order, no fused multiply-add), and each pass is a product with a dense
matrix of those integers. Every partial sum of 8-bit pixels times 22-bit weights is an integer
below 2**31, which float64 holds exactly, so the product is exact whatever order a GEMM sums in,
on any device. On an accelerator the two products cost microseconds per image, where Pillow's
loop costs a worker core about 2.4 ms for a 448 px crop (benchmarks/data_pipeline.py).

Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many pixels
as the width (python-pillow/Pillow#9549); earlier versions always start with the horizontal one.
Which rule the installed Pillow follows is found by asking it (:func:`pass_order`), not assumed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from probes.errors import ConfigError

PRECISION_BITS = 22  # Resample.c: 32 bits - 8 for the pixel - 2 for overshoot


def _bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's bicubic kernel (a = -0.5), written as in Resample.c so float64 rounds alike."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _bilinear(x: np.ndarray) -> np.ndarray:
    """Pillow's triangle kernel."""
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


# name -> (kernel, support in input pixels at scale 1), as Pillow's BICUBIC and BILINEAR.
FILTERS: Dict[str, Tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "bicubic": (_bicubic, 2.0), "bilinear": (_bilinear, 1.0)}
_PIL_FILTER = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class AxisWeights:
    """One pass along one axis: output j reads inputs ``first[j] + k`` with ``weights[j, k]``."""
    in_size: int
    first: np.ndarray    # int32 [outputs]
    weights: np.ndarray  # int32 [outputs, taps], 22 fractional bits; zero past each window


# Weights depend on sizes alone, and crops and photos repeat sizes: a worker computes each once.
@functools.lru_cache(maxsize=4096)
def axis_weights(in_size: int, out_size: int, interpolation: str = "bicubic",
                 outputs: Optional[Tuple[int, int]] = None) -> AxisWeights:
    """Pillow's integer weights for resizing ``in_size`` pixels to ``out_size`` along one axis.

    ``outputs`` = (start, stop) keeps only those output positions (a centre crop of the resized
    image); each output's weights depend on its position alone, so they equal the full resize's.
    """
    kernel, base_support = FILTERS[interpolation]
    start, stop = outputs if outputs is not None else (0, out_size)
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = base_support * filterscale
    taps = int(np.ceil(support)) * 2 + 1
    center = (np.arange(start, stop, dtype=np.float64) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    count = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - first
    inv = 1.0 / filterscale
    w = np.zeros((len(center), taps))
    total = np.zeros(len(center))
    for k in range(taps):  # tap by tap: the running sum adds in Pillow's order
        wk = np.where(k < count, kernel((k + first - center + 0.5) * inv), 0.0)
        w[:, k] = wk
        total = total + wk
    safe = np.where(total != 0.0, total, 1.0)
    w = np.where(total[:, None] != 0.0, w / safe[:, None], w)
    one = float(1 << PRECISION_BITS)
    fixed = np.where(w < 0, np.trunc(-0.5 + w * one), np.trunc(0.5 + w * one))
    first, fixed = first.astype(np.int32), fixed.astype(np.int32)
    first.setflags(write=False)  # shared by every caller of the cache
    fixed.setflags(write=False)
    return AxisWeights(in_size, first, fixed)


def vertical_first(in_w: int, in_h: int, out_w: int, out_h: int, rule: str) -> bool:
    """Whether Pillow (following ``rule``, see :func:`pass_order`) runs the vertical pass first."""
    if rule == "horizontal-first":
        return False
    return out_h < in_h and (in_h - out_h) > 2 * (in_w - out_w)


@functools.lru_cache(maxsize=None)
def pass_order() -> str:
    """The installed Pillow's pass order: 'shrink-height-first' (Pillow >= 13) or 'horizontal-first'.

    Found by resizing a small image that the two orders round differently and comparing.
    """
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (96, 40, 3), dtype=np.uint8)
    size = (36, 20)  # height shrinks by 76, width by 4: Pillow >= 13 goes vertical first
    ref = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC))
    for rule in ("shrink-height-first", "horizontal-first"):
        ours = resize_pil_exact([torch.from_numpy(pixels)], size, rule=rule)[0]
        if np.array_equal(ours.permute(1, 2, 0).numpy(), ref):
            return rule
    raise ConfigError(f"Pillow {Image.__version__} resizes in a way probes does not reproduce; "
                      "set data.crop_on='worker'.")


def stack_axes(axes: Sequence[AxisWeights]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weights of several images along one axis as batch tensors: first int64 [N, outs], weights int32 [N, outs, taps]."""
    taps = max(a.weights.shape[1] for a in axes)
    weights = np.zeros((len(axes), len(axes[0].first), taps), np.int32)
    for i, a in enumerate(axes):
        weights[i, :, :a.weights.shape[1]] = a.weights
    first = np.stack([a.first for a in axes]).astype(np.int64)
    return torch.from_numpy(first), torch.from_numpy(weights)


def _dense(first: torch.Tensor, weights: torch.Tensor, in_len: int) -> torch.Tensor:
    """[images, in_len, outputs] float64 matrices holding the integer weights (see :func:`stack_axes`)."""
    n, outs, taps = weights.shape
    device = weights.device
    rows = (first[:, :, None] + torch.arange(taps, device=device)).clamp_(max=in_len - 1)
    image = torch.arange(n, device=device)[:, None, None].expand_as(rows)
    col = torch.arange(outs, device=device)[None, :, None].expand_as(rows)
    dense = torch.zeros(n, in_len, outs, dtype=torch.float64, device=device)
    # Zero weights past a window may land on a clamped row: accumulating adds exactly nothing.
    dense.index_put_((image, rows, col), weights.to(torch.float64), accumulate=True)
    return dense


def _round(sums: torch.Tensor) -> torch.Tensor:
    """Resample.c's clip8: add half, shift right by PRECISION_BITS (floor), clip to 0..255."""
    half = float(1 << (PRECISION_BITS - 1))
    return sums.add_(half).mul_(1.0 / (1 << PRECISION_BITS)).floor_().clamp_(0, 255)


def resize_planned(images: List[torch.Tensor], x_first: torch.Tensor, x_weights: torch.Tensor,
                   y_first: torch.Tensor, y_weights: torch.Tensor, vfirst: Sequence[bool]) -> torch.Tensor:
    """Resize HWC uint8 images with precomputed weights (:func:`stack_axes`): uint8 NCHW on their device.

    ``vfirst[i]`` says which pass Pillow ran first for image i; weight tensors must be on the
    images' device.
    """
    device = images[0].device
    n, channels = len(images), images[0].shape[2]
    out = torch.empty(n, channels, y_first.shape[1], x_first.shape[1], dtype=torch.uint8, device=device)
    for order in (False, True):
        group = [i for i in range(n) if bool(vfirst[i]) == order]
        if not group:
            continue
        h = max(images[i].shape[0] for i in group)
        w = max(images[i].shape[1] for i in group)
        x = torch.zeros(len(group), channels, h, w, dtype=torch.float64, device=device)
        for slot, i in enumerate(group):
            x[slot, :, :images[i].shape[0], :images[i].shape[1]] = images[i].permute(2, 0, 1)
        rows = torch.tensor(group, device=device)
        across = _dense(x_first[rows], x_weights[rows], w).unsqueeze(1)                 # [g,1,w,cols]
        down = _dense(y_first[rows], y_weights[rows], h).transpose(1, 2).unsqueeze(1)  # [g,1,rows,h]
        # Padding is zero and meets zero weights: it adds nothing to any sum.
        if order:
            x = _round(_round(down @ x) @ across)
        else:
            x = _round(down @ _round(x @ across))
        out[rows] = x.to(torch.uint8)
    return out


def resize_pil_exact(images: List[torch.Tensor], size: Tuple[int, int], interpolation: str = "bicubic",
                     rule: Optional[str] = None) -> torch.Tensor:
    """``Image.resize(size)`` of each HWC uint8 image (size = (width, height)): uint8 NCHW."""
    rule = rule or pass_order()
    out_w, out_h = size
    device = images[0].device
    x_first, x_weights = stack_axes([axis_weights(int(im.shape[1]), out_w, interpolation) for im in images])
    y_first, y_weights = stack_axes([axis_weights(int(im.shape[0]), out_h, interpolation) for im in images])
    vfirst = [vertical_first(int(im.shape[1]), int(im.shape[0]), out_w, out_h, rule) for im in images]
    return resize_planned(images, x_first.to(device), x_weights.to(device), y_first.to(device),
                          y_weights.to(device), vfirst)


def pil_filter(interpolation: str) -> Image.Resampling:
    """The Pillow constant for a filter name (for reference resizes in checks and tests)."""
    return _PIL_FILTER[interpolation]
