"""How a segmentation run holds its weights and computes: the `precision` config key and what it sets up.

Arrangements (docs/recipes.md has the released code they transcribe):
- `released`: what InternVL-MMDetSeg ran for head and full tuning (DeepSpeed 0.8.0 ZeRO-1, bf16 enabled,
  ToBFloat16Hook): backbone and neck weights in bf16, computing in bf16 without autocast, fp32 master
  copies updated as ZeRO-1 updates them (`ReleasedPrecisionOptimWrapper`), heads computing in fp32.
  Linear probing ran without DeepSpeed: a bf16 frozen backbone (ToBFloat16Hook) and an fp32 head.
- `autocast-fp32-weights`: fp32 neck and head weights (full tuning: fp32 encoder too) under bf16 autocast;
  a frozen encoder is still stored in bf16. The suite's arrangement before the released one was built.
- `fp32`: fp32 weights, no autocast (bf16 is slow on CPUs: a CPU run's default).
`precision=None` (the configs' value) is `released` on CUDA and `fp32` elsewhere.
"""
from __future__ import annotations

import contextlib
from typing import Any, Optional

import torch
from torch import nn

from probes.errors import ConfigError

PRECISIONS = ("released", "autocast-fp32-weights", "fp32")
AUTOCAST = ("cuda", "always", "never")
_RELEASED_TUNING = ("bf16 backbone and neck weights computing in bf16, fp32 masters, fp16-communicated gradients "
                    "(DeepSpeed 0.8.0 ZeRO-1), heads computing in fp32 on bf16-rounded weights")
# What each arrangement holds, per mode: the words a row's notes quote when a run's differ from the release's.
WEIGHTS = {
    "released": {"linear": "bf16 frozen backbone computing in bf16, fp32 head",
                 "head": _RELEASED_TUNING.replace("bf16 backbone and neck", "bf16 frozen backbone, bf16 neck"),
                 "full": _RELEASED_TUNING},
    "autocast-fp32-weights": {"linear": "bf16 frozen backbone under bf16 autocast, fp32 head",
                              "head": "bf16 frozen backbone, fp32 neck and heads under bf16 autocast",
                              "full": "fp32 backbone, neck and heads under bf16 autocast"},
    "fp32": {"linear": "fp32", "head": "fp32", "full": "fp32"},
}


def resolve_precision(value: Optional[str], device: str, mode: str, strategy: str = "none") -> str:
    """The arrangement a run uses: the config's `precision`, or (None) `released` on CUDA and `fp32` elsewhere."""
    if value is not None and value not in PRECISIONS:
        raise ConfigError(f"precision={value!r} is not one of {', '.join(PRECISIONS)} (or None: released on a "
                          "GPU, fp32 on a CPU)")
    # FSDP flattens each unit's parameters into one tensor of one dtype, and its root unit holds the neck
    # (bf16 in the released arrangement) with the heads (fp32); its own mixed precision keeps fp32 sharded
    # weights and casts them for compute, which is the autocast arrangement, not bf16 weights with fp32
    # masters. So FSDP head/full runs keep `autocast-fp32-weights`, and their rows name `effective.weights`.
    sharded = strategy == "fsdp" and mode != "linear"
    if value is None:
        return "fp32" if device != "cuda" else ("autocast-fp32-weights" if sharded else "released")
    if value == "released" and sharded:
        raise ConfigError("precision='released' does not combine with --strategy fsdp (FSDP needs one dtype "
                          "per flattened unit; the neck's bf16 and the heads' fp32 share its root unit): use "
                          "precision='autocast-fp32-weights', or --strategy ddp")
    return value


def configure(cfg: Any, arrangement: str, mode: str) -> None:
    """Set the modules' dtypes and autocast and the optimizer wrapper that realise `arrangement`."""
    model = cfg.model
    parts = [model.backbone] + ([model.neck] if model.get("neck") is not None else [])
    # The released backbone and neck compute in their bf16 weights' dtype (no autocast: its norms cast to
    # fp32 themselves, as ours do); the autocast arrangement computes fp32 weights under bf16 autocast.
    for part in parts:
        part.bf16_autocast = "always" if arrangement == "autocast-fp32-weights" else "never"
    if arrangement != "released" or mode == "linear":
        if "partition" in cfg.optim_wrapper:
            raise ConfigError(f"optim_wrapper.partition is an option of the released head/full-tuning update; "
                              f"this run's precision is {arrangement!r} (mode {mode!r})")
    if arrangement == "fp32":
        return
    if mode != "full" and model.backbone.get("dtype") is None:
        model.backbone.dtype = "bfloat16"   # a frozen encoder is stored in bf16 (half the memory)
    if arrangement == "released" and mode != "linear":
        requested = cfg.optim_wrapper.get("type", "OptimWrapper")
        if requested != "OptimWrapper":
            raise ConfigError(f"optim_wrapper.type={requested!r} does not combine with precision='released', whose "
                              "update is ReleasedPrecisionOptimWrapper's; set precision='autocast-fp32-weights'")
        model.bf16_weights = True
        cfg.optim_wrapper.type = "ReleasedPrecisionOptimWrapper"


def check_autocast(value: str) -> str:
    """A module's `bf16_autocast` must be one of AUTOCAST."""
    if value not in AUTOCAST:
        raise ConfigError(f"bf16_autocast={value!r} is not one of {', '.join(AUTOCAST)}")
    return value


def bf16_autocast(where: str, x: torch.Tensor) -> Optional[contextlib.AbstractContextManager]:
    """bf16 autocast on `x`'s device when `where` asks for it there, else None."""
    if where == "always" or (where == "cuda" and x.is_cuda):
        return torch.autocast(x.device.type, dtype=torch.bfloat16)
    return None


@torch.no_grad()
def round_to_bf16_(module: nn.Module) -> None:
    """Keep `module`'s dtype but round its floating parameters to bf16 values."""
    for param in module.parameters():
        if param.is_floating_point() and param.dtype != torch.bfloat16:
            param.copy_(param.to(torch.bfloat16))
