"""Decoding image files into uint8 batches: by content, to RGB, with corrupt files named or counted.

Workers only decode and crop with Pillow; :func:`collate` writes each crop's channels straight into
one uint8 NCHW batch (shared memory in a worker, see :mod:`.batch_memory`), mirroring the crops the
flip drew (:class:`MirrorLater`). With ``data.crop_on='device'`` the resize is left to the accelerator
(:mod:`probes.classification.pipeline.device_crops`). Conversion to float and the mean/std
normalisation happen in the consumer (:mod:`probes.classification.pipeline.device_batches`); in a
worker they, and moving 4x the bytes, took about 40% of its time (benchmarks/data_pipeline.py).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import (
    Any, BinaryIO, Callable, Dict, List, Mapping, MutableSet, NamedTuple, Optional, Sequence, Tuple, Union)

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from timm.data import create_transform
from timm.data.transforms import MaybePILToTensor
from torch.utils.data import Dataset, get_worker_info
from torchvision import transforms as T

from probes.classification.pipeline.batch_memory import BatchRing, LentBatch, shared_bytes
from probes.classification.pipeline.opencv import cv2_or_none
from probes.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

_INTERPOLATION = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}
# Pillow's modes for one channel of 16-bit samples (Pillow < 10.1 opened 16-bit PNGs as 'I', 32-bit
# ints; they are taken to hold 0..65535, as a 16-bit PNG, PGM or TIFF does).
_WIDE_GRAY = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


PILLOW_BLOCK_BYTES = 1 << 20   # a 448 px RGB crop (0.8 MB) is one block; a large photo, several


def keep_pillow_blocks(blocks: int) -> None:
    """Let Pillow keep up to ``blocks`` freed 1 MiB image blocks for reuse (its ``PILLOW_BLOCKS_MAX`` and
    ``PILLOW_BLOCK_SIZE``), unless the user set them.

    Pillow keeps none by default, so each decoded, cropped or resized image may take fresh pages from the
    allocator: ~120 page faults per 448 px training crop in a freshly started worker on the VM of
    benchmarks/RESULTS.md, under one with blocks kept (``benchmarks/data_pipeline.py``'s step table). Where the
    blocks live changes no pixel. Blocks of 1 MiB (Pillow's default is 16) bound what a worker keeps to
    ``blocks`` MiB whatever the photos' sizes: about what one batch of crops holds at once anyway.
    """
    if not hasattr(Image.core, "set_blocks_max"):
        return
    if "PILLOW_BLOCK_SIZE" not in os.environ:
        Image.core.set_block_size(PILLOW_BLOCK_BYTES)
    if "PILLOW_BLOCKS_MAX" not in os.environ:
        Image.core.set_blocks_max(max(int(blocks), Image.core.get_blocks_max()))


def decode_rgb(source: Union[Path, BinaryIO]) -> Image.Image:
    """Open an image (a path or file object) by its content and convert it to 8-bit RGB.

    A PNG named .JPEG works. CMYK, grayscale, palette and RGBA files all become 3-channel RGB, as
    the encoders expect; 16-bit grayscale keeps its high byte (Pillow's own conversion clips it
    to 255, white).
    """
    with Image.open(source) as img:
        img.load()  # force a full decode here so truncated files fail now, naming this file
        if img.mode in _WIDE_GRAY:
            img = _high_byte(img)
        return img if img.mode == "RGB" else img.convert("RGB")


def _high_byte(img: Image.Image) -> Image.Image:
    """16-bit samples (0..65535) to 8-bit grayscale by their high byte."""
    wide = np.asarray(img).astype(np.int64).clip(0, 65535)
    return Image.fromarray((wide >> 8).astype(np.uint8))  # 2-D uint8: mode L


class ImageFiles(Dataset):
    """(transformed image, class index, position) per file; unreadable files yield an error record."""

    def __init__(self, files: Sequence[Path], targets: Sequence[int], transform: Callable,
                 decode: Callable[[Path], Image.Image] = decode_rgb) -> None:
        self.files = list(files)
        self.targets = list(targets)
        self.transform = transform
        self.decode = decode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tuple[Any, int, int, Optional[str]]:
        path = self.files[i]
        try:
            img = self.decode(path)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            # Raising inside a DataLoader worker would wrap the message in a traceback; the
            # error travels back as data and the main process raises or counts it.
            return None, self.targets[i], i, f"cannot decode image {path} ({type(exc).__name__}: {exc})"
        return self.transform(img), self.targets[i], i, None


def collate(batch: List[Tuple[Any, int, int, Optional[str]]], ring: Optional[BatchRing] = None) -> Dict[str, Any]:
    """Write the readable samples' crops into one uint8 batch; keep the errors of the unreadable ones.

    With ``ring`` (in a DataLoader worker), the batch goes into a slot the main process lent: ``images``
    is then a :class:`~probes.classification.pipeline.batch_memory.LentBatch`, read by DeviceBatches.
    """
    good = [b for b in batch if b[3] is None]
    errors = [b[3] for b in batch if b[3] is not None]
    if good:
        images = batch_images([b[0] for b in good], ring)
    else:
        images = torch.empty(0, dtype=torch.uint8)
    return {"images": images,
            "targets": torch.tensor([b[1] for b in good], dtype=torch.long),
            "indices": torch.tensor([b[2] for b in good], dtype=torch.long),
            "errors": errors}


class Mirrored(NamedTuple):
    """A crop to be mirrored left-right as it is written into the batch (see :class:`MirrorLater`)."""
    image: Image.Image


class MirrorLater:
    """torchvision's RandomHorizontalFlip, its mirror done by :func:`collate` while it copies the crop anyway.

    The draw is RandomHorizontalFlip's own (``torch.rand(1) < p``, one number per image), so the
    crops and flips of a seed do not change; Pillow's flip would write a whole new image first.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: Image.Image) -> Union[Image.Image, Mirrored]:
        return Mirrored(img) if torch.rand(1) < self.p else img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


Crop = Union[Image.Image, Mirrored, torch.Tensor]


def _chw(crop: Crop) -> Tuple[int, int, int]:
    if isinstance(crop, Mirrored):
        crop = crop.image
    if isinstance(crop, Image.Image):
        return len(crop.getbands()), crop.height, crop.width
    return tuple(crop.shape)  # type: ignore[return-value]


def _bands(img: Image.Image) -> List[np.ndarray]:
    """Each channel of a Pillow image as an (H, W) uint8 array.

    For RGB and L, Pillow's raw packer writes one channel's bytes straight from the image, about half the
    time of ``split()`` + ``np.asarray``, which makes three images and copies each twice more (timed once on
    the VM of benchmarks/RESULTS.md: 0.11 against 0.20 ms for a 448 px crop); other modes use ``split()``.
    """
    shape = (img.height, img.width)
    if img.mode in ("RGB", "L"):
        return [np.frombuffer(img.tobytes("raw", band), np.uint8).reshape(shape) for band in img.getbands()]
    return [np.asarray(band) for band in img.split()]


def _mirror_into(src: np.ndarray, dst: np.ndarray) -> None:
    cv2 = cv2_or_none()
    if cv2 is None or cv2.flip(src, 1, dst=dst) is not dst:   # numpy's reversed copy: same bytes, ~4x slower
        dst[...] = src[:, ::-1]


def batch_images(crops: Sequence[Crop], ring: Optional[BatchRing] = None) -> Union[torch.Tensor, LentBatch]:
    """Same-sized crops (Pillow images, :class:`Mirrored` ones, or uint8 CHW tensors) as one uint8 NCHW batch.

    Each crop's channels (:func:`_bands`) are copied straight into the batch, with no per-image
    tensor and no stacking copy (a mirrored crop is mirrored by that copy); inside a DataLoader worker
    the batch lies in shared memory, handed over without a further copy: a slot of ``ring`` when one is
    free (returned as a LentBatch), else fresh memory. Planar channels let the consumer read each channel
    contiguously.
    """
    shapes = [_chw(c) for c in crops]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"crops of different shapes cannot share a batch: {sorted(set(shapes))} "
                         "(channels, height, width)")
    shape = (len(crops), *shapes[0])
    lent = ring.lend(shape) if ring is not None and get_worker_info() is not None else None
    out = lent.view if lent is not None else shared_bytes(math.prod(shape)).view(shape)
    planes = out.numpy()
    for k, crop in enumerate(crops):
        mirrored = isinstance(crop, Mirrored)
        crop = crop.image if mirrored else crop
        if isinstance(crop, Image.Image):
            for i, band in enumerate(_bands(crop)):
                if mirrored:
                    _mirror_into(band, planes[k, i])
                else:
                    planes[k, i] = band
        else:
            out[k].copy_(crop.flip(-1) if mirrored else crop)
    return lent if lent is not None else out


def check_errors(batch: Mapping[str, Any], on_corrupt: str, logged: Optional[MutableSet[str]] = None) -> int:
    """Raise DatasetError for the first unreadable file unless skipping; log each skip; return the count.

    `logged` (shared across passes over a set) holds the errors logged so far: each file is logged once
    per run, however many epochs read it.
    """
    errors = batch["errors"]
    if errors and on_corrupt != "skip":
        raise DatasetError(errors[0][0].upper() + errors[0][1:] +
                           " (set data.on_corrupt='skip' to leave such files out and count them).")
    for error in errors:
        if logged is None or error not in logged:
            log.warning("data.on_corrupt='skip': left out: %s", error)
        if logged is not None:
            logged.add(error)
    return len(errors)


def interpolation_mode(name: str) -> T.InterpolationMode:
    """The torchvision interpolation named in the config (bicubic or bilinear)."""
    if name not in _INTERPOLATION:
        raise ConfigError(f"interpolation {name!r} is not one of {sorted(_INTERPOLATION)}.")
    return _INTERPOLATION[name]


def build_train_transform(image_size: int, interpolation: str = "bicubic",
                          scale: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3),
                          hflip: float = 0.5) -> Callable[[Image.Image], Union[Image.Image, Mirrored]]:
    """RandomResizedCrop + horizontal flip on the PIL image; :func:`collate` makes the crops a uint8 batch.

    torchvision's RandomResizedCrop and RandomHorizontalFlip's draw (the mirror itself is done by
    :func:`collate`, :class:`MirrorLater`), drawing from torch's RNG: for a given seed the crops
    are those of the float pipeline, bit for bit. Mixup/CutMix run per batch on the device.
    """
    return T.Compose([
        T.RandomResizedCrop(image_size, scale=tuple(scale), ratio=tuple(ratio),
                            interpolation=interpolation_mode(interpolation)),
        MirrorLater(hflip),
    ])


def build_eval_transform(image_size: int, interpolation: str = "bicubic",
                         crop_pct: float = 1.0) -> Callable[[Image.Image], Image.Image]:
    """timm's evaluation transform in its prefetcher form (resize, center crop), Pillow images out.

    With crop_pct 1.0 (the published protocol) the short side is resized to the input size and
    the center square kept. timm's last step (to a uint8 tensor) is left to :func:`collate`, which
    writes the crop into the batch directly.
    """
    interpolation_mode(interpolation)
    steps = create_transform(input_size=image_size, is_training=False, interpolation=interpolation,
                             crop_pct=crop_pct, crop_mode="center", use_prefetcher=True).transforms
    return T.Compose([step for step in steps if not isinstance(step, MaybePILToTensor)])


@dataclass(frozen=True)
class CropSpec:
    """The crops a run asks for: input size, resampling, evaluation crop_pct, training scale/ratio/flip."""
    size: int
    interpolation: str = "bicubic"
    crop_pct: float = 1.0
    scale: Tuple[float, float] = (0.08, 1.0)
    ratio: Tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5


class SetCrops(NamedTuple):
    """How one set's images travel: per image in a worker, per batch in the collate, then on the device."""
    transform: Optional[Callable]   # per image, in a worker (None: the dataset hands over file bytes)
    collate: Callable               # a worker's samples -> one host batch
    hook: Optional[Callable]        # host batch -> uint8 batch on the device (None: the host batch is one)
    dataset: Callable[[Sequence[Path], Sequence[int]], Dataset]   # (files, targets) -> the set's Dataset


def worker_crops(spec: CropSpec) -> Tuple[SetCrops, SetCrops]:
    """Training and evaluation crops resized by Pillow in the workers, written into uint8 batches by :func:`collate`."""
    train = build_train_transform(spec.size, spec.interpolation, spec.scale, spec.ratio, spec.hflip)
    evaluation = build_eval_transform(spec.size, spec.interpolation, spec.crop_pct)
    return (SetCrops(train, collate, None, partial(ImageFiles, transform=train)),
            SetCrops(evaluation, collate, None, partial(ImageFiles, transform=evaluation)))
