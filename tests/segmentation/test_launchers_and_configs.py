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


def test_fsdp_strategy_config_wraps_each_6b_block() -> None:
    import torch
    from mmengine.registry import FUNCTIONS

    from probes.encoders import InternViT

    from probes.segmentation.runner import SegmentOptions, plan_segmentation

    cfg = plan_segmentation(SegmentOptions(encoder="InternViT-6B-224px", dataset="ade20k", mode="full",
                                           strategy="fsdp"), check_data=False).cfg
    assert cfg.runner_type == "FlexibleRunner" and cfg.strategy.type == "ProbeFSDPStrategy"
    assert cfg.strategy.model_wrapper.use_orig_params and cfg.model.backbone.grad_checkpointing
    policy_cfg = dict(cfg.strategy.model_wrapper.auto_wrap_policy)
    policy = FUNCTIONS.get(policy_cfg.pop("type"))
    with torch.device("meta"):
        encoder = InternViT(VERSIONS["InternViT-6B-224px"], num_layers=2)
    block, norm = encoder.blocks[0], encoder.blocks[0].norm1
    numel = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert policy(block, recurse=False, nonwrapped_numel=numel(block), **policy_cfg)
    assert not policy(norm, recurse=False, nonwrapped_numel=numel(norm), **policy_cfg)


def test_an_unnamed_folder_with_a_published_architecture_gets_that_versions_config() -> None:
    from probes.encoders.versions import matching_version
    from probes.segmentation.runner import default_config
    from probes.testing.checkpoints import tiny_config

    assert matching_version(VERSIONS["InternViT-6B-224px"].replace(drop_path_rate=0.1)) == "InternViT-6B-224px"
    assert matching_version(tiny_config("6b")) is None
    assert default_config("ade20k", "linear", "InternViT-6B-224px") == CONFIGS / "InternViT-6B-224px" / "ade20k_linear.py"
    assert default_config("coco-stuff", "head", None) == CONFIGS / "coco-stuff_head.py"
