"""`load_encoder`: resolve a source (folder, file, version name, timm name) into a ready encoder."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from probes.encoders.config import InternViTConfig
from probes.encoders.internvit import InternViT
from probes.encoders.keymaps import LAYOUTS, detect_layout
from probes.encoders.preprocessing import read_preprocessor_config
from probes.encoders.tensor_files import TensorInfo, open_tensor_file, shards_from_index
from probes.encoders.timm_encoder import load_timm_encoder
from probes.encoders.versions import VERSIONS, find_version, resolve_version
from probes.errors import CheckpointError, EncoderSourceError
from probes.runtime import resolve_device, resolve_dtype

log = logging.getLogger(__name__)

Source = Union[str, os.PathLike]
_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
_BLOCK_KEY = re.compile(r"^encoder\.layers\.(\d+)\.")
_LIST_LIMIT = 8


@dataclass
class CheckpointSpec:
    """A resolved checkpoint: its files, architecture, and where each came from."""

    files: list[Path]
    config: InternViTConfig
    version: str
    where: str
    preprocessor: Optional[Path] = None


def _weight_files(folder: Path) -> list[Path]:
    for name in _INDEX_FILES:
        if (folder / name).is_file():
            return shards_from_index(folder / name)
    for name in _SINGLE_FILES:
        if (folder / name).is_file():
            return [folder / name]
    loose = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.pth"))
    if len(loose) == 1:
        return loose
    raise CheckpointError(
        f"{folder} holds no weights (looked for {', '.join(_INDEX_FILES + _SINGLE_FILES)})")


def _architecture(config_file: Optional[Path], version: Optional[str], where: str) -> InternViTConfig:
    if config_file is not None:
        config = InternViTConfig.from_file(config_file)
        if version is not None and VERSIONS[version] != config.replace(drop_path_rate=0.0):
            log.warning("%s differs from the %s preset; the checkpoint's config.json wins", config_file, version)
        return config
    if version is None:
        raise CheckpointError(
            f"{where} has no config.json to say its architecture; name the version, "
            f"e.g. 'InternViT-6B-448px-V1-5={where}'")
    return VERSIONS[version]


def resolve_checkpoint(path: Path, version: Optional[str] = None) -> CheckpointSpec:
    """Find the weight files, the architecture and the preprocessing of a local checkpoint."""
    if not path.exists():
        raise EncoderSourceError(f"encoder source {path} does not exist")
    folder = path if path.is_dir() else path.parent
    files = _weight_files(path) if path.is_dir() else [path]
    config_file = folder / "config.json"
    if path.is_file() and path.suffix in (".pth", ".pt") and version is None:
        raise CheckpointError(
            f"{path} is an InternVL .pth with no architecture in it; name the version, "
            f"e.g. 'InternViT-6B-224px={path}'")
    config = _architecture(config_file if config_file.is_file() else None, version, str(path))
    preprocessor = folder / "preprocessor_config.json"
    return CheckpointSpec(files, config, version or "custom", str(path),
                          preprocessor if preprocessor.is_file() else None)


def _short_list(keys: set[str]) -> str:
    shown = sorted(keys)[:_LIST_LIMIT]
    more = f" (+{len(keys) - _LIST_LIMIT} more)" if len(keys) > _LIST_LIMIT else ""
    return ", ".join(shown) + more


def _plan(spec: CheckpointSpec, handles: list, model: nn.Module) -> dict[str, TensorInfo]:
    """Map every checkpoint tensor to a model parameter; refuse any mismatch before reading weights."""
    infos = [info for handle in handles for info in handle.tensors.values()]
    layout = detect_layout(info.key for info in infos)
    key_map = LAYOUTS[layout]
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    plan: dict[str, TensorInfo] = {}
    dropped: set[int] = set()
    for info in infos:
        name = key_map(info.key)
        if name is None:
            continue
        block = _BLOCK_KEY.match(name)
        if block and name not in expected and int(block.group(1)) >= model.num_layers:
            dropped.add(int(block.group(1)))
            continue
        plan[name] = info
    missing, unexpected = set(expected) - set(plan), set(plan) - set(expected)
    if missing or unexpected:
        parts = [f"missing {len(missing)} key(s): {_short_list(missing)}" if missing else "",
                 f"unexpected {len(unexpected)} key(s): {_short_list(unexpected)}" if unexpected else ""]
        raise CheckpointError(
            f"checkpoint {spec.where} ({layout} layout) does not match its architecture "
            f"(hidden {spec.config.hidden_size}, {model.num_layers} blocks): " + "; ".join(p for p in parts if p))
    wrong = {n for n, info in plan.items() if info.shape != expected[n]}
    if wrong:
        name = sorted(wrong)[0]
        raise CheckpointError(
            f"checkpoint {spec.where}: {len(wrong)} tensor(s) have the wrong shape, e.g. {name} is "
            f"{list(plan[name].shape)} but the architecture needs {list(expected[name])}")
    if dropped:
        log.info("%s: dropping blocks %d-%d of %d on purpose (using the first %d)", spec.where,
                 min(dropped), max(dropped), spec.config.num_hidden_layers, model.num_layers)
    log.debug("%s: %s layout, %d tensors in %d file(s)", spec.where, layout, len(plan), len(handles))
    return plan


def load_internvit(spec: CheckpointSpec, num_layers: Optional[int] = None, dtype: torch.dtype = torch.float32,
                   device: torch.device = torch.device("cpu"), drop_path_rate: Optional[float] = None) -> InternViT:
    """Build the architecture without memory, then stream each tensor straight into place."""
    depth = spec.config.num_hidden_layers
    if num_layers is not None and not 0 < num_layers <= depth:
        raise CheckpointError(f"num_layers={num_layers} is outside 1..{depth} for {spec.where}")
    handles = [open_tensor_file(f) for f in spec.files]  # headers only: every shard checked first
    with torch.device("meta"):
        model = InternViT(spec.config, num_layers=num_layers, drop_path_rate=drop_path_rate)
    plan = _plan(spec, handles, model)
    model = model.to(dtype=dtype).to_empty(device=device)
    params = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for handle in handles:
            names = [n for n, info in plan.items() if info.file == handle.path]
            handle.read_into([plan[n] for n in names], [params[n].data for n in names])
    return model


def _split_source(source: Source, version: Optional[str], weights: Optional[Source]) -> tuple[Path, Optional[str]]:
    text = os.fspath(source)
    if find_version(text) is not None:
        if weights is None:
            raise EncoderSourceError(
                f"{text} names an architecture, not weights (nothing downloads): give the local path, "
                f"e.g. '{find_version(text)}=/path/to/{find_version(text)}'")
        return Path(weights), resolve_version(text)
    if "=" in text and not Path(text).exists():
        name, _, path = text.partition("=")
        return Path(path), resolve_version(name)
    if weights is not None:
        raise EncoderSourceError(f"weights={weights} given with a checkpoint path {text}; give one or the other")
    return Path(text), resolve_version(version) if version else None


def load_encoder(source: Source, *, version: Optional[str] = None, weights: Optional[Source] = None,
                 num_layers: Optional[int] = None, dtype: Union[str, torch.dtype, None] = None,
                 device: Union[str, torch.device, None] = "cpu", drop_path_rate: Optional[float] = None,
                 trainable: bool = False) -> nn.Module:
    """Load an encoder from a HF/chat folder, a file + version, `VERSION=PATH`, or `timm:<name>`.

    Frozen (eval mode, no grad) unless `trainable`. Default dtype: bf16 for a frozen encoder on
    GPU, float32 otherwise.
    """
    target = resolve_device(device)
    text = os.fspath(source)
    if text.startswith("timm:"):
        encoder = load_timm_encoder(text[len("timm:"):], weights=weights, num_layers=num_layers,
                                    drop_path_rate=drop_path_rate)
        storage = resolve_dtype(dtype, target, trainable)
        encoder = encoder.to(device=target, dtype=storage)
    else:
        path, version = _split_source(source, version, weights)
        spec = resolve_checkpoint(path, version)
        storage = resolve_dtype(dtype, target, trainable)
        encoder = load_internvit(spec, num_layers, storage, target, drop_path_rate)
        encoder.version, encoder.source = spec.version, spec.where
        if spec.preprocessor is not None:
            encoder.data_config = read_preprocessor_config(spec.preprocessor, encoder.data_config)
        log.info("loaded %s from %s: %d blocks, %.1fM params, %s on %s", encoder.version, spec.where,
                 encoder.num_layers, sum(p.numel() for p in encoder.parameters()) / 1e6, storage, target)
    if not trainable:
        encoder.requires_grad_(False).eval()
    return encoder
