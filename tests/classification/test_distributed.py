"""The same command under torchrun (2 CPU processes, gloo): data sharded, counts summed, one writer."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from probes.results import read_rows
from probes.testing.launch import torchrun_probes


def _torchrun(args, tmp_path: Path) -> subprocess.CompletedProcess:
    return torchrun_probes(["classify", *args], cwd=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("cached", [False, True], ids=["live", "cached"])
def test_torchrun_two_processes_score_every_image_once(tiny_encoder, data_root, tmp_path, cached):
    out = tmp_path / "out"
    args = ["--encoder", str(tiny_encoder), "--data", str(data_root), "--config", "tiny_demo",
            "--out", str(out), "--cfg-options", "train.batch_size=4", "cache.batch_size=4", "probe.lrs=[0.5]"]
    if cached:
        args += ["--cache", str(tmp_path / "cache")]
    done = _torchrun(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_rows(out / "classification_results.csv")
    probes = {"linear", "attention_pooling"} | ({"knn", "logreg"} if cached else set())
    # 2 probes x (the published head, raw + the grid at 0.5 and 0.1 x raw, EMA) + baselines
    heads = 2 * (1 + 2 * 2) + (2 if cached else 0)
    assert len(rows) == heads * 6  # written once, by rank 0
    assert {r["probe"] for r in rows} == probes
    n = {r["test_set"]: int(r["n_images"]) for r in rows}
    # 4 images per set split over 2 ranks, summed back: no image dropped or scored twice.
    assert n == {"IN-1K": 4, "IN-ReaL": 3, "IN-V2": 4, "IN-A": 4, "IN-R": 4, "IN-Sketch": 4}


@pytest.mark.slow
def test_two_processes_equal_one_with_random_augmentation_off(tiny_encoder, data_root, tmp_path):
    """Global-batch BN, sharded sampling, averaged gradients and summed counts add up to a 1-process run."""
    import torch

    from probes.cli import main

    # No Mixup/CutMix, no random crop (scale 1, ratio 1: the centre square), no flip. 19 train images (4 of
    # them held out from the grid heads' loss), total batch 6: 3 steps per epoch in one process and in two.
    deterministic = ["train.mixup=0.0", "train.cutmix=0.0", "train.scale=(1.0,1.0)", "train.ratio=(1.0,1.0)",
                     "train.hflip=0.0", "train.batch_size=6", "probe.lrs=[0.5]"]

    def args(out):
        return ["--encoder", str(tiny_encoder), "--data", str(data_root), "--config", "tiny_demo",
                "--out", str(out), "--cfg-options", *deterministic]

    single, double = tmp_path / "single", tmp_path / "double"
    assert main(["classify", *args(single)]) == 0
    done = _torchrun(args(double), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (read_rows(o / "classification_results.csv") for o in (single, double))
    keep = ("run_id", "probe", "lr", "ema", "test_set", "n_images", "top1", "heldout_top1", "selected",
            "max_over_epochs_top1")
    assert [{k: r[k] for k in keep} for r in two] == [{k: r[k] for k in keep} for r in one]
    state = lambda out: torch.load(out / "checkpoints" / f"{one[0]['run_id']}.pth", weights_only=False)["trainer"]  # noqa: E731
    a, b = state(single), state(double)
    for part in ("bank", "ema"):
        for key, value in a[part].items():
            if value.is_floating_point():
                torch.testing.assert_close(b[part][key], value, rtol=0, atol=1e-5, msg=f"{part} {key}")
