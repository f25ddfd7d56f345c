"""Optional training-set decoding on the accelerator (``data.decode='gpu'``): not the published protocol.

Workers only read the file bytes; JPEGs are decoded in batches by ``torchvision.io.decode_jpeg``
on the device (nvJPEG on CUDA) and each image is cropped and flipped on tensors with
torchvision.transforms.v2. Antialiased bicubic resampling on tensors differs from PIL's, so the
pixels the encoder sees differ from the published recipe's: the option is never the default, and
whoever enables it must record :data:`GPU_DECODE_NOTE` with the results. The code is
device-agnostic: on the CPU it runs the same logic with libjpeg (which is how it is tested).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import v2

from probes.classification.pipeline.images import CropSpec, SetCrops, decode_rgb, interpolation_mode
from probes.errors import ConfigError

DECODE_MODES = ("cpu", "gpu")
GPU_DECODE_NOTE = (
    "data.decode='gpu': training images were decoded by torchvision.io.decode_jpeg on the GPU and "
    "RandomResizedCrop/flip ran on tensors (torchvision.transforms.v2, antialiased resampling), "
    "which resamples differently from the published recipe's PIL pipeline; the evaluation "
    "transform is unchanged. Not the published protocol.")
_JPEG_MAGIC = b"\xff\xd8\xff"


def decode_protocol_note(decode: str, device: torch.device) -> Optional[str]:
    """Check ``data.decode`` for this device; the protocol note its results must carry, or None."""
    if decode not in DECODE_MODES:
        raise ConfigError(f"data.decode is {decode!r}; use one of {list(DECODE_MODES)}.")
    if decode == "cpu":
        return None
    if torch.device(device).type != "cuda":
        raise ConfigError(f"data.decode='gpu' needs a CUDA device, but the run is on {device}.")
    return GPU_DECODE_NOTE


class EncodedFiles(Dataset):
    """(file bytes as a uint8 tensor, class index, position, error, path) per file.

    Unreadable files give an error record, as in :class:`~probes.classification.pipeline.images.ImageFiles`.
    """

    def __init__(self, files: Sequence[Path], targets: Sequence[int]) -> None:
        self.files = list(files)
        self.targets = list(targets)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tuple[Optional[torch.Tensor], int, int, Optional[str], str]:
        path = self.files[i]
        try:
            data = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
        except (OSError, ValueError) as exc:  # ValueError: an empty file
            return None, self.targets[i], i, f"cannot read image {path} ({type(exc).__name__}: {exc})", str(path)
        return data, self.targets[i], i, None, str(path)


def collate_encoded(batch: List[Tuple[Any, int, int, Optional[str], str]]) -> Dict[str, Any]:
    """Keep the readable files' bytes as a list (their lengths differ) and the errors of the rest."""
    good = [b for b in batch if b[3] is None]
    return {"data": [b[0] for b in good], "paths": [b[4] for b in good],
            "targets": torch.tensor([b[1] for b in good], dtype=torch.long),
            "indices": torch.tensor([b[2] for b in good], dtype=torch.long),
            "errors": [b[3] for b in batch if b[3] is not None]}


class TensorDecodeCrops:
    """Decode a :func:`collate_encoded` batch on ``device``, crop each image on tensors: a uint8 batch.

    Pass it as ``decode=`` to :class:`~probes.classification.pipeline.device_batches.DeviceBatches`.
    Files that are not JPEG, or that the JPEG decoder rejects, go through the CPU (PIL) decoder of
    the standard path; files neither can read become error records naming the file.
    """

    def __init__(self, device: torch.device, image_size: int, interpolation: str = "bicubic",
                 scale: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3),
                 hflip: float = 0.5) -> None:
        self.device = torch.device(device)
        self.crop = v2.Compose([
            v2.RandomResizedCrop(image_size, scale=tuple(scale), ratio=tuple(ratio),
                                 interpolation=interpolation_mode(interpolation), antialias=True),
            v2.RandomHorizontalFlip(hflip),
        ])

    def __call__(self, host: Mapping[str, Any]) -> Dict[str, Any]:
        decoded = self._decode_all(host["data"])
        errors = list(host["errors"])
        keep = []
        for k, (image, error) in enumerate(decoded):
            if error is None:
                keep.append(k)
            else:
                errors.append(f"cannot decode image {host['paths'][k]} ({error})")
        crops = [self.crop(decoded[k][0]) for k in keep]
        images = torch.stack(crops) if crops else torch.empty(0, dtype=torch.uint8, device=self.device)
        rows = torch.tensor(keep, dtype=torch.long)
        return {"images": images, "targets": host["targets"][rows], "indices": host["indices"][rows],
                "errors": errors}

    def _decode_all(self, datas: List[torch.Tensor]) -> List[Tuple[Optional[torch.Tensor], Optional[str]]]:
        """(image, None) or (None, error) per file: JPEGs in one batched call, the rest by PIL."""
        out: List[Tuple[Optional[torch.Tensor], Optional[str]]] = [(None, None)] * len(datas)
        jpegs = [k for k, d in enumerate(datas) if bytes(d[:3].tolist()) == _JPEG_MAGIC]
        try:
            for k, image in zip(jpegs, self._decode_jpegs([datas[k] for k in jpegs])):
                out[k] = (image, None)
        except RuntimeError:
            # One bad file fails the whole call: retry one by one, so only the bad ones leave.
            for k in jpegs:
                try:
                    out[k] = (self._decode_jpegs([datas[k]])[0], None)
                except RuntimeError:
                    out[k] = self._decode_one(datas[k])
        done = set(jpegs)
        for k, data in enumerate(datas):
            if k not in done:
                out[k] = self._decode_one(data)
        return out

    def _decode_jpegs(self, datas: List[torch.Tensor]) -> List[torch.Tensor]:
        if not datas:
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 points to TorchCodec
            return decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.device)

    def _decode_one(self, data: torch.Tensor) -> Tuple[Optional[torch.Tensor], Optional[str]]:
        """The standard path's PIL decoder (PNG, 16-bit, ...) for what the JPEG decoder cannot take."""
        try:
            img = decode_rgb(io.BytesIO(data.numpy().tobytes()))
        except (OSError, SyntaxError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return v2.functional.pil_to_tensor(img).to(self.device), None


def gpu_decoded_crops(spec: CropSpec, device: torch.device) -> SetCrops:
    """Training images as file bytes from the workers, decoded and cropped on ``device`` (not the published protocol)."""
    return SetCrops(None, collate_encoded, TensorDecodeCrops(device, spec.size, spec.interpolation, spec.scale,
                                                             spec.ratio, spec.hflip), EncodedFiles)
