"""Device, dtype and precision choices shared by every command."""
from __future__ import annotations

import contextlib
import os
from typing import ContextManager, Union

import torch

from probes.errors import ConfigError

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


MAX_LOADER_WORKERS = 8


def default_workers(cap: int = MAX_LOADER_WORKERS) -> int:
    """Data-loader workers per process: the cores this process may use, shared among the node's processes, at most `cap`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, min(cap, per_process))


def device_type(device: Union[str, torch.device, None]) -> str:
    """'cuda' or 'cpu': the kind of device a run on `device` (None = this machine's best) computes on."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return torch.device(device).type
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None


def resolve_device(device: Union[str, torch.device, None]) -> torch.device:
    """A torch device; asking for CUDA on a machine without it is a clear error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was requested but this machine has no CUDA GPU; use --device cpu")
    return resolved


def resolve_dtype(dtype: Union[str, torch.dtype, None], device: torch.device, trainable: bool) -> torch.dtype:
    """Storage dtype of encoder weights: bf16 for a frozen encoder on GPU, else float32 by default."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.bfloat16 if (device.type == "cuda" and not trainable) else torch.float32
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


def autocast_for(device: torch.device, precision: str = "bf16") -> ContextManager:
    """Autocast to `precision` ('fp16' | 'bf16' | 'fp32') on GPU; a no-op on CPU, where half precision is slower."""
    if device.type != "cuda" or precision not in _AUTOCAST:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST[precision])


def count_trainable(module: torch.nn.Module) -> int:
    """Number of parameters that receive gradients."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
