"""Hooks that stand for a killed or signalled job, for resume tests (import it through a config's `custom_imports`)."""
from __future__ import annotations

import os

from mmengine.hooks import Hook
from mmseg.registry import HOOKS


class SimulatedKill(Exception):
    """Raised where a real job would have been killed."""


@HOOKS.register_module(force=True)
class KillAfterIterHook(Hook):
    """Raises SimulatedKill right after iteration `at` (after the checkpoint hook saved it)."""

    priority = "LOWEST"
    shapes_numbers = False   # a killed run and its resumed rerun are one run

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Stop the process the hard way once `at` iterations are done."""
        if runner.iter + 1 >= self.at:   # runner.iter counts the iterations completed before this one
            raise SimulatedKill(f"simulated kill after iteration {self.at}")


@HOOKS.register_module(force=True)
class SignalHook(Hook):
    """Sends this process `signum` during iteration `at` ("step") or during the validation after it ("validation").

    Stands for a Ctrl-C (SIGINT) or a scheduler's SIGTERM arriving at that point of a run.
    """

    priority = "LOWEST"
    shapes_numbers = False   # an interrupted run and its resumed rerun are one run

    def __init__(self, at: int, signum: int = 2, where: str = "step") -> None:
        if where not in ("step", "validation"):
            raise ValueError(f"where={where!r} is not 'step' or 'validation'")
        self.at, self.signum, self.where = at, signum, where

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Signal inside the training iteration `at` (its weights are not updated yet)."""
        if self.where == "step" and runner.iter + 1 == self.at:
            os.kill(os.getpid(), self.signum)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Signal after the first batch of the validation that follows iteration `at`."""
        if self.where == "validation" and runner.iter == self.at and batch_idx == 0:
            os.kill(os.getpid(), self.signum)
