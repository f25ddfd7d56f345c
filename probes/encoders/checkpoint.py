"""Resolve a local checkpoint (folder or file): its weight files, architecture, preprocessing and name."""
from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from probes.encoders.architecture import InternViTConfig, read_json_object
from probes.encoders.source import EncoderSource, looks_like_hub_id
from probes.encoders.tensor_files import INDEX_FILES, SINGLE_FILES, WEIGHT_SUFFIXES, SafetensorsFile, encoder_shards
from probes.encoders.versions import VERSIONS
from probes.errors import CheckpointError, EncoderSourceError

log = logging.getLogger(__name__)


@dataclass
class CheckpointSpec:
    """A resolved checkpoint: its files, architecture, names, and where each came from."""

    files: list[Path]
    config: InternViTConfig
    version: str                 # the published version, or 'custom'
    name: str                    # a readable name (version, repo id, or folder name)
    where: str                   # for messages: the path or hub id as given
    preprocessor: Optional[Path] = None


def _weight_files(folder: Path) -> list[Path]:
    for name in INDEX_FILES:
        if (folder / name).is_file():
            return encoder_shards(folder / name)
    for name in SINGLE_FILES:
        if (folder / name).is_file():
            return [folder / name]
    loose = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.pth"))
    if len(loose) == 1:
        return loose
    raise CheckpointError(
        f"{folder} holds no weights (looked for {', '.join(INDEX_FILES + SINGLE_FILES)})")


def _architecture(raw: Optional[dict[str, Any]], config_file: Path, version: Optional[str],
                  where: str) -> InternViTConfig:
    if raw is not None:
        config = InternViTConfig.from_dict(raw, origin=str(config_file))
        if version is not None and VERSIONS[version].replace(initializer_factor=0.0) != config.replace(
                drop_path_rate=0.0, initializer_factor=0.0):
            log.warning("%s differs from the %s preset; the checkpoint's config.json wins", config_file, version)
        return config
    if version is None:
        raise CheckpointError(
            f"{where} has no config.json to say its architecture; name the version, "
            f"e.g. 'InternViT-6B-448px-V1-5={where}'")
    return VERSIONS[version]


def folder_name(folder: Path, raw: Optional[dict[str, Any]]) -> str:
    """A user's checkpoint is named by config.json's `_name_or_path` when that is a hub id, else by its folder."""
    named = (raw or {}).get("_name_or_path")
    return named if isinstance(named, str) and looks_like_hub_id(named) else folder.name


def _missing_path(path: Path, where: str) -> EncoderSourceError:
    """'does not exist', with the closest names in the deepest folder that does exist."""
    hint = ""
    parent, missing = path.parent, path.name
    while parent != parent.parent and not parent.exists():
        parent, missing = parent.parent, parent.name
    if parent.is_dir():
        close = difflib.get_close_matches(missing, [p.name for p in parent.iterdir()], n=3, cutoff=0.6)
        hint = (f"; did you mean {' or '.join(str(parent / name) for name in close)}?" if close
                else f"; {parent} holds no {missing}")
    first = where.split("/", 1)[0]
    if looks_like_hub_id(where) and first and Path(first).exists():
        hint += f" (read as a local path, not a hub id, because {first} exists here)"
    return EncoderSourceError(f"encoder source {where} does not exist{hint}")


def _not_weights(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a weights file; give the folder that holds config.json and the weights "
        f"({' or '.join(SINGLE_FILES)}, or shards with {INDEX_FILES[0]}), or a weights file "
        f"({', '.join(WEIGHT_SUFFIXES)})")


def resolve_checkpoint(path: Path, version: Optional[str] = None, *, name: Optional[str] = None,
                       where: Optional[str] = None, with_weights: bool = True) -> CheckpointSpec:
    """Find the weight files (unless `with_weights` is False), the architecture and the preprocessing."""
    path = Path(path)
    where = where or str(path)
    if not path.exists():
        raise _missing_path(path, where)
    if path.is_file() and path.name in INDEX_FILES:  # the shard index stands for its folder
        path = path.parent
    elif path.is_file() and path.suffix not in WEIGHT_SUFFIXES:
        raise _not_weights(path)
    folder = path if path.is_dir() else path.parent
    if path.is_file() and path.suffix in (".pth", ".pt") and version is None:
        raise CheckpointError(
            f"{path} is an InternVL .pth with no architecture in it; name the version, "
            f"e.g. 'InternViT-6B-224px={path}'")
    files = (_weight_files(path) if path.is_dir() else [path]) if with_weights else []
    config_file = folder / "config.json"
    raw = read_json_object(config_file) if config_file.is_file() else None
    config = _architecture(raw, config_file, version, where)
    preprocessor = folder / "preprocessor_config.json"
    return CheckpointSpec(files, config, version or "custom", name or version or folder_name(folder, raw), where,
                          preprocessor if preprocessor.is_file() else None)


def checkpoint_spec(source: EncoderSource, with_weights: bool = True) -> CheckpointSpec:
    """The checkpoint a `path`, `version` or `hub` source names (hub files come from the cache first)."""
    if source.kind == "hub":
        from probes.encoders.hub import fetch_checkpoint  # hub.py needs huggingface_hub; import it only here

        folder = fetch_checkpoint(source.repo_id, source.revision, with_weights=with_weights)
        return resolve_checkpoint(folder, source.version, name=source.version or source.repo_id,
                                  where=source.text, with_weights=with_weights)
    if source.kind not in ("path", "version"):
        raise ValueError(f"{source.kind} sources have no checkpoint folder")
    return resolve_checkpoint(source.path, source.version, with_weights=with_weights)


def stored_float_dtypes(spec: Optional[CheckpointSpec]) -> set:
    """The floating dtypes a checkpoint stores (read from safetensors headers; empty when unknown or none)."""
    if spec is None:
        return set()
    files = [f for f in spec.files if f.suffix == ".safetensors"]
    return {info.dtype for f in files for info in SafetensorsFile(f).tensors.values() if info.dtype.is_floating_point}
