"""`probes segment` end to end on tiny data: the six (dataset x mode) runs, the CSV row, lean checkpoints."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from probes import load_encoder
from probes.segmentation.coco_stuff import prepare_coco_stuff
from probes.segmentation.runner import SegmentOptions, run_segmentation

from .conftest import TINY_OPTIONS


def tiny_run(encoder: Path, dataset: str, data: Path, mode: str, out: Path, iters: int = 2, **extra) -> dict:
    options = dict(TINY_OPTIONS)
    if mode == "linear":   # no UPerHead / auxiliary head to shrink
        options = {k: v for k, v in options.items() if "_head." not in k}
    options.update(extra.pop("cfg_options", {}))
    crop = extra.pop("crop_size", 56)
    extra.setdefault("allow_subset", True)   # the tiny datasets are partial by design
    return run_segmentation(SegmentOptions(
        encoder=str(encoder), dataset=dataset, data=data, mode=mode, iters=iters, batch_size=2, crop_size=crop,
        device="cpu", out=out, cfg_options=options, **extra))


@pytest.mark.parametrize("dataset", ["ade20k", "coco-stuff"])
@pytest.mark.parametrize("mode", ["linear", "head", "full"])
def test_six_runs_append_one_row_each(dataset: str, mode: str, tiny_encoder: Path, ade20k: Path,
                                      coco_stuff_raw: Path, tmp_path: Path) -> None:
    data = ade20k if dataset == "ade20k" else coco_stuff_raw
    if dataset == "coco-stuff":
        prepare_coco_stuff(coco_stuff_raw, workers=1)
    out = tmp_path / "out"
    before = dict(load_encoder(str(tiny_encoder)).named_parameters())
    row = tiny_run(tiny_encoder, dataset, data, mode, out)
    rows = list(csv.DictReader(open(out / "segmentation.csv")))
    assert len(rows) == 1
    saved = rows[0]
    assert saved["dataset"] == {"ade20k": "ADE20K", "coco-stuff": "COCO-Stuff"}[dataset]
    assert saved["mode"] == mode and saved["encoder"] == str(tiny_encoder)
    assert int(saved["n_images"]) == 2 and int(saved["iters"]) == 2 and int(saved["crop_size"]) == 56
    assert 0.0 <= float(saved["mIoU"]) <= 100.0 and 0.0 <= float(saved["aAcc"]) <= 100.0
    assert saved["protocol"] == "modified"
    notes = saved["protocol_notes"]
    assert "train_cfg.max_iters=2 (published: 80000)" in notes
    assert "model.test_cfg.crop_size=[56, 56] (published: [504, 504])" in notes
    assert "no recipe was released" in saved["protocol_notes"] and saved["encoder_version"] == "custom"
    assert int(saved["trainable_params"]) == row["trainable_params"] > 0
    for key in ("encoder", "encoder_version", "date", "protocol", "trainable_params"):
        assert saved[key], key
    assert saved["subset"] == "True"   # the tiny splits are partial (--allow-subset)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", saved["date"])   # classification's format
    # Checkpoints: frozen modes hold no encoder weights; full tuning holds (changed) encoder weights.
    ckpt = torch.load(next(out.glob("*/iter_2.pth")), map_location="cpu", weights_only=False)
    encoder_keys = [k for k in ckpt["state_dict"] if k.startswith("backbone.encoder.")]
    if mode == "full":
        assert len(encoder_keys) == len(before)
        assert any(not torch.equal(ckpt["state_dict"][f"backbone.encoder.{n}"], p) for n, p in before.items())
    else:
        assert encoder_keys == [] and ckpt["state_dict"]


def _constant_prediction_miou(counts) -> float:
    """mIoU of predicting one class everywhere (the best such class): what a model that learned nothing gets."""
    label = counts.label_area.sum(0).astype(float)
    present = label > 0
    return 100.0 * float((label / label.sum()).max()) / int(present.sum())


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["head", "full"])
def test_head_and_full_tuning_learn_the_tiny_scenes(mode: str, tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    from probes.sidefiles import read_segmentation_counts

    out = tmp_path / "out"
    row = tiny_run(tiny_encoder, "ade20k", ade20k, mode, out, iters=40,
                   cfg_options={"optim_wrapper.optimizer.lr": 3e-3, "model.decode_head.dropout_ratio": 0.0,
                                "model.auxiliary_head.dropout_ratio": 0.0})
    counts = read_segmentation_counts(out / row["predictions"])
    assert len(counts) == 2 and counts.class_names[0] == "wall"   # ADE20K's own class names
    iou = counts.intersect.sum(0) / np.maximum(counts.union.sum(0), 1)
    present = counts.union.sum(0) > 0
    # The side file reproduces the row, and the run beats a constant prediction by a margin.
    assert 100 * iou[present].mean() == pytest.approx(row["mIoU"], abs=0.01)
    assert row["mIoU"] > _constant_prediction_miou(counts) + 5
    assert row["best_mIoU"] >= row["mIoU"] and row["best_iter"] == 40


def test_rows_accumulate_in_one_csv(tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    tiny_run(tiny_encoder, "ade20k", ade20k, "linear", out, iters=1)
    tiny_run(tiny_encoder, "ade20k", ade20k, "linear", out, iters=1, cfg_options={"randomness.seed": 1})
    rows = list(csv.DictReader(open(out / "segmentation.csv")))
    assert len(rows) == 2 and not list(out.glob(".tmp_*"))
    assert "randomness.seed=1 (published: " in rows[1]["protocol_notes"]
    assert "randomness.seed" not in rows[0]["protocol_notes"] and rows[0]["run_id"] != rows[1]["run_id"]


def test_a_diverging_run_stops_at_the_first_non_finite_loss(tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    from probes.errors import TrainingDivergedError

    out = tmp_path / "out"
    # An absurd lr blows the head up after its first step; the next loss is not finite.
    with pytest.raises(TrainingDivergedError, match=r"loss is (nan|inf) at iteration \d+ .*try bf16 or fp32"):
        tiny_run(tiny_encoder, "ade20k", ade20k, "linear", out, iters=6,
                 cfg_options={"optim_wrapper.optimizer.lr": 1e30, "param_scheduler": []})
    assert not (out / "segmentation.csv").exists()   # no row for a diverged run
