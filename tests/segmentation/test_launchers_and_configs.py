"""Multi-process launch (torchrun on CPU), the shipped configs, and the FSDP strategy config."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from probes.config_files import config_dir
from probes.encoders.versions import VERSIONS
from probes.testing.launch import torchrun_probes
from probes.results import MODES

CONFIGS = config_dir("segmentation")


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["segment",
           "--encoder", str(tiny_encoder), "--dataset", "ade20k", "--data", str(ade20k), "--mode", "head",
           "--iters", "2", "--batch-size", "4", "--crop-size", "56", "--device", "cpu", "--workers", "0",
           "--out", str(out), "--launcher", "pytorch", "--allow-subset",
           "--cfg-options", "model.decode_head.channels=16", "model.auxiliary_head.channels=8"]
    done = torchrun_probes(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "segmentation.csv")))
    assert len(rows) == 1   # rank 0 writes the row
    assert rows[0]["n_images"] == "2" and rows[0]["batch_size"] == "4"   # metric gathered over both ranks


def test_every_version_has_six_configs() -> None:
    for version in VERSIONS:
        names = {p.name for p in (CONFIGS / version).glob("*.py")}
        for dataset in ("ade20k", "coco-stuff"):
            assert {f"{dataset}_{m}.py" for m in MODES} <= names, version


def test_fsdp_strategy_wraps_each_encoder_block_and_no_head() -> None:
    import torch
    from mmengine.registry import FUNCTIONS

    from probes.segmentation.mm_compat import import_mmseg
    from probes.segmentation.runner import SegmentOptions, plan_segmentation

    import_mmseg()
    cfg = plan_segmentation(SegmentOptions(encoder="InternViT-6B-224px", dataset="ade20k", mode="full",
                                           strategy="fsdp"), check_data=False).cfg
    assert cfg.runner_type == "FlexibleRunner" and cfg.strategy.type == "ProbeFSDPStrategy"
    assert cfg.strategy.model_wrapper.use_orig_params and cfg.model.backbone.grad_checkpointing
    policy_cfg = dict(cfg.strategy.model_wrapper.auto_wrap_policy)
    policy = FUNCTIONS.get(policy_cfg.pop("type"))
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope("mmseg")
    model_cfg = cfg.model.copy()
    model_cfg.backbone.update(source="random:InternViT-6B-224px", num_layers=3, out_indices=[0, 1, 2, 2])
    with torch.device("meta"):
        model = MODELS.build(model_cfg)
    wrapped = {name for name, module in model.named_modules()
               if policy(module, recurse=False, nonwrapped_numel=1, **policy_cfg)}
    # Every block of the encoder is a unit; the heads and neck stay in the root unit, because mmseg calls
    # the heads' `loss`/`predict` rather than their forward (an FSDP unit would not be unsharded).
    assert wrapped == {f"backbone.encoder.encoder.layers.{i}" for i in range(3)}   # InternViT's blocks
