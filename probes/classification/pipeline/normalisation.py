"""The normalised pixel values, ``(v / 255 - mean) / std`` in float32: by arithmetic on any device, by table on a CPU.

The arithmetic is ToTensor + Normalize's three float32 steps, one rounding each (:func:`normalize_on_device`).
A uint8 channel has only 256 values, so a table of those steps' results for each (:class:`PixelTable`)
gives the same floats bit for bit, in one pass instead of four (tests/classification/test_device_batches.py
checks every value). The table reads two pixels at a time: a 16-bit pair indexes a 65,536-entry table of
float pairs (512 KiB per channel), which halves the look-ups: on the 2-core VM of benchmarks/RESULTS.md a
448 px plane took 111 µs that way against 167 µs one pixel at a time (best of 30, in cache).
"""
from __future__ import annotations

import sys
from typing import Sequence, Union

import numpy as np
import torch

# The one place that decides the images' dtype and layout on the device: float32 (autocast
# casts inside the encoder), and channels_last only when asked for.
IMAGE_DTYPE = torch.float32


def _normalize_in_place(values: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    # The steps of ToTensor + Normalize, one float32 rounding each: the one definition of the values.
    return values.div_(255.0).sub_(mean).div_(std)


def normalize_on_device(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                        channels_last: bool = False) -> torch.Tensor:
    """uint8 NCHW (any device) → float32 ``(x / 255 - mean) / std`` on the device of mean/std.

    The same three float32 operations as ToTensor + Normalize in a worker, so the result is
    bit-identical to the old worker-normalised batch.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    images = images.to(mean.device, non_blocking=True)
    return _normalize_in_place(images.to(IMAGE_DTYPE, memory_format=fmt), mean, std)


def _as_column(values: Union[torch.Tensor, Sequence[float]]) -> torch.Tensor:
    return torch.as_tensor(values, dtype=IMAGE_DTYPE).detach().cpu().reshape(1, -1, 1, 1)


class PixelTable:
    """uint8 NCHW on a CPU → normalised float32, each pixel looked up in its channel's table."""

    def __init__(self, mean: Union[torch.Tensor, Sequence[float]], std: Union[torch.Tensor, Sequence[float]]) -> None:
        mean, std = _as_column(mean), _as_column(std)
        if mean.numel() != std.numel():
            raise ValueError(f"PixelTable: {mean.numel()} means but {std.numel()} stds")
        channels = mean.numel()
        values = torch.arange(256, dtype=IMAGE_DTYPE).repeat(channels, 1).view(1, channels, 1, 256)
        self.single = _normalize_in_place(values, mean, std).view(channels, 256).numpy()   # (C, 256) float32
        # pairs[c][a + 256 * b] holds (single[c][a], single[c][b]): the two floats of the bytes a, b as
        # they lie in memory, read as one uint16 (little-endian: the first byte is the low one).
        low, high = np.tile(self.single, (1, 256)), np.repeat(self.single, 256, axis=1)
        self.pairs = (np.stack([low, high], axis=-1).view(np.uint64)[..., 0]
                      if sys.byteorder == "little" else None)   # (C, 65536)

    def __call__(self, images: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Write the normalised values of ``images`` (uint8 NCHW, CPU) into ``out`` (float32, same shape)."""
        channels = self.single.shape[0]
        if images.dim() != 4 or images.shape[1] != channels or images.dtype != torch.uint8:
            raise ValueError(f"PixelTable: expected uint8 NCHW with {channels} channels, "
                             f"got {images.dtype} {tuple(images.shape)}")
        if out.shape != images.shape or out.dtype != IMAGE_DTYPE:
            raise ValueError(f"PixelTable: out is {out.dtype} {tuple(out.shape)}, expected float32 {tuple(images.shape)}")
        src, dst = images.numpy(), out.numpy()
        for n in range(src.shape[0]):
            for c in range(channels):
                self._plane(c, src[n, c], dst[n, c])
        return out

    def _plane(self, c: int, src: np.ndarray, dst: np.ndarray) -> None:
        # mode='wrap' skips the bounds check 'raise' makes per index (an index is always inside the table).
        if (self.pairs is not None and src.size % 2 == 0 and src.flags.c_contiguous and dst.flags.c_contiguous):
            np.take(self.pairs[c], src.reshape(-1).view(np.uint16), out=dst.reshape(-1).view(np.uint64), mode="wrap")
        else:   # an odd pixel count or strided memory (a channels-last batch): one pixel at a time
            np.take(self.single[c], src, out=dst, mode="wrap")
