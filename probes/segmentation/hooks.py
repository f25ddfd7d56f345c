"""Runner hook: lean checkpoints in frozen modes, and bit-identical resume."""
from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from probes.errors import TrainingDivergedError

RNG_KEY = "probes_rng"


def rng_state() -> dict:
    """Every random state a run draws from (torch, numpy, python; CUDA when in use)."""
    rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _frozen_prefixes(runner) -> tuple[str, ...]:
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    backbone = getattr(model, "backbone", None)
    rel = backbone.frozen_state_prefixes() if hasattr(backbone, "frozen_state_prefixes") else ()
    return tuple(f"backbone.{p}" for p in rel)


class ProbeCheckpointHook(Hook):
    """Drops the frozen encoder from checkpoints and restores it (and the RNG) on load.

    - Frozen modes: the encoder comes from its own source at every start, so saving it again (6B = 24 GB)
      is waste; `after_load_checkpoint` puts the live weights back so mmengine sees no missing keys.
    - Resume: mmengine replays the data iterator but not the model's random draws (dropout, drop path);
      saving torch's RNG makes a resumed run reach the numbers of an uninterrupted one.
    """

    priority = "VERY_LOW"
    shapes_numbers = False   # a run's identity and protocol words leave it out (identity.shaping_hooks)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Trim frozen weights; record the RNG state (unless the saver gave the one to keep)."""
        prefixes = _frozen_prefixes(runner)
        if prefixes:
            state = checkpoint["state_dict"]
            for key in [k for k in state if k.startswith(prefixes)]:
                del state[key]
        # An interrupted validation saves the state from before it began (probes/segmentation/interrupts.py).
        checkpoint["meta"].setdefault(RNG_KEY, rng_state())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refill frozen weights from the live model; restore torch's RNG."""
        prefixes = _frozen_prefixes(runner)
        if prefixes:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            state = checkpoint["state_dict"]
            for key, value in model.state_dict().items():
                if key.startswith(prefixes):
                    state.setdefault(key, value)
        rng = checkpoint.get("meta", {}).get(RNG_KEY)
        if rng is not None:
            # Only torch's: numpy/python draws come from the data pipeline, which mmengine replays.
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])


HISTORY_KEY = "probes_val_history"


class EvaluationHistoryHook(Hook):
    """Keeps every validation's (iteration, mIoU, aAcc, mAcc) in the message hub, so checkpoints carry it.

    The released runs evaluate every 1,000 iterations and keep the best checkpoint; the result row
    reports the final evaluation and, beside it, the best one and its iteration.
    """

    priority = "LOW"
    shapes_numbers = False   # a run's identity and protocol words leave it out (identity.shaping_hooks)

    def before_train_epoch(self, runner) -> None:
        """A run resumed at a validation point whose validation is missing validates first.

        Checkpoints are saved before the validation of their iteration (mmengine's order), and an interrupted
        validation saves its iteration too: without this the history, hence `best_mIoU`, would lack that
        evaluation. The random state saved is the one before the validation, so the numbers stay those of an
        uninterrupted run. (Not in `before_train`: the checkpoint hook, which saves the best, is set up there.)
        """
        loop, done = runner.train_loop, runner.iter
        if done == 0 or done >= loop.max_iters or runner.val_loop is None or done < loop.val_begin:
            return
        if done % loop.val_interval == 0 and all(h["iter"] != done for h in evaluation_history(runner)):
            runner.val_loop.run()

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        """Append this evaluation to the history."""
        if not metrics or "mIoU" not in metrics:
            return
        history = list(runner.message_hub.get_info(HISTORY_KEY, []))
        history = [h for h in history if h["iter"] != runner.iter]  # a resumed run may evaluate again
        history.append({"iter": int(runner.iter), **{k: float(metrics[k]) for k in ("mIoU", "aAcc", "mAcc")
                                                     if k in metrics}})
        runner.message_hub.update_info(HISTORY_KEY, history)


def evaluation_history(runner) -> list[dict]:
    """Every recorded validation of this run, oldest first."""
    return sorted(runner.message_hub.get_info(HISTORY_KEY, []), key=lambda h: h["iter"])


class NonFiniteLossHook(Hook):
    """Stops training at the first non-finite loss, naming the step, the loss term and the likely cause."""

    priority = "VERY_HIGH"
    shapes_numbers = False   # a run's identity and protocol words leave it out (identity.shaping_hooks)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Raise TrainingDivergedError when any logged loss term is NaN or infinite."""
        for name, value in (outputs or {}).items():
            scalar = float(value.detach().float().mean()) if torch.is_tensor(value) else float(value)
            if "loss" in name and not np.isfinite(scalar):
                raise TrainingDivergedError(
                    f"{name} is {scalar} at iteration {runner.iter + 1} of {runner.work_dir}: training "
                    "diverged (likely an fp16 overflow or a bad checkpoint; try bf16 or fp32, or a lower lr); "
                    "no result row was written")
