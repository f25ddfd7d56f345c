"""Multi-process launch (torchrun on CPU), the shipped configs, and the FSDP strategy config."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from mmengine.config import Config

from probes.encoders.versions import VERSIONS
from probes.testing.launch import torchrun_probes
from probes.segmentation import settings
from probes.encoders import EncoderInfo

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "segmentation"
VERSION_CONFIGS = sorted(p for p in CONFIGS.glob("InternViT-*/*.py"))


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["segment",
           "--encoder", str(tiny_encoder), "--dataset", "ade20k", "--data", str(ade20k), "--mode", "head",
           "--iters", "2", "--batch-size", "4", "--crop-size", "56", "--device", "cpu", "--workers", "0",
           "--out", str(out), "--launcher", "pytorch",
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
            assert {f"{dataset}_{m}.py" for m in settings.MODES} <= names, version


@pytest.mark.parametrize("path", VERSION_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_version_config_is_consistent(path: Path) -> None:
    cfg = Config.fromfile(str(path))
    version, (dataset, mode) = path.parent.name, path.stem.split("_")[:2]
    arch = VERSIONS[version]
    settings.check_mode(cfg, mode, path)
    settings.fill_encoder_shape(cfg, mode, EncoderInfo(arch.hidden_size, arch.num_hidden_layers, version))
    model = cfg.model
    depth = model.backbone.num_layers
    assert depth <= arch.num_hidden_layers and all(0 <= i < depth for i in model.backbone.out_indices)
    assert len(model.backbone.out_indices) == (1 if mode == "linear" else 4)
    assert model.backbone.out_indices[-1] == (44 if version == "InternViT-6B-224px" and mode == "linear" else depth - 1)
    classes = 150 if dataset == "ade20k" else 171
    assert model.decode_head.num_classes == classes
    assert cfg.train_dataloader.batch_size == 16 and cfg.train_cfg.max_iters == 80000
    assert cfg.optim_wrapper.optimizer.lr == 4e-5
    assert cfg.optim_wrapper.optimizer.weight_decay == (0.0 if mode == "linear" else 0.05)
    assert model.test_cfg.crop_size == (504, 504) and model.test_cfg.stride == (322, 322)
    text = path.read_text()
    released = version == "InternViT-6B-224px" and dataset == "ade20k"
    if not path.stem.endswith("_fsdp"):   # the FSDP variants inherit the comment with the recipe
        assert ("OUR CHOICE" in text) != released
    if mode != "linear":
        head = model.decode_head
        assert head.type == "UPerHead" and head.channels == 1536 and tuple(head.pool_scales) == (1, 2, 3, 6)
        assert head.dropout_ratio == 0.1 and model.auxiliary_head.loss_decode.loss_weight == 0.4
    if mode == "full":
        assert model.backbone.drop_path_rate == 0.4 and cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.95
        assert cfg.optim_wrapper.paramwise_cfg.num_layers == depth


def test_released_recipe_values() -> None:
    cfg = Config.fromfile(str(CONFIGS / "InternViT-6B-224px" / "ade20k_head.py"))
    assert cfg.model.backbone.out_indices == [11, 23, 35, 47]
    warm, poly = cfg.param_scheduler
    assert (warm.type, warm.start_factor, warm.end) == ("LinearLR", 1e-6, 1500)
    assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end) == ("PolyLR", 1.0, 0.0, 1500, 80000)
    assert tuple(cfg.optim_wrapper.optimizer.betas) == (0.9, 0.999)
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t["type"] == "RandomCrop"][0]
    assert crop["crop_size"] == (504, 504) and crop["cat_max_ratio"] == 0.75
    resize = [t for t in cfg.train_dataloader.dataset.pipeline if t["type"] == "RandomResize"][0]
    assert resize["scale"] == (2016, 504) and tuple(resize["ratio_range"]) == (0.5, 2.0)


def test_fsdp_strategy_config_wraps_each_6b_block() -> None:
    import torch
    from mmengine.registry import FUNCTIONS

    from probes.encoders import InternViT

    cfg = Config.fromfile(str(CONFIGS / "InternViT-6B-224px" / "ade20k_full_fsdp.py"))
    assert cfg.runner_type == "FlexibleRunner" and cfg.strategy.type == "FSDPStrategy"
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
