"""Segmentation workers hand uint8 images to the device, as classification's do.

mmseg's SegDataPreProcessor converts to float and normalises on the device; the workers' pipelines
(the released ones, shipped in configs/segmentation/_base_/datasets) must stop at uint8.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from probes.config_files import config_dir
from probes.segmentation.mm_compat import import_mmseg

import_mmseg()

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from probes.segmentation.datasets import dataset_spec, register_transforms  # noqa: E402
from probes.segmentation.config_fill import set_data  # noqa: E402

init_default_scope("mmseg")
register_transforms()


@pytest.mark.parametrize("dataset", ["ade20k", "coco-stuff"])
@pytest.mark.parametrize("split", ["train_dataloader", "val_dataloader"])
def test_released_pipelines_return_uint8(ade20k: Path, dataset: str, split: str) -> None:
    from mmseg.registry import DATASETS

    cfg = Config.fromfile(str(config_dir("segmentation") / "_base_" / "datasets" / f"{dataset}.py"))
    set_data(cfg, dataset_spec(dataset), None, None)  # the class count, as `probes segment` sets it
    pipeline = [dict(t, crop_size=(56, 56)) if t["type"] == "RandomCrop" else t
                for t in cfg[split]["dataset"]["pipeline"]]
    prefix = "training" if split == "train_dataloader" else "validation"
    data = DATASETS.build(dict(type="ADE20KDataset", data_root=str(ade20k),
                               data_prefix=dict(img_path=f"images/{prefix}", seg_map_path=f"annotations/{prefix}"),
                               pipeline=pipeline))
    packed = data[0]
    assert packed["inputs"].dtype == torch.uint8 and packed["inputs"].shape[0] == 3


@pytest.mark.parametrize("dataset", ["ade20k", "coco-stuff"])
def test_shipped_dataset_configs_apply_their_label_rule(ade20k: Path, coco_stuff_raw: Path, dataset: str) -> None:
    """ADE20K's label 0 ("other") becomes 255 and 1..150 shift down; COCO-Stuff's train ids stay as stored."""
    from mmseg.registry import DATASETS

    from probes.segmentation.coco_stuff import prepare_coco_stuff

    spec = dataset_spec(dataset)
    if dataset == "ade20k":
        root = ade20k
    else:
        root = coco_stuff_raw
        prepare_coco_stuff(root, workers=1)
    cfg = Config.fromfile(str(config_dir("segmentation") / "_base_" / "datasets" / f"{dataset}.py"))
    set_data(cfg, spec, root, 0)
    data = DATASETS.build(cfg.val_dataloader.dataset)
    sample = data[0]
    stored = np.array(Image.open(sample["data_samples"].seg_map_path))
    loaded = sample["data_samples"].gt_sem_seg.data.numpy()[0]
    expected = np.where(stored == 0, 255, stored - 1) if dataset == "ade20k" else stored
    assert set(np.unique(stored)) - {255} and (loaded == expected).all()
