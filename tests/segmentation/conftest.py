"""Tiny datasets in the real on-disk layouts, and a tiny encoder, for the segmentation tests."""
from __future__ import annotations

from pathlib import Path

import pytest

import mmseg  # noqa: F401  (the seg extra is part of the test install: missing it is a failure, not a skip)
from probes.testing import segmentation_data
from probes.testing.segmentation_data import band_scene


def write_ade20k(root: Path, n_train: int = 4, n_val: int = 2, seed: int = 0) -> Path:
    """ADEChallengeData2016/{images,annotations}/{training,validation}/ADE_*.{jpg,png}, labels 0..3."""
    return segmentation_data.write_ade20k(root, band_scene([0, 1, 2, 3]), n_train, n_val,
                                          sizes=((70, 84), (84, 84)), seed=seed)


def write_coco_stuff(root: Path, n_train: int = 4, n_val: int = 2, seed: int = 1) -> Path:
    """coco_stuff164k/{images,annotations}/{train2017,val2017}/<id>.{jpg,png}, RAW values (0..181, 255)."""
    return segmentation_data.write_coco_stuff_raw(root, band_scene([0, 12, 181, 255]), n_train, n_val,
                                                  sizes=((84, 70),), seed=seed, first_id=9)


@pytest.fixture
def ade20k(tmp_path: Path) -> Path:
    return write_ade20k(tmp_path / "data")


@pytest.fixture
def coco_stuff_raw(tmp_path: Path) -> Path:
    return write_coco_stuff(tmp_path / "data")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from probes.testing.checkpoints import write_tiny_hf_encoder

    return write_tiny_hf_encoder(tmp_path_factory.mktemp("enc") / "tiny-6b", style="6b", seed=0)


# Small heads and runs: crop 56 (4x4 patches), batch 2, UPerHead at 16 channels, no workers.
TINY_OPTIONS = {
    "model.decode_head.channels": 16, "model.auxiliary_head.channels": 8,
    "train_dataloader.num_workers": 0, "train_dataloader.persistent_workers": False,
    "val_dataloader.num_workers": 0, "val_dataloader.persistent_workers": False,
    "default_hooks.logger.interval": 1,
}
