"""Tiny datasets in the real on-disk layouts, and a tiny encoder, for the segmentation tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmseg  # noqa: F401  (the seg extra is part of the test install: missing it is a failure, not a skip)


def _scene(rng: np.random.Generator, height: int, width: int, values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image whose colour follows a label map of vertical bands (learnable, not trivial)."""
    labels = np.zeros((height, width), dtype=np.uint8)
    bands = np.sort(rng.choice(np.arange(8, width - 8), size=len(values) - 1, replace=False))
    for value, start in zip(values[1:], bands):
        labels[:, start:] = value
    palette = {v: rng.integers(0, 256, size=3) for v in values}
    image = np.stack([palette[v] for v in labels.ravel()]).reshape(height, width, 3)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    return image, labels


def write_ade20k(root: Path, n_train: int = 4, n_val: int = 2, seed: int = 0) -> Path:
    """ADEChallengeData2016/{images,annotations}/{training,validation}/ADE_*.{jpg,png}, labels 0..3."""
    rng = np.random.default_rng(seed)
    root = root / "ADEChallengeData2016"
    for split, count, tag in (("training", n_train, "train"), ("validation", n_val, "val")):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(count):
            image, labels = _scene(rng, 70 + 14 * (i % 2), 84, [0, 1, 2, 3])
            name = f"ADE_{tag}_{i + 1:08d}"
            Image.fromarray(image).save(root / "images" / split / f"{name}.jpg", quality=95)
            Image.fromarray(labels, mode="L").save(root / "annotations" / split / f"{name}.png")
    return root


def write_coco_stuff(root: Path, n_train: int = 4, n_val: int = 2, seed: int = 1) -> Path:
    """coco_stuff164k/{images,annotations}/{train2017,val2017}/<id>.{jpg,png}, RAW values (0..181, 255)."""
    rng = np.random.default_rng(seed)
    root = root / "coco_stuff164k"
    ident = 9
    for split, count in (("train2017", n_train), ("val2017", n_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for _ in range(count):
            image, labels = _scene(rng, 84, 70, [0, 12, 181, 255])
            Image.fromarray(image).save(root / "images" / split / f"{ident:012d}.jpg", quality=95)
            Image.fromarray(labels, mode="L").save(root / "annotations" / split / f"{ident:012d}.png")
            ident += 1
    return root


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
