"""A segmentation run's settings: the flags and the encoder / dataset facts, resolved once into frozen values.

Pure functions of their inputs and of the released recipe's sizes (read once from the shipped config); nothing
here writes a config (config_fill.py writes these into one). A field left None keeps the config file's value.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from probes.encoders import EncoderInfo
from probes.errors import ConfigError
from probes.segmentation.datasets import DatasetSpec

STRATEGIES = ("none", "ddp", "fsdp", "deepspeed")


@functools.lru_cache(maxsize=None)
def recipe() -> dict[str, int]:
    """The released recipe's sizes, read from the shipped generic config (never restated in code).

    `iters`, `crop`, `stride`, total `batch`, `warmup` iterations and the `patch` its sizes are multiples of.
    """
    from probes.config_files import config_dir, load_file

    cfg = load_file(config_dir("segmentation") / "ade20k_head.py")
    divisor = [t["size_divisor"] for t in cfg.val_dataloader.dataset.pipeline if t["type"] == "ResizeToMultiple"]
    # mmengine's LinearLR reaches its end factor at step `end - 1` (schedule_80k.py).
    return {"iters": int(cfg.train_cfg.max_iters), "crop": int(cfg.model.test_cfg.crop_size[0]),
            "stride": int(cfg.model.test_cfg.stride[0]), "batch": int(cfg.train_dataloader.batch_size),
            "warmup": int(cfg.param_scheduler[0]["end"]) - 1, "patch": int(divisor[0])}


def published_crop(patch: int) -> int:
    """The recipe's crop (504 for patch 14); for another patch size the nearest multiple (512 for 16)."""
    return max(patch, round(recipe()["crop"] / patch) * patch)


@dataclass(frozen=True)
class Crop:
    """The train crop and the sliding test window (`size`), and the window's step (`stride`)."""

    size: int
    stride: int
    set_by: str    # the flag or fact that chose it: '--crop-size' or 'encoder (patch P)'


@dataclass(frozen=True)
class Schedule:
    """The schedule of a run of `iters` iterations, the recipe's shape kept."""

    iters: int
    warmup: int              # warm-up iterations (the recipe's 1,500 of 80,000, scaled)
    checkpoint_every: int    # checkpoint at least this often (a tenth of the run)


@dataclass(frozen=True)
class EncoderFacts:
    """What the config takes from the encoder: patch, depth, width, normalisation (0..255 units)."""

    patch: int
    depth: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class RunSettings:
    """Everything a run's flags and encoder decide about its config."""

    mode: str
    source: str
    revision: Optional[str]
    strategy: str
    num_classes: int
    data_root: Optional[str]      # None: the config's (no --data, or a plan without data)
    workers: Optional[int]
    crop: Optional[Crop]
    schedule: Optional[Schedule]
    total_batch: Optional[int]
    encoder: EncoderFacts


def crop_of(size: int, set_by: str = "--crop-size") -> Crop:
    """A crop and its test stride, the recipe's stride-to-crop ratio kept (341 of 504)."""
    sizes = recipe()
    return Crop(size, max(1, round(size * sizes["stride"] / sizes["crop"])), set_by)


def schedule_of(iters: int) -> Schedule:
    """Shorten (or lengthen) the schedule keeping its shape: warm-up scales with the run."""
    if iters <= 0:
        raise ConfigError(f"--iters {iters} must be positive")
    sizes = recipe()
    # At least every tenth of the run (the recipe's 1,000 of 80,000 is 1.25%): a killed short run keeps most of
    # its work for --resume instead of starting again from iteration 0.
    return Schedule(iters, max(1, min(iters - 1, round(sizes["warmup"] * iters / sizes["iters"]))),
                    max(1, iters // 10))


def encoder_facts(info: EncoderInfo) -> EncoderFacts:
    """The encoder's patch, depth, width and its own normalisation in 0..255 units (never a hard-coded one)."""
    return EncoderFacts(info.patch_size, info.num_layers, info.embed_dim,
                        tuple(round(255 * v, 4) for v in info.mean), tuple(round(255 * v, 4) for v in info.std))


def check_strategy(strategy: str) -> None:
    """A strategy must be one the suite runs; DeepSpeed is refused with the reason and what runs instead."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if strategy == "deepspeed":
        # Found by running it (2 CPU processes, DS_ACCELERATOR=cpu): mmengine 0.10.7's DeepSpeedStrategy imports
        # deepspeed.runtime.fp16.onebit, gone in DeepSpeed 0.19; with 0.18 the engine builds, casts the whole
        # model to bf16, and the first forward fails (the neck gets the encoder's fp32 maps). The released
        # runs' arithmetic (DeepSpeed 0.8.0 ZeRO-1 bf16) is carried without DeepSpeed instead: precision=
        # 'released' (master_weights.py), single-process or DDP, with ZeRO-1's partitioning of the masters and
        # optimizer state over processes (partition.py).
        raise ConfigError("--strategy deepspeed does not run (mmengine 0.10.7's DeepSpeed strategy fails with "
                          "DeepSpeed >= 0.19, and with 0.18 casts the heads to bf16); the released ZeRO-1 bf16 "
                          "update runs without it: precision='released' (the GPU default), alone or with "
                          "--strategy ddp / --launcher")


def resolve_settings(opts: Any, info: EncoderInfo, spec: DatasetSpec, root: Optional[Path]) -> RunSettings:
    """The settings of a run from its `SegmentOptions`, the encoder and the dataset (data root when checked)."""
    check_strategy(opts.strategy)
    crop = None
    if opts.crop_size is not None:
        crop = crop_of(opts.crop_size)
    elif info.patch_size != recipe()["patch"]:
        crop = crop_of(published_crop(info.patch_size), f"encoder (patch {info.patch_size})")
    return RunSettings(mode=opts.mode, source=opts.encoder, revision=opts.revision, strategy=opts.strategy,
                       num_classes=spec.num_classes, data_root=None if root is None else str(root),
                       workers=opts.workers, crop=crop,
                       schedule=None if opts.iters is None else schedule_of(opts.iters),
                       total_batch=opts.batch_size, encoder=encoder_facts(info))
