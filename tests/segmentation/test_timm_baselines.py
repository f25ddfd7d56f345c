"""timm baselines in segmentation: their own patch size and their own normalisation, everywhere."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from probes.cli import main

from .test_runs import tiny_run


def _resolved(capsys, encoder: str, mode: str = "head") -> dict:
    assert main(["segment", "--encoder", encoder, "--dataset", "ade20k", "--mode", mode, "--device", "cpu",
                 "--print-config", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    return {**plan["config"], "protocol": {k: plan[k] for k in ("protocol", "protocol_notes")}}


def _transform(cfg: dict, loader: str, kind: str) -> dict:
    return next(t for t in cfg[loader]["dataset"]["pipeline"] if t["type"] == kind)


def test_siglip_normalises_with_its_own_mean_and_std(capsys) -> None:
    cfg = _resolved(capsys, "timm:vit_base_patch16_siglip_224")
    assert cfg["model"]["data_preprocessor"]["mean"] == [127.5] * 3   # 0.5 x 255, not ImageNet's
    assert cfg["model"]["data_preprocessor"]["std"] == [127.5] * 3
    internvit = _resolved(capsys, "InternViT-6B-448px-V1-5")
    assert internvit["model"]["data_preprocessor"]["mean"] == [123.675, 116.28, 103.53]


def test_a_patch_16_encoder_gets_the_recipe_crop_at_its_patch_size(capsys) -> None:
    cfg = _resolved(capsys, "timm:vit_tiny_patch16_224")
    assert cfg["crop_size"] == [512, 512] and cfg["model"]["test_cfg"]["crop_size"] == [512, 512]
    assert cfg["model"]["data_preprocessor"]["size"] == [512, 512]
    assert _transform(cfg, "train_dataloader", "RandomCrop")["crop_size"] == [512, 512]
    assert _transform(cfg, "test_dataloader", "ResizeShortestEdge")["scale"] == 512
    assert _transform(cfg, "test_dataloader", "ResizeToMultiple")["size_divisor"] == 16
    assert cfg["model"]["backbone"]["input_size"] == 512
    assert cfg["protocol"]["protocol"] == "random-weights"   # untagged: seeded random weights, never published
    assert "crop 512: the recipe's 504 at the nearest multiple of patch 16" in cfg["protocol"]["protocol_notes"]


def test_a_crop_not_a_multiple_of_16_names_the_patch(capsys, ade20k: Path, tmp_path: Path) -> None:
    code = main(["segment", "--encoder", "timm:vit_tiny_patch16_224", "--dataset", "ade20k", "--data", str(ade20k),
                 "--mode", "linear", "--crop-size", "56", "--device", "cpu", "--out", str(tmp_path), "--allow-subset"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("probes ")]
    assert code == 2 and err == ["probes segment: error: --crop-size 56 is not a positive multiple of the "
                                 "encoder's patch size 16 (e.g. 64)"]


def test_a_patch_16_timm_model_trains_and_scores(ade20k: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    row = tiny_run("timm:vit_tiny_patch16_224", "ade20k", ade20k, "head", out, iters=1, crop_size=64)
    rows = list(csv.DictReader(open(out / "segmentation.csv")))
    assert len(rows) == 1 and rows[0]["encoder_version"] == "timm:vit_tiny_patch16_224"
    assert row["crop_size"] == 64 and row["n_images"] == 2
