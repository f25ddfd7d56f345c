"""Shape of an encoder source (width, depth, version) read without loading its weights."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from probes.encoders.versions import VERSIONS, find_version, resolve_version

RANDOM_PREFIX = "random:"


@dataclass(frozen=True)
class EncoderInfo:
    """What the config needs before the model is built."""

    embed_dim: int
    num_layers: int
    version: str
    # The published version whose architecture this is (picks the shipped config); None if none matches.
    config_version: str | None = None
    patch_size: int = 14
    mean: tuple = (0.485, 0.456, 0.406)
    std: tuple = (0.229, 0.224, 0.225)


def describe_source(source: str) -> EncoderInfo:
    """Width, depth and version of a `load_encoder` source (or `random:VERSION`), from config files only."""
    text = os.fspath(source)
    if text.startswith(RANDOM_PREFIX):
        version = resolve_version(text[len(RANDOM_PREFIX):])
        cfg = VERSIONS[version]
        return EncoderInfo(cfg.hidden_size, cfg.num_hidden_layers, version, version)
    if text.startswith("timm:"):
        from probes.encoders.timm_encoder import load_timm_encoder

        # Building on the meta device costs no memory and reads no weights.
        with torch.device("meta"):
            enc = load_timm_encoder(text[len("timm:"):])
        return EncoderInfo(enc.embed_dim, enc.num_layers, enc.version, patch_size=enc.patch_size,
                           mean=tuple(enc.data_config["mean"]), std=tuple(enc.data_config["std"]))
    from probes.encoders.loader import resolve_checkpoint

    version = None
    if "=" in text and not Path(text).exists():
        name, _, text = text.partition("=")
        version = resolve_version(name)
    elif find_version(text) is not None:
        version = find_version(text)
        cfg = VERSIONS[version]
        return EncoderInfo(cfg.hidden_size, cfg.num_hidden_layers, version, version)
    spec = resolve_checkpoint(Path(text), version)
    config_version = version or matching_version(spec.config)
    return EncoderInfo(spec.config.hidden_size, spec.config.num_hidden_layers, spec.version, config_version)


def matching_version(config) -> str | None:
    """The first published version with exactly this architecture (versions sharing one share configs)."""
    plain = config.replace(drop_path_rate=0.0)
    return next((name for name, arch in VERSIONS.items() if arch == plain), None)
