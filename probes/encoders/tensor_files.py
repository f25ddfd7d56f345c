"""Checkpoint files: which of them hold the encoder, read one tensor at a time into pre-allocated parameters.

Safetensors files are parsed here rather than through `safetensors.safe_open`: `safe_open`
memory-maps the whole shard and every page it touches stays resident (and counted) until the
shard is closed, so loading an 11 GB sharded 6B checkpoint would peak at model + one shard.
Reading each tensor with `readinto` into its final parameter keeps the peak at the model plus
one tensor (only when a dtype conversion is needed), and lets us check every shard's header for
truncation before any weight is read.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from probes.encoders.keymaps import encoder_keys
from probes.errors import CheckpointError

# How a checkpoint folder stores its weights: a shard index, a single file, or (checkpoint.py) one loose file.
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")  # files read as weights (anything else is refused)

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in a file, and what it is."""

    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    file: Path
    offset: int = 0  # absolute byte offset (safetensors only)


class SafetensorsFile:
    """The header of one safetensors file, validated against the file size."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        size = self.path.stat().st_size
        with open(self.path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{self.path} is truncated: {size} bytes, not even a safetensors header")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > _MAX_HEADER or 8 + header_len > size:
                raise CheckpointError(
                    f"{self.path} is truncated or not a safetensors file (header of {header_len} bytes, "
                    f"file of {size} bytes)")
            try:
                header = json.loads(handle.read(header_len))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise CheckpointError(f"{self.path} is corrupt: its safetensors header is not valid JSON") from None
        data_start = 8 + header_len
        self.tensors: dict[str, TensorInfo] = {}
        for key, meta in header.items():
            if key == "__metadata__":
                continue
            dtype = _ST_DTYPES.get(meta.get("dtype"))
            if dtype is None:
                raise CheckpointError(f"{self.path}: tensor {key} has unsupported dtype {meta.get('dtype')!r}")
            begin, end = meta["data_offsets"]
            shape = tuple(int(s) for s in meta["shape"])
            nbytes = math.prod(shape) * dtype.itemsize
            if end - begin != nbytes:
                raise CheckpointError(f"{self.path} is corrupt: tensor {key} spans {end - begin} bytes, expected {nbytes}")
            if data_start + end > size:
                raise CheckpointError(
                    f"{self.path} is truncated: tensor {key} ends at byte {data_start + end} "
                    f"but the file has {size} bytes")
            self.tensors[key] = TensorInfo(key, shape, dtype, self.path, data_start + begin)

    def read_into(self, infos: list[TensorInfo], targets: list[torch.Tensor]) -> None:
        """Fill each target (any dtype/device) with its tensor, reading the file in offset order."""
        order = sorted(range(len(infos)), key=lambda i: infos[i].offset)
        with open(self.path, "rb", buffering=0) as handle:
            for i in order:
                info, target = infos[i], targets[i]
                direct = (target.device.type == "cpu" and target.dtype == info.dtype
                          and target.is_contiguous() and info.dtype != torch.bool)
                buffer = target if direct else torch.empty(info.shape, dtype=info.dtype)
                handle.seek(info.offset)
                view = memoryview(buffer.reshape(-1).view(torch.uint8).numpy()) if buffer.numel() else b""
                got = handle.readinto(view) if buffer.numel() else 0
                if got != len(view):
                    raise CheckpointError(f"{self.path} is truncated: could not read tensor {info.key}")
                if not direct:
                    target.copy_(buffer)
                check_finite(target, info)


class PickledStateDict:
    """A `torch.save`d state dict (`pytorch_model.bin`, InternVL `.pth`), loaded weights-only."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            obj = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):  # legacy (non-zip) files cannot be memory-mapped
                raise CheckpointError(f"{self.path} is truncated or corrupt ({_first_line(exc)})") from None
            obj = self._load_plain()
        except Exception as exc:  # noqa: BLE001 - torch.load raises many types for bad files
            raise CheckpointError(f"{self.path} is truncated or corrupt ({_first_line(exc)})") from None
        for wrapper in ("module", "model", "state_dict"):
            if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
        if not isinstance(obj, dict):
            raise CheckpointError(f"{self.path} does not hold a state dict")
        self.state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        self.tensors = {k: TensorInfo(k, tuple(v.shape), v.dtype, self.path) for k, v in self.state.items()}

    def _load_plain(self) -> dict:
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{self.path} is truncated or corrupt ({_first_line(exc)})") from None

    def read_into(self, infos: list[TensorInfo], targets: list[torch.Tensor]) -> None:
        """Copy each tensor into its target, converting dtype and device."""
        for info, target in zip(infos, targets):
            target.copy_(self.state[info.key])
            check_finite(target, info)


def all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or Inf in a tensor (integer tensors always pass)."""
    if not tensor.is_floating_point() or not tensor.numel():
        return True
    # min and max propagate NaN and reach +-Inf; unlike isfinite() they allocate nothing tensor-sized.
    return bool(torch.isfinite(torch.stack(torch.aminmax(tensor))).all())


def check_finite(tensor: torch.Tensor, info: TensorInfo) -> None:
    """Refuse a tensor holding NaN or Inf, as read into its target (so an overflow to fp16 counts too)."""
    if not all_finite(tensor):
        raise CheckpointError(f"{info.file}: tensor {info.key} holds NaN or Inf values "
                              f"(a bad download, or an overflow when converting to {tensor.dtype})")


def open_tensor_file(path: Path) -> SafetensorsFile | PickledStateDict:
    """Open a checkpoint file by its extension (safetensors, else a torch pickle)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    return SafetensorsFile(path) if path.suffix == ".safetensors" else PickledStateDict(path)


def read_weight_map(index_path: Path) -> dict[str, str]:
    """The `weight_map` (tensor key -> shard file name) of a `*.index.json`."""
    try:
        weight_map = json.loads(Path(index_path).read_text())["weight_map"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index_path} is not a valid shard index ({_first_line(exc)})") from None
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{index_path} is not a valid shard index (weight_map is not an object)")
    return weight_map


def encoder_shard_names(index_path: Path) -> list[str]:
    """The shards of a `*.index.json` that hold encoder tensors (a chat model's LLM-only shards are not needed)."""
    weight_map = read_weight_map(index_path)
    return sorted({weight_map[key] for key in encoder_keys(weight_map, str(index_path))})


def encoder_shards(index_path: Path) -> list[Path]:
    """The shard files of a `*.index.json` that hold encoder tensors, each checked to exist."""
    index_path = Path(index_path)
    shards = [index_path.parent / name for name in encoder_shard_names(index_path)]
    missing = [p.name for p in shards if not p.is_file()]
    if missing:
        raise CheckpointError(f"{index_path} names shard(s) that are missing: {', '.join(missing)}")
    return shards


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
