"""Decoding image files into tensors: by content, to RGB, with corrupt files named or counted."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms as T

from probes.errors import DatasetError

_INTERPOLATION = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}


def decode_rgb(path: Path) -> Image.Image:
    """Open an image by its content (a PNG named .JPEG works) and convert it to RGB.

    CMYK, grayscale, palette and RGBA files all become 3-channel RGB, as the encoders expect.
    """
    with Image.open(path) as img:
        img.load()  # force a full decode here so truncated files fail now, naming this path
        return img.convert("RGB")


class ImageFiles(Dataset):
    """(image tensor, class index, position) per file; unreadable files yield an error record."""

    def __init__(self, files: Sequence[Path], targets: Sequence[int], transform: Callable) -> None:
        self.files = list(files)
        self.targets = list(targets)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tuple[Optional[torch.Tensor], int, int, Optional[str]]:
        path = self.files[i]
        try:
            img = decode_rgb(path)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            # Raising inside a DataLoader worker would wrap the message in a traceback; the
            # error travels back as data and the main process raises or counts it.
            return None, self.targets[i], i, f"cannot decode image {path} ({type(exc).__name__}: {exc})"
        return self.transform(img), self.targets[i], i, None


def collate(batch: List[Tuple[Any, int, int, Optional[str]]]) -> Dict[str, Any]:
    """Stack the readable samples; keep the errors of the unreadable ones."""
    good = [b for b in batch if b[3] is None]
    errors = [b[3] for b in batch if b[3] is not None]
    if good:
        images = torch.stack([b[0] for b in good])
    else:
        images = torch.empty(0)
    return {"images": images,
            "targets": torch.tensor([b[1] for b in good], dtype=torch.long),
            "indices": torch.tensor([b[2] for b in good], dtype=torch.long),
            "errors": errors}


def check_errors(batch: Mapping[str, Any], on_corrupt: str) -> int:
    """Raise DatasetError for the first unreadable file unless skipping; return the skip count."""
    errors = batch["errors"]
    if errors and on_corrupt != "skip":
        raise DatasetError(errors[0][0].upper() + errors[0][1:] +
                           " (set data.on_corrupt='skip' to leave such files out and count them).")
    return len(errors)


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float],
                   interpolation: str = "bicubic") -> Callable:
    """Resize the short side to the input size, center-crop it (ratio 1.0), normalise."""
    return T.Compose([
        T.Resize(image_size, interpolation=_INTERPOLATION[interpolation]),
        T.CenterCrop(image_size),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


def train_transform(image_size: int, mean: Sequence[float], std: Sequence[float],
                    interpolation: str = "bicubic", scale: Sequence[float] = (0.08, 1.0),
                    ratio: Sequence[float] = (3 / 4, 4 / 3), hflip: float = 0.5) -> Callable:
    """RandomResizedCrop + horizontal flip, the published probe augmentation (Mixup is per batch)."""
    return T.Compose([
        T.RandomResizedCrop(image_size, scale=tuple(scale), ratio=tuple(ratio),
                            interpolation=_INTERPOLATION[interpolation]),
        T.RandomHorizontalFlip(hflip),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])
