"""Segmentation workers hand uint8 images to the device, as classification's do.

mmseg's SegDataPreProcessor converts to float and normalises on the device; the workers' pipelines
(the released ones, shipped in configs/segmentation/_base_/datasets) must stop at uint8.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from probes.config_files import config_dir
from probes.segmentation.mm_compat import import_mmseg

import_mmseg()

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from probes.segmentation.datasets import register_transforms  # noqa: E402

init_default_scope("mmseg")
register_transforms()


@pytest.mark.parametrize("dataset", ["ade20k", "coco_stuff"])
@pytest.mark.parametrize("split", ["train_dataloader", "val_dataloader"])
def test_released_pipelines_return_uint8(ade20k: Path, dataset: str, split: str) -> None:
    from mmseg.registry import DATASETS

    cfg = Config.fromfile(str(config_dir("segmentation") / "_base_" / "datasets" / f"{dataset}.py"))
    pipeline = [dict(t, crop_size=(56, 56)) if t["type"] == "RandomCrop" else t
                for t in cfg[split]["dataset"]["pipeline"]]
    prefix = "training" if split == "train_dataloader" else "validation"
    data = DATASETS.build(dict(type="ADE20KDataset", data_root=str(ade20k),
                               data_prefix=dict(img_path=f"images/{prefix}", seg_map_path=f"annotations/{prefix}"),
                               pipeline=pipeline))
    packed = data[0]
    assert packed["inputs"].dtype == torch.uint8 and packed["inputs"].shape[0] == 3
