"""--resume on torch 2.14: continues from the last checkpoint and reaches the uninterrupted run's numbers."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from probes.errors import ConfigError
from probes.segmentation.mm_compat import import_mmseg

from .test_runs import tiny_run

import_mmseg()

from mmengine.hooks import Hook  # noqa: E402
from mmseg.registry import HOOKS  # noqa: E402


@HOOKS.register_module(force=True)
class _StopAfterIter(Hook):
    """Simulates an interruption: ends training after `at` iterations (a checkpoint was just saved)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 >= self.at:   # runner.iter counts completed iterations before this one
            runner.train_loop.stop_training = True


EVERY_2 = {"default_hooks.checkpoint.interval": 2, "default_hooks.checkpoint.max_keep_ckpts": 5}
STOP_AT_2 = {"custom_hooks": [dict(type="ProbeCheckpointHook"), dict(type="_StopAfterIter", at=2)]}


def _final_state(out: Path) -> dict:
    return torch.load(next(out.glob("*/iter_4.pth")), map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["head", "full"])
def test_resume_equals_uninterrupted(mode: str, tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    whole = tiny_run(tiny_encoder, "ade20k", ade20k, mode, tmp_path / "whole", iters=4, cfg_options=EVERY_2)
    cut = tmp_path / "cut"
    first = tiny_run(tiny_encoder, "ade20k", ade20k, mode, cut, iters=4, cfg_options={**EVERY_2, **STOP_AT_2})
    assert first["iters"] == 2   # the row says how far the interrupted run got
    resumed = tiny_run(tiny_encoder, "ade20k", ade20k, mode, cut, iters=4, cfg_options=EVERY_2, resume=True)
    assert resumed["iters"] == 4
    assert (resumed["mIoU"], resumed["aAcc"]) == (whole["mIoU"], whole["aAcc"])
    a, b = _final_state(tmp_path / "whole"), _final_state(cut)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    rows = list(csv.DictReader(open(cut / "segmentation.csv")))
    assert [int(r["iters"]) for r in rows] == [2, 4]


def test_resume_with_a_different_iteration_count_is_refused(tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    tiny_run(tiny_encoder, "ade20k", ade20k, "linear", tmp_path, iters=2)
    with pytest.raises(ConfigError, match="planned for 2 iterations"):
        tiny_run(tiny_encoder, "ade20k", ade20k, "linear", tmp_path, iters=3, resume=True)


def test_resume_without_checkpoint_starts_fresh(tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    row = tiny_run(tiny_encoder, "ade20k", ade20k, "linear", tmp_path, iters=1, resume=True)
    assert row["iters"] == 1
