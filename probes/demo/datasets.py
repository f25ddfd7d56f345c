"""The demo's data: the layout writers of `probes.testing` filled with the bundled digits and photos.

Sizes are chosen so that the two demo versions differ beyond chance: 100 IN-1K images and 48
validation scenes per segmentation dataset give paired intervals narrow enough (about ±9 top-1
points, ±3 mIoU) to separate them, while every run stays a few seconds long.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from probes.demo.images import DigitPool, digit_image, digit_scene
from probes.testing.imagenet_data import shared_a_r_classes, write_imagenet_root
from probes.testing.segmentation_data import Scene, write_ade20k, write_coco_stuff_raw

IMAGE_SIZE = 56  # the tiny encoders' native size: 4 x 4 patches of 14
IMAGENET_COUNTS = dict(train_per_class=24, val_per_class=10, other_per_class=5)  # 10 classes
SCENE_COUNTS = dict(n_train=48, n_val=48)
# ADE20K raw values: 0 = "other" (not scored); digits 0..9 -> 1..10, photo background -> 11.
ADE_DIGITS, ADE_BACKGROUND, ADE_EDGE = list(range(1, 11)), 11, 0
# COCO-Stuff raw ids: ten thing classes for the digits, 'grass' stuff for the photo, 255 unlabeled.
COCO_DIGITS, COCO_BACKGROUND, COCO_EDGE = list(range(10)), 123, 255


def _digit_images(classes: list[int], seed: int) -> Callable[[int, np.random.Generator, tuple], Image.Image]:
    """An image function for the ImageNet writer: class k of `classes` shows handwritten digit k."""
    pool = DigitPool(seed)
    digit_of = {cls: k for k, cls in enumerate(classes)}
    return lambda cls, rng, size: digit_image(pool, digit_of[cls], size[0], rng)


def _digit_scenes(seed: int, background: int, edge: int, digit_values: list[int]) -> Scene:
    """A scene function for the segmentation writers: one digit card on a photo crop."""
    pool = DigitPool(seed)

    def scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        # One card per scene: its patches can then name its digit from the whole image's context.
        return digit_scene(pool, rng, height, width, [int(rng.integers(10))], background, edge, digit_values)
    return scene


def write_imagenet(data: Path, seed: int = 0) -> Path:
    """The six ImageNet-family sets and the train split (10 classes, the real layouts' quirks included)."""
    classes = shared_a_r_classes(10)  # in IN-A and IN-R too, so every set has all ten
    root = Path(data) / "imagenet"
    write_imagenet_root(root, classes, size=(IMAGE_SIZE, IMAGE_SIZE), seed=seed,
                        image_fn=_digit_images(classes, seed), **IMAGENET_COUNTS)
    return root


def write_segmentation(data: Path) -> dict[str, Path]:
    """ADE20K (56 x 84 scenes) and COCO-Stuff with raw label values (84 x 56), not yet converted."""
    ade20k = write_ade20k(data, _digit_scenes(0, ADE_BACKGROUND, ADE_EDGE, ADE_DIGITS),
                          sizes=((IMAGE_SIZE, 84),), seed=0, **SCENE_COUNTS)
    coco = write_coco_stuff_raw(data, _digit_scenes(1, COCO_BACKGROUND, COCO_EDGE, COCO_DIGITS),
                                sizes=((84, IMAGE_SIZE),), seed=1, **SCENE_COUNTS)
    return {"ade20k": ade20k, "coco-stuff": coco}
