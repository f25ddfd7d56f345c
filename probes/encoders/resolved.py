"""An encoder source resolved once: what it is, what it looks like, and which weights it holds.

A run's plan, its id, its rows and `--print-config` all take this one value, so the source is parsed,
described and fingerprinted once per run (no weights are read: the fingerprint samples file headers).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from probes.encoders.checkpoint import CheckpointSpec, checkpoint_spec
from probes.encoders.describe import EncoderInfo, describe
from probes.encoders.fingerprint import source_fingerprint
from probes.encoders.source import EncoderSource, PathLike, parse_source
from probes.errors import ProbeError


@dataclass(frozen=True)
class ResolvedEncoder:
    """One encoder source with its description, a canonical spelling and its weights' fingerprint."""

    source: EncoderSource
    info: EncoderInfo
    canonical: str          # the source as it is, not as typed: absolute real paths, hub id@revision
    fingerprint: str        # '' when the weights are not there to read (e.g. a bare version name)
    checkpoint: Optional[CheckpointSpec] = None   # the weight files found, for load_encoder (None: none there)

    @property
    def random_weights(self) -> bool:
        """Seeded random weights: `random:` sources and timm models without a pretrained tag or weights file."""
        src = self.source
        return src.kind == "random" or (src.kind == "timm" and not src.timm_tag and src.weights is None)

    @property
    def published_architecture(self) -> Optional[str]:
        """The published version whose architecture this is (picks the published config), or None."""
        return self.info.config_version

    @property
    def name(self) -> str:
        """A readable name for run ids (random weights say so first, never just the version's name)."""
        name = str(self.info.name)
        return f"random-{name.removeprefix('random:')}" if self.random_weights else name

    @property
    def version_label(self) -> str:
        """The row's `encoder_version`: the version claimed by the source; random weights are never a version."""
        version = str(self.info.version)
        return version if not self.random_weights or version.startswith(("random:", "timm:")) else f"random:{version}"


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


def _find_checkpoint(src: EncoderSource) -> tuple[Optional[CheckpointSpec], Optional[CheckpointSpec]]:
    """(the checkpoint with its weights, None when they are not there; the checkpoint its configs describe)."""
    if not src.names_checkpoint:
        return None, None
    try:
        spec = checkpoint_spec(src)
    except ProbeError:   # no weights there (e.g. --print-config of a config-only folder): describe from configs
        return None, checkpoint_spec(src, with_weights=False)
    return spec, spec


def resolve_encoder(source: Union[PathLike, EncoderSource], version: Optional[str] = None,
                    weights: Optional[PathLike] = None, revision: Optional[str] = None,
                    weights_required: bool = False) -> ResolvedEncoder:
    """Parse, find, describe and fingerprint a source once (config files and weight-file headers only)."""
    src = parse_source(source, version, weights, revision, weights_required=weights_required)
    spec, configs = _find_checkpoint(src)
    return ResolvedEncoder(src, describe(src, configs), canonical_source(src), source_fingerprint(src, spec), spec)
