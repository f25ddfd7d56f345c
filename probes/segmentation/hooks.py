"""Runner hook: lean checkpoints in frozen modes, and bit-identical resume."""
from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from probes.errors import ConfigError

_RNG_KEY = "probes_rng"
_ITERS_KEY = "probes_max_iters"


def _frozen_prefixes(runner) -> tuple[str, ...]:
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    backbone = getattr(model, "backbone", None)
    rel = backbone.frozen_state_prefixes() if hasattr(backbone, "frozen_state_prefixes") else ()
    return tuple(f"backbone.{p}" for p in rel)


@HOOKS.register_module()
class ProbeCheckpointHook(Hook):
    """Drops the frozen encoder from checkpoints and restores it (and the RNG) on load.

    - Frozen modes: the encoder comes from its own source at every start, so saving it again (6B = 24 GB)
      is waste; `after_load_checkpoint` puts the live weights back so mmengine sees no missing keys.
    - Resume: mmengine replays the data iterator but not the model's random draws (dropout, drop path);
      saving torch's RNG makes a resumed run reach the numbers of an uninterrupted one.
    - The LR schedule's end is stored in the checkpoint (dependencies.md #5): a resume with a different
      iteration count is refused instead of silently keeping the old schedule.
    """

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Trim frozen weights; record the RNG state and planned iterations."""
        prefixes = _frozen_prefixes(runner)
        if prefixes:
            state = checkpoint["state_dict"]
            for key in [k for k in state if k.startswith(prefixes)]:
                del state[key]
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["meta"][_RNG_KEY] = rng
        checkpoint["meta"][_ITERS_KEY] = runner.max_iters

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refill frozen weights from the live model; restore torch's RNG; check the iteration count."""
        prefixes = _frozen_prefixes(runner)
        if prefixes:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            state = checkpoint["state_dict"]
            for key, value in model.state_dict().items():
                if key.startswith(prefixes):
                    state.setdefault(key, value)
        meta = checkpoint.get("meta", {})
        planned = meta.get(_ITERS_KEY)
        if planned is not None and planned != runner.max_iters:
            raise ConfigError(
                f"--resume: the checkpoint in {runner.work_dir} was planned for {planned} iterations but "
                f"the config now says {runner.max_iters}; use --iters {planned} or a new --out folder")
        rng = meta.get(_RNG_KEY)
        if rng is not None:
            # Only torch's: numpy/python draws come from the data pipeline, which mmengine replays.
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
