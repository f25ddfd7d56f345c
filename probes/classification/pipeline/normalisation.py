"""The normalised pixel values, ``(v / 255 - mean) / std`` in float32: by arithmetic on any device, by table on a CPU.

The arithmetic is ToTensor + Normalize's three float32 steps, one rounding each (:func:`normalize_on_device`).
A uint8 channel has only 256 values, so a table of those steps' results for each (:class:`PixelTable`)
gives the same floats bit for bit, in one pass instead of four (tests/classification/test_device_batches.py
checks every value). The look-up is OpenCV's ``cv2.LUT`` where OpenCV is installed (the ``seg`` extra
brings it), else numpy's ``take``: the same values either way. Per 448 px image into reused memory, on the
2-core VM of benchmarks/RESULTS.md: cv2.LUT 0.41-0.53 ms, numpy 0.74-0.76 ms (``benchmarks/data_pipeline.py``
times both); the arithmetic took 1.22 ms and a table of float pairs read 16 bits at a time 0.78 ms when
timed once there.
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

from probes.classification.pipeline.opencv import cv2_or_none

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


# OpenCV spreads a look-up over its threads from 2**18 pixels on; planes are fed below that in row
# blocks, so the look-up stays on the consumer's own core beside the DataLoader workers.
_OPENCV_SERIAL_PIXELS = (1 << 18) - 1


class PixelTable:
    """uint8 NCHW on a CPU → normalised float32, each pixel looked up in its channel's table."""

    def __init__(self, mean: Union[torch.Tensor, Sequence[float]], std: Union[torch.Tensor, Sequence[float]],
                 use_opencv: bool = True) -> None:
        mean, std = _as_column(mean), _as_column(std)
        if mean.numel() != std.numel():
            raise ValueError(f"PixelTable: {mean.numel()} means but {std.numel()} stds")
        channels = mean.numel()
        values = torch.arange(256, dtype=IMAGE_DTYPE).repeat(channels, 1).view(1, channels, 1, 256)
        self.table = _normalize_in_place(values, mean, std).view(channels, 256).numpy()   # (C, 256) float32
        cv2 = cv2_or_none() if use_opencv else None
        self._lut = cv2.LUT if cv2 is not None else None
        self.backend = "cv2.LUT" if self._lut is not None else "numpy.take"

    def __call__(self, images: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Write the normalised values of ``images`` (uint8 NCHW, CPU) into ``out`` (float32, same shape)."""
        channels = self.table.shape[0]
        if images.dim() != 4 or images.shape[1] != channels or images.dtype != torch.uint8:
            raise ValueError(f"PixelTable: expected uint8 NCHW with {channels} channels, "
                             f"got {images.dtype} {tuple(images.shape)}")
        if out.shape != images.shape or out.dtype != IMAGE_DTYPE:
            raise ValueError(f"PixelTable: out is {out.dtype} {tuple(out.shape)}, "
                             f"expected float32 {tuple(images.shape)}")
        src, dst = images.numpy(), out.numpy()
        for n in range(src.shape[0]):
            for c in range(channels):
                self._plane(c, src[n, c], dst[n, c])
        return out

    def _plane(self, c: int, src: np.ndarray, dst: np.ndarray) -> None:
        if self._lut is not None and src.flags.c_contiguous and dst.flags.c_contiguous:
            rows = max(1, _OPENCV_SERIAL_PIXELS // src.shape[1])
            row = self.table[c].reshape(1, 256)
            for top in range(0, src.shape[0], rows):
                block = dst[top:top + rows]
                got = self._lut(src[top:top + rows], row, dst=block)
                if got is not block:   # OpenCV wrote elsewhere (it never did here): copy, never lose a plane
                    block[...] = got
        else:   # mode='wrap' skips the bounds check 'raise' makes per pixel (a uint8 is always in the table)
            np.take(self.table[c], src, out=dst, mode="wrap")
