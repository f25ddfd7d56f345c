"""A hook that stands for a killed job, for resume tests (import it through a config's `custom_imports`)."""
from __future__ import annotations

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
