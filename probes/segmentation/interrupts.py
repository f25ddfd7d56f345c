"""`probes segment` on Ctrl-C or SIGTERM: checkpoint the last finished iteration atomically, then leave.

- Inside a training iteration the first signal is deferred to its end (`after_train_iter`), where the
  iteration is saved, unless the checkpoint hook just saved it. Several processes agree on it there (one
  tiny all-reduce per iteration), so every rank stops after the same iteration.
- During a validation of a single-process run the signal stops at once: the training state is that of the
  last iteration, which is saved with the random state from before the validation began; the resumed run
  validates it first (EvaluationHistoryHook), as the uninterrupted run did.
- Every checkpoint is written under a temporary name and renamed (`atomic_saves`): a second signal during
  a save leaves the previous checkpoint, which `last_checkpoint` still names.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from probes.interrupts import Interrupt, SignalGuard
from probes.io import write_text_atomic

CHECKPOINT_NAME = "iter_{}.pth"   # mmengine's CheckpointHook name for iteration-based runs


def atomic_saves(runner_class: type) -> type:
    """`runner_class` whose checkpoints are written to a temporary file and renamed over the final name."""

    class AtomicSaveRunner(runner_class):  # type: ignore[misc, valid-type]
        def save_checkpoint(self, out_dir: str, filename: str, *args: Any, **kwargs: Any) -> None:
            """mmengine's save, atomic: a reader (or a resume) never sees a half-written checkpoint."""
            # Every rank passes here (mmengine's save itself runs on the main process only): a partitioned
            # optimizer state (ZeRO-1, master_weights.py) is gathered to the main process now, as one collective.
            save_optimizer = args[1] if len(args) > 1 else kwargs.get("save_optimizer", True)
            gather = getattr(getattr(self, "optim_wrapper", None), "gather_state", None)
            if save_optimizer and callable(gather):
                gather()
            partial = os.path.join(out_dir, f".{filename}.partial")
            # Only the main process writes the file, so only it renames or removes it: other ranks on the same
            # machine see the file too, and a second rename of it fails (seen on 2 CPU processes).
            main = is_main_process()
            try:
                super().save_checkpoint(out_dir, os.path.basename(partial), *args, **kwargs)
                if main and os.path.isfile(partial):
                    with open(partial, "rb") as handle:
                        os.fsync(handle.fileno())
                    os.replace(partial, os.path.join(out_dir, filename))
            finally:
                if main and os.path.isfile(partial):
                    os.unlink(partial)

    AtomicSaveRunner.__name__ = AtomicSaveRunner.__qualname__ = f"AtomicSave{runner_class.__name__}"
    return AtomicSaveRunner


def checkpoint_iteration(path: Path) -> Optional[int]:
    """The iteration in a checkpoint's file name (`iter_12.pth` -> 12), None for another name."""
    found = re.fullmatch(r"iter_(\d+)\.pth", Path(path).name)
    return int(found.group(1)) if found else None


def last_checkpoint(work_dir: Path) -> Optional[Path]:
    """The checkpoint `last_checkpoint` names, or the newest `iter_N.pth` when that marker is absent or torn."""
    marker = Path(work_dir) / "last_checkpoint"
    named = Path(marker.read_text().strip()) if marker.is_file() and marker.read_text().strip() else None
    if named is not None and named.is_file():
        return named
    found = sorted((p for p in Path(work_dir).glob("iter_*.pth") if checkpoint_iteration(p) is not None),
                   key=checkpoint_iteration)
    return found[-1] if found else None


class InterruptHook(Hook):
    """Decides where a signal stops a run and saves the iteration it stops after (see the module text)."""

    priority = "LOWEST"        # after the checkpoint hook: an iteration it saved is not saved twice
    shapes_numbers = False     # a run's identity and protocol words leave it out (identity.shaping_hooks)

    def __init__(self, guard: SignalGuard, world_size: int, stop_in_validation: bool) -> None:
        self.guard = guard
        self.world_size = world_size
        self.stop_in_validation = stop_in_validation
        self.saved: Optional[Path] = None
        self.in_validation = False
        self._rng_before_validation: Optional[dict] = None

    def before_train(self, runner) -> None:
        """From here on the model changes: a signal waits for the end of the iteration."""
        self.guard.deferring = True

    def before_val(self, runner) -> None:
        """A validation changes no weight: a single process may stop in it at once."""
        from probes.segmentation.hooks import rng_state

        self.in_validation = True
        self._rng_before_validation = rng_state()
        if self.stop_in_validation:
            self.guard.deferring = False

    def after_val(self, runner) -> None:
        """Back to training (or to the end of the run): defer signals again."""
        self.in_validation = False
        self.guard.deferring = True

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """On a pending signal (any rank's), save this iteration and stop."""
        pending = self.guard.pending or 0
        if self.world_size > 1:
            import torch
            from mmengine.dist import all_reduce

            flag = torch.tensor([pending], dtype=torch.int64)
            all_reduce(flag, op="max")
            pending = int(flag.item())
        if pending:
            self.saved = self.save(runner, runner.iter + 1)
            raise Interrupt(pending)

    def save(self, runner, iteration: int, rng: Optional[dict] = None) -> Path:
        """Checkpoint `iteration` (unless the checkpoint hook did) and point `last_checkpoint` at it."""
        path = Path(runner.work_dir) / CHECKPOINT_NAME.format(iteration)
        last = runner.message_hub.get_info("last_ckpt")
        if last and Path(last).resolve() == path.resolve() and path.is_file():
            return path
        meta = {"iter": iteration, "epoch": runner.epoch}
        if rng is not None:
            from probes.segmentation.hooks import RNG_KEY

            meta[RNG_KEY] = rng
        runner.save_checkpoint(runner.work_dir, path.name, meta=meta, by_epoch=False)
        if is_main_process():
            write_text_atomic(Path(runner.work_dir) / "last_checkpoint", str(path))
        return path

    def kept(self, runner, exc: BaseException) -> Optional[Path]:
        """The checkpoint a stopped run leaves: this iteration's if it stopped in a validation, else the last."""
        if self.saved is not None:
            return self.saved
        first_signal = isinstance(exc, Interrupt) and self.guard.pending is None
        if first_signal and self.in_validation and self.stop_in_validation and runner.iter > 0:
            self.guard.pending = exc.signum   # a further signal now stops the save (atomically) at once
            try:
                self.saved = self.save(runner, runner.iter, rng=self._rng_before_validation)
            except (Interrupt, KeyboardInterrupt):
                pass
            if self.saved is not None:
                return self.saved
        return last_checkpoint(Path(runner.work_dir))
