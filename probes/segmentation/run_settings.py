"""A segmentation run's settings: the flags and the encoder / dataset facts, resolved once into frozen values.

Pure functions of their inputs: nothing here reads or writes a config (config_fill.py writes these into one).
A field left None keeps the config file's value.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from probes.encoders import EncoderInfo
from probes.errors import ConfigError
from probes.segmentation.config_checks import check_strategy
from probes.segmentation.datasets import DatasetSpec
from probes.segmentation.recipe_sizes import published_crop, recipe


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


def default_indices(mode: str, num_layers: int) -> list[int]:
    """Linear: the last block; pyramid: four evenly spaced blocks ending at the last (our choice)."""
    if mode == "linear":
        return [num_layers - 1]
    step = num_layers / 4
    return [round(step * (k + 1)) - 1 for k in range(4)]


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
