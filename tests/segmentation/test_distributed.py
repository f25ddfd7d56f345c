"""Distributed equals single: 2 gloo processes with total batch B give a 1-process batch-B run's numbers.

Random augmentations (crop, flip, photometric distortion) and dropout / drop path are switched off by a
deterministic config; what must then add up is global-batch BatchNorm (SyncBN semantics), the sharded
sampler, averaged gradients and gathered metrics. The FSDP strategy is held to the same standard.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from probes.cli import main
from probes.config_files import config_dir
from probes.testing.launch import torchrun_probes

SMALL = ["model.decode_head.channels=16", "model.auxiliary_head.channels=8", "default_hooks.logger.interval=1"]


def _deterministic_config(tmp_path: Path, mode: str, extra: str = "", name: str = "deterministic") -> Path:
    heads = "decode_head=dict(dropout_ratio=0.0)" + ("" if mode == "linear" else ", auxiliary_head=dict(dropout_ratio=0.0)")
    backbone = ", backbone=dict(drop_path_rate=0.0)" if mode == "full" else ""
    path = tmp_path / f"{name}_{mode}.py"
    path.write_text(
        f"_base_ = [{str(config_dir('segmentation') / f'ade20k_{mode}.py')!r}]\n"
        "train_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),\n"
        "                  dict(type='Resize', scale=(56, 56), keep_ratio=False), dict(type='PackSegInputs')]\n"
        "train_dataloader = dict(dataset=dict(pipeline=train_pipeline))\n"
        f"model = dict({heads}{backbone})\n" + extra)
    return path


def _args(encoder: Path, data: Path, mode: str, config: Path, out: Path, iters: int, *extra: str) -> list[str]:
    options = SMALL if mode != "linear" else SMALL[2:]
    return ["segment", "--encoder", str(encoder), "--dataset", "ade20k", "--data", str(data), "--mode", mode,
            "--config", str(config), "--iters", str(iters), "--batch-size", "4", "--crop-size", "56",
            "--device", "cpu", "--workers", "0", "--out", str(out), "--allow-subset", *extra, "--cfg-options", *options]


def _row(out: Path) -> dict:
    rows = list(csv.DictReader(open(out / "segmentation.csv")))
    assert len(rows) == 1
    return rows[0]


def _losses(out: Path) -> list[float]:
    """Rank 0's logged loss per iteration (mmengine logs the main process's own loss)."""
    scalars = sorted(out.glob("*/*/vis_data/scalars.json"))[-1]
    return [json.loads(line)["loss"] for line in scalars.read_text().splitlines() if '"loss"' in line]


def _state(out: Path, iters: int) -> dict:
    path = next(out.glob(f"*/iter_{iters}.pth"))
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _assert_heads_close(a: dict, b: dict) -> None:
    heads = [k for k in a if k.startswith(("decode_head.", "auxiliary_head.", "neck.")) and a[k].is_floating_point()]
    assert heads and set(heads) <= set(b)
    for key in heads:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-5, msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["linear", "head"])
def test_two_processes_equal_one(mode: str, tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    config = _deterministic_config(tmp_path, mode)
    single, double = tmp_path / "single", tmp_path / "double"
    assert main(_args(tiny_encoder, ade20k, mode, config, single, 3)) == 0
    done = torchrun_probes([*_args(tiny_encoder, ade20k, mode, config, double, 3), "--launcher", "pytorch"],
                           cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = _row(single), _row(double)
    assert (two["mIoU"], two["aAcc"], two["n_images"]) == (one["mIoU"], one["aAcc"], one["n_images"])
    assert two["run_id"] == one["run_id"]   # the total batch, not the process count, defines the run
    _assert_heads_close(_state(single, 3), _state(double, 3))


@pytest.mark.slow
def test_fsdp_full_tuning_runs_resumes_and_matches_unsharded(tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    plain = _deterministic_config(tmp_path, "full")
    killed = _deterministic_config(
        tmp_path, "full", name="killed", extra="custom_imports = dict(imports=['probes.testing.interrupt'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='ProbeCheckpointHook'), dict(type='EvaluationHistoryHook'),\n"
        "                dict(type='NonFiniteLossHook'), dict(type='KillAfterIterHook', at=2)]\n")
    every_2 = ["default_hooks.checkpoint.interval=2"]
    unsharded, sharded, cut = tmp_path / "unsharded", tmp_path / "sharded", tmp_path / "cut"
    # The unsharded reference: the same 2-process run under DDP with the same (flexible) runner, which builds
    # and initialises the model at the same point; mmengine logs rank 0's own loss.
    ddp = torchrun_probes([*_args(tiny_encoder, ade20k, "full", plain, unsharded, 4, "--launcher", "pytorch",
                                  "--strategy", "ddp"), *every_2], cwd=tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    fsdp = ["--launcher", "pytorch", "--strategy", "fsdp"]
    done = torchrun_probes([*_args(tiny_encoder, ade20k, "full", plain, sharded, 4, *fsdp), *every_2], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    row = _row(sharded)
    assert row["mode"] == "full" and int(row["iters"]) == 4
    # Counted over both ranks' shards: the unsharded model's count (up to FSDP's padding).
    assert abs(int(row["trainable_params"]) - int(_row(unsharded)["trainable_params"])) <= 8
    assert _losses(sharded)[0] == pytest.approx(_losses(unsharded)[0], abs=1e-5)
    # Killed after iteration 2 (its checkpoint saved), then resumed: the uninterrupted sharded run's numbers.
    dead = torchrun_probes([*_args(tiny_encoder, ade20k, "full", killed, cut, 4, *fsdp), *every_2], cwd=tmp_path)
    assert dead.returncode != 0 and "simulated kill" in dead.stderr and not (cut / "segmentation.csv").exists()
    again = torchrun_probes([*_args(tiny_encoder, ade20k, "full", plain, cut, 4, *fsdp, "--resume"), *every_2],
                            cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = _row(cut)
    assert (resumed["mIoU"], resumed["aAcc"], resumed["iters"]) == (row["mIoU"], row["aAcc"], row["iters"])


@pytest.mark.slow
def test_fsdp_full_tuning_at_the_released_head_widths(tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    # UPerHead and the auxiliary head at their shipped 1,536 channels (no SMALL override): the heads stay in
    # FSDP's root unit, the encoder blocks are sharded, and validation's sliding windows keep ranks in step
    # (the test above holds FSDP's numbers to the unsharded run's at small widths).
    plain = _deterministic_config(tmp_path, "full")
    shipped = [a for a in _args(tiny_encoder, ade20k, "full", plain, tmp_path / "out", 1) if a not in SMALL]
    args = [*shipped[:shipped.index("--cfg-options")], "--launcher", "pytorch", "--strategy", "fsdp"]
    done = torchrun_probes(args, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads(next((tmp_path / "out").glob("*/plan.json")).read_text())["config"]
    assert config["model"]["decode_head"]["channels"] == 1536 and config["model"]["auxiliary_head"]["channels"] == 1536
    row = _row(tmp_path / "out")
    assert int(row["iters"]) == 1 and int(row["n_images"]) == 2 and float(row["mIoU"]) >= 0.0


@pytest.mark.slow
def test_released_full_tuning_partitioned_over_two_processes_resumes_bitwise(tiny_encoder: Path, ade20k: Path,
                                                                             tmp_path: Path) -> None:
    # precision=released under 2 gloo processes: gradients reduced by the DeepSpeed-order comm hook, masters
    # and AdamW state partitioned (the default), gathered to rank 0 at each checkpoint in the unpartitioned
    # layout. Resumed from the run's own iteration-1 checkpoint, the run ends on its iteration-2 weights.
    import shutil

    config = _deterministic_config(tmp_path, "full")
    args = ["--launcher", "pytorch", "--cfg-options", *SMALL, "precision=released",
            "default_hooks.checkpoint.interval=1"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    base = _args(tiny_encoder, ade20k, "full", config, whole, 2)[:-len(SMALL) - 1]
    done = torchrun_probes([*base, *args], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    run = next(p for p in whole.iterdir() if p.is_dir() and (p / "iter_1.pth").is_file())
    saved = torch.load(run / "iter_1.pth", map_location="cpu", weights_only=False)
    masters = [m for group in saved["optimizer"]["fp32_masters"] for m in group]
    trainable = [k for k, v in saved["state_dict"].items() if v.is_floating_point() and "running_" not in k
                 and "num_batches" not in k]
    assert len(masters) == len(saved["optimizer"]["state"]) and len(masters) >= len(trainable) - 2
    (cut / run.name).mkdir(parents=True)
    shutil.copy(run / "iter_1.pth", cut / run.name / "iter_1.pth")
    (cut / run.name / "last_checkpoint").write_text(str(cut / run.name / "iter_1.pth"))
    base_cut = [cut if a == str(whole) else a for a in base]
    again = torchrun_probes([*map(str, base_cut), "--resume", *args], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    a, b = _state(whole, 2), _state(cut, 2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert {a[k].dtype for k in a if k.startswith("backbone.") and a[k].is_floating_point()} == {torch.bfloat16}
    assert (_row(cut)["mIoU"], _row(cut)["aAcc"]) == (_row(whole)["mIoU"], _row(whole)["aAcc"])
