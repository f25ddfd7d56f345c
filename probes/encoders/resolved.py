"""An encoder source resolved once: what it is, what it looks like, and which weights it holds.

A run's plan, its id, its rows and `--print-config` all take this one value, so the source is parsed,
described and fingerprinted once per run (no weights are read: the fingerprint samples file headers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from probes.encoders.checkpoint import CheckpointSpec, checkpoint_spec
from probes.encoders.describe import EncoderInfo, describe
from probes.encoders.fingerprint import source_fingerprint
from probes.encoders.source import EncoderSource, PathLike, parse_source
from probes.errors import ProbeError


@dataclass(frozen=True)
class ResolvedEncoder:
    """One encoder source with its description, a canonical spelling, its weights' fingerprint and its names."""

    source: EncoderSource
    info: EncoderInfo
    canonical: str          # the source as it is, not as typed: absolute real paths, hub id@revision
    fingerprint: str        # '' when the weights are not there to read (e.g. a bare version name)
    checkpoint: Optional[CheckpointSpec] = None   # the weight files found, for load_encoder (None: none there)
    # Decided from the fields above when the value is made, so plans and rows read them as plain data:
    # seeded random weights (`random:` sources, timm models without a pretrained tag or weights file);
    random_weights: bool = field(init=False)
    # the published version whose architecture this is (picks the published config), or None;
    published_architecture: Optional[str] = field(init=False)
    # a readable name for run ids (random weights say so first, never just the version's name);
    name: str = field(init=False)
    # the row's `encoder_version`: the version claimed by the source; random weights are never a version.
    version_label: str = field(init=False)

    def __post_init__(self) -> None:
        src, name, version = self.source, str(self.info.name), str(self.info.version)
        random = src.kind == "random" or (src.kind == "timm" and not src.timm_tag and src.weights is None)
        label = version if not random or version.startswith(("random:", "timm:")) else f"random:{version}"
        for key, value in (("random_weights", random), ("published_architecture", self.info.config_version),
                           ("name", f"random-{name.removeprefix('random:')}" if random else name),
                           ("version_label", label)):
            object.__setattr__(self, key, value)   # frozen: set once, here


def _real(path: Optional[PathLike]) -> str:
    return str(Path(path).expanduser().resolve()) if path is not None else ""


def canonical_source(src: EncoderSource) -> str:
    """The source by what it names: `./ckpt/a`, `ckpt/a` and `/abs/ckpt/a` give one spelling."""
    if src.kind == "path":
        return _real(src.path)
    if src.kind == "version":
        return f"{src.version}={_real(src.path)}" if src.path is not None else str(src.version)
    if src.kind == "hub":
        return f"{src.repo_id}@{src.revision}" if src.revision else str(src.repo_id)
    if src.kind == "timm":
        return f"timm:{src.timm_model}" + (f"@{_real(src.weights)}" if src.weights is not None else "")
    return src.text


def resolve_encoder(source: Union[PathLike, EncoderSource], version: Optional[str] = None,
                    weights: Optional[PathLike] = None, revision: Optional[str] = None,
                    weights_required: bool = False) -> ResolvedEncoder:
    """Parse, find, describe and fingerprint a source once (config files and weight-file headers only)."""
    src = parse_source(source, version, weights, revision, weights_required=weights_required)
    spec = configs = None   # the checkpoint with its weights (None: not there); the one its configs describe
    if src.names_checkpoint:
        try:
            spec = configs = checkpoint_spec(src)
        except ProbeError:   # no weights there (e.g. --print-config of a config-only folder): describe from configs
            configs = checkpoint_spec(src, with_weights=False)
    return ResolvedEncoder(src, describe(src, configs), canonical_source(src), source_fingerprint(src, spec), spec)
