"""Per-epoch checkpoints of a sweep, written atomically so a kill never leaves a torn file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import torch

from probes.errors import CheckpointError
from probes.io import atomic_path


def save_atomic(state: Dict[str, Any], path: Path) -> None:
    """Write a checkpoint to a temporary file beside ``path`` and rename it over (atomic on POSIX)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, fingerprint: str) -> Optional[Dict[str, Any]]:
    """Our own checkpoint, or None when absent; one from another run setup is an error."""
    if not path.is_file():
        return None
    try:
        # Our own file holding optimizer/scheduler state (plain python objects), hence not weights_only.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a torn or foreign file: say which one
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc}).") from None
    if state.get("fingerprint") != fingerprint:
        raise CheckpointError(f"checkpoint {path} was written by a run with other settings; "
                              f"remove it or run without --resume.")
    return state
