"""A short name for an encoder's weights, cheap enough to compute on every load.

Hashing 11 GB of weights would take a minute; instead each weight file contributes its name,
its size, its safetensors header (every tensor's name, dtype, shape and offset) and its first
and last MiB of tensor data (for a `.bin`/`.pth`: the file's first and last MiB). Two different
trainings of one architecture differ in those bytes; a re-download of the same files does not.
Random weights are named by what seeds them.
"""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Iterable, Optional

from probes.encoders.checkpoint import CheckpointSpec
from probes.encoders.source import RANDOM_SEED, EncoderSource

_SAMPLE = 1 << 20  # bytes read from each end of a file's tensor data
LENGTH = 12        # hex characters kept


def _update_with_file(digest: "hashlib._Hash", path: Path) -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}\0{size}\0".encode())
    with open(path, "rb") as handle:
        start = 0
        if path.suffix == ".safetensors" and size >= 8:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            start = min(size, 8 + header_len)
            handle.seek(0)
            digest.update(handle.read(start))
        handle.seek(start)
        digest.update(handle.read(min(_SAMPLE, size - start)))
        handle.seek(max(start, size - _SAMPLE))
        digest.update(handle.read())


def files_fingerprint(files: Iterable[Path]) -> str:
    """12 hex chars from each weight file's name, size, header and end samples (order-independent)."""
    digest = hashlib.sha256(b"weights-v1\0")
    for path in sorted((Path(f) for f in files), key=lambda p: p.name):
        _update_with_file(digest, path)
    return digest.hexdigest()[:LENGTH]


def seed_fingerprint(what: str, seed: int) -> str:
    """12 hex chars naming seeded random weights (`what` names the architecture)."""
    return hashlib.sha256(f"random-v1\0{what}\0{seed}".encode()).hexdigest()[:LENGTH]


def source_fingerprint(src: EncoderSource, checkpoint: Optional[CheckpointSpec]) -> str:
    """The fingerprint `load_encoder(src)` would give, from the checkpoint as found, without building the model.

    Checkpoints (folders, files, hub ids) hash their weight files ('' when `checkpoint` is None: the weights are
    not there to read, e.g. --print-config of a config-only folder); timm models their weights file or their
    seed; `random:` sources their seed.
    """
    if src.names_checkpoint:
        return files_fingerprint(checkpoint.files) if checkpoint is not None else ""
    if src.kind == "timm":
        return (files_fingerprint([Path(src.weights)]) if src.weights
                else seed_fingerprint(f"timm:{src.timm_model}", RANDOM_SEED))
    if src.kind == "random":
        return seed_fingerprint(f"random:{src.version}", RANDOM_SEED)
    return ""
