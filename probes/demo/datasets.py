"""Demo datasets written in the real on-disk layouts from the bundled digits and photos."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from probes.demo.images import DigitPool, digit_image, digit_scene

# ADE20K: 0 = "other" (not scored); digits 0..9 -> 1..10, photo background -> 11.
ADE_DIGITS, ADE_BACKGROUND, ADE_EDGE = list(range(1, 11)), 11, 0
# COCO-Stuff raw ids: ten thing classes for the digits, 'grass' stuff for the photo, 255 unlabeled.
COCO_DIGITS, COCO_BACKGROUND, COCO_EDGE = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 123, 255


def _scenes(root: Path, splits: dict[str, tuple[str, int, str, str]], size: tuple[int, int], seed: int,
            background: int, edge: int, digit_values: list[int], first_ids: dict[str, int] | None = None) -> None:
    rng = np.random.default_rng(seed)
    pool = DigitPool(seed)
    for split, (image_dir, count, stem, suffix) in splits.items():
        (root / "images" / image_dir).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / image_dir).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            digits = rng.choice(10, size=int(rng.integers(1, 3)), replace=False).tolist()
            image, labels = digit_scene(pool, rng, *size, digits, background, edge, digit_values)
            name = stem.format(i=i + 1 + (first_ids or {}).get(split, 0))
            image.save(root / "images" / image_dir / f"{name}.jpg", quality=92)
            Image.fromarray(labels, mode="L").save(root / "annotations" / image_dir / f"{name}{suffix}")


def write_ade20k(parent: Path, n_train: int = 24, n_val: int = 8, size: tuple[int, int] = (84, 112),
                 seed: int = 0) -> Path:
    """`ADEChallengeData2016/{images,annotations}/{training,validation}/ADE_*.{jpg,png}`."""
    root = Path(parent) / "ADEChallengeData2016"
    _scenes(root, {"train": ("training", n_train, "ADE_train_{i:08d}", ".png"),
                   "val": ("validation", n_val, "ADE_val_{i:08d}", ".png")},
            size, seed, ADE_BACKGROUND, ADE_EDGE, ADE_DIGITS)
    return root


def write_coco_stuff_raw(parent: Path, n_train: int = 24, n_val: int = 8, size: tuple[int, int] = (112, 84),
                         seed: int = 1) -> Path:
    """`coco_stuff164k/{images,annotations}/{train2017,val2017}/<id>.{jpg,png}` with RAW values (0..181, 255)."""
    root = Path(parent) / "coco_stuff164k"
    # COCO image ids are unique across splits: val ids start past the train ones.
    _scenes(root, {"train": ("train2017", n_train, "{i:012d}", ".png"),
                   "val": ("val2017", n_val, "{i:012d}", ".png")},
            size, seed, COCO_BACKGROUND, COCO_EDGE, COCO_DIGITS, first_ids={"val": 500000})
    return root


def digit_class_image(pool: DigitPool, digit: int, size: int, rng: np.random.Generator) -> Image.Image:
    """One classification image of a digit (the class)."""
    return digit_image(pool, digit, size, rng)
