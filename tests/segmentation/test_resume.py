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

from probes.testing.interrupt import SimulatedKill  # noqa: E402

EVERY_2 = {"default_hooks.checkpoint.interval": 2, "default_hooks.checkpoint.max_keep_ckpts": 5}
KILL_AT_2 = {"custom_hooks": [dict(type="KillAfterIterHook", at=2)]}   # added after the suite's own hooks


def _final_state(out: Path) -> dict:
    return torch.load(next(out.glob("*/iter_4.pth")), map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("mode, precision", [("head", None), ("full", "released")])
def test_resume_equals_uninterrupted(mode: str, precision: str, tiny_encoder: Path, ade20k: Path,
                                     tmp_path: Path) -> None:
    # Full tuning in the released arrangement (the GPU default, asked for on CPU): bf16 weights whose fp32
    # masters live in the optimizer wrapper's state must come back from the checkpoint exactly.
    options = {**EVERY_2, "precision": precision}
    whole = tiny_run(tiny_encoder, "ade20k", ade20k, mode, tmp_path / "whole", iters=4, cfg_options=options)
    cut = tmp_path / "cut"
    with pytest.raises(SimulatedKill):
        tiny_run(tiny_encoder, "ade20k", ade20k, mode, cut, iters=4, cfg_options={**options, **KILL_AT_2})
    assert not (cut / "segmentation.csv").exists()   # a killed run writes no row
    # Hooks do not change a run's identity: the resumed run finds the killed run's checkpoint.
    resumed = tiny_run(tiny_encoder, "ade20k", ade20k, mode, cut, iters=4, cfg_options=options, resume=True)
    assert resumed["iters"] == 4 and resumed["run_id"] == whole["run_id"]
    assert (resumed["mIoU"], resumed["aAcc"]) == (whole["mIoU"], whole["aAcc"])
    a, b = _final_state(tmp_path / "whole"), _final_state(cut)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    rows = list(csv.DictReader(open(cut / "segmentation.csv")))
    assert [int(r["iters"]) for r in rows] == [4]
    if precision == "released":
        assert resumed["precision"] == "bf16"
        assert {a[k].dtype for k in a if k.startswith(("backbone.", "neck."))} == {torch.bfloat16}
        heads = {k: v for k, v in a.items()
                 if k.startswith(("decode_head.", "auxiliary_head.")) and v.is_floating_point()}
        assert {h.dtype for h in heads.values()} == {torch.float32}
        weights = [h for k, h in heads.items() if "running_" not in k]   # BN statistics are buffers, kept fp32
        assert weights and all(torch.equal(h, h.to(torch.bfloat16).float()) for h in weights)
        saved = torch.load(next((tmp_path / "whole").glob("*/iter_4.pth")), map_location="cpu", weights_only=False)
        masters = [m for group in saved["optimizer"]["fp32_masters"] for m in group]
        assert masters and {m.dtype for m in masters} == {torch.float32}


def test_another_iteration_count_is_another_run(tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    two = tiny_run(tiny_encoder, "ade20k", ade20k, "linear", tmp_path, iters=2)
    three = tiny_run(tiny_encoder, "ade20k", ade20k, "linear", tmp_path, iters=3, resume=True)
    assert two["run_id"] != three["run_id"] and three["iters"] == 3
    assert (tmp_path / two["run_id"]).is_dir() and (tmp_path / three["run_id"]).is_dir()


def test_a_finished_run_is_refused_resumed_or_overwritten(tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    first = tiny_run(tiny_encoder, "ade20k", ade20k, "linear", tmp_path, iters=1)
    with pytest.raises(ConfigError, match=f"run {first['run_id']} is already finished.*--overwrite"):
        tiny_run(tiny_encoder, "ade20k", ade20k, "linear", tmp_path, iters=1)
    assert tiny_run(tiny_encoder, "ade20k", ade20k, "linear", tmp_path, iters=1, resume=True) == {}
    again = tiny_run(tiny_encoder, "ade20k", ade20k, "linear", tmp_path, iters=1, overwrite=True)
    rows = list(csv.DictReader(open(tmp_path / "segmentation.csv")))
    assert len(rows) == 1 and rows[0]["date"] == again["date"] and again["run_id"] == first["run_id"]


def test_resume_without_checkpoint_starts_fresh(tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    row = tiny_run(tiny_encoder, "ade20k", ade20k, "linear", tmp_path, iters=1, resume=True)
    assert row["iters"] == 1
