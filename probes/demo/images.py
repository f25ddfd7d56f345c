"""Real images that ship inside installed packages, shaped into demo samples.

scikit-learn bundles 1,797 labelled 8x8 handwritten digits and two photographs; digits become
class images (ImageNet-style sets) and objects pasted on photo crops (segmentation scenes).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


@lru_cache(maxsize=1)
def _photos() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    return [np.asarray(image) for image in load_sample_images().images]


class DigitPool:
    """Draws digit images of a class without repeating one until the class is used up.

    `part` splits the 1,797 digits in two disjoint halves: "pretrain" (what the demo encoders are
    trained on) and "data" (what the demo datasets are made of), so no test digit was seen in training.
    """

    def __init__(self, seed: int, part: str = "data") -> None:
        images, labels = _digits()
        self.rng = np.random.default_rng(seed)
        half = np.arange(len(labels)) % 2 == (0 if part == "pretrain" else 1)
        self.by_class = {c: self.rng.permutation(np.flatnonzero(half & (labels == c))).tolist() for c in range(10)}
        self.images = images

    def take(self, digit: int) -> np.ndarray:
        """One 8x8 digit (values 0..1) of this class."""
        pool = self.by_class[digit]
        index = pool.pop()
        pool.insert(0, index)  # cycle: the demo asks for fewer images than exist, but never fails
        return self.images[index]


def _upsample(digit: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize((side, side), Image.BICUBIC),
                      dtype=np.float32) / 255.0


def digit_image(pool: DigitPool, digit: int, size: int, rng: np.random.Generator) -> Image.Image:
    """A colour image of one handwritten digit on a dimmed photo crop (class = the digit)."""
    # The photo is dimmed and the ink kept bright, so that tiny encoders trained for seconds can read it.
    background = photo_crop(rng, size, size).astype(np.float32) * 0.3
    side = int(size * rng.uniform(0.6, 0.9))
    top, left = rng.integers(0, size - side + 1, size=2)
    ink = _upsample(pool.take(digit), side)[..., None]
    colour = rng.integers(150, 256, size=3).astype(np.float32)
    patch = background[top:top + side, left:left + side]
    background[top:top + side, left:left + side] = patch * (1 - ink) + colour * ink
    return Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), "RGB")


def photo_crop(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random crop of one of the bundled photographs, resized to (height, width)."""
    photo = _photos()[int(rng.integers(len(_photos())))]
    side = int(rng.integers(min(photo.shape[:2]) // 4, min(photo.shape[:2]) // 2))
    top = int(rng.integers(0, photo.shape[0] - side))
    left = int(rng.integers(0, photo.shape[1] - side))
    crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((width, height), Image.BILINEAR)
    return np.asarray(crop)


def digit_scene(pool: DigitPool, rng: np.random.Generator, height: int, width: int, digits: list[int],
                background_value: int, edge_value: int, digit_values: list[int]) -> tuple[Image.Image, np.ndarray]:
    """A photo crop with handwritten digits pasted on it, and its label map.

    Ink pixels get their digit's value, photo pixels `background_value`, and the soft ink edge
    `edge_value` (an unlabeled band, as annotators leave around object borders).
    """
    image = photo_crop(rng, height, width).astype(np.float32) * 0.4
    labels = np.full((height, width), background_value, dtype=np.uint8)
    for digit in digits:
        side = int(min(height, width) * rng.uniform(0.35, 0.6))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        ink = _upsample(pool.take(digit), side)
        colour = rng.integers(150, 256, size=3).astype(np.float32)
        region = image[top:top + side, left:left + side]
        image[top:top + side, left:left + side] = region * (1 - ink[..., None]) + colour * ink[..., None]
        window = labels[top:top + side, left:left + side]
        window[ink > 0.2] = edge_value
        window[ink > 0.5] = digit_values[digit]
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB"), labels
