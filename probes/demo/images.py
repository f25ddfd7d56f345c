"""Real images that ship inside installed packages, shaped into demo samples.

scikit-learn bundles 1,797 labelled 8x8 handwritten digits and two photographs; digits become
class images (ImageNet-style sets and the demo encoders' pretraining) and cards pasted on photo crops
(segmentation scenes).
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
def _photos() -> list[Image.Image]:
    from sklearn.datasets import load_sample_images

    return [Image.fromarray(image) for image in load_sample_images().images]


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


def _paste_digit(canvas: np.ndarray, pool: DigitPool, digit: int, top: int, left: int, side: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Draw one handwritten digit in a random bright colour into `canvas` (float, in place); return its ink."""
    ink = _upsample(pool.take(digit), side)
    colour = rng.integers(150, 256, size=3).astype(np.float32)
    region = canvas[top:top + side, left:left + side]
    canvas[top:top + side, left:left + side] = region * (1 - ink[..., None]) + colour * ink[..., None]
    return ink


def digit_sample(pool: DigitPool, digit: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A colour image (uint8, size x size x 3) of one handwritten digit on a dimmed photo crop, and its ink (0..1)."""
    # The photo is dimmed and the ink kept bright, so that tiny encoders trained for seconds can read it.
    canvas = photo_crop(rng, size, size).astype(np.float32) * 0.3
    side = int(size * rng.uniform(0.6, 0.9))
    top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    ink = np.zeros((size, size), dtype=np.float32)
    ink[top:top + side, left:left + side] = _paste_digit(canvas, pool, digit, top, left, side, rng)
    return np.clip(canvas, 0, 255).astype(np.uint8), ink


def digit_image(pool: DigitPool, digit: int, size: int, rng: np.random.Generator) -> Image.Image:
    """The image of `digit_sample` (class = the digit), for the ImageNet-layout sets."""
    return Image.fromarray(digit_sample(pool, digit, size, rng)[0])


def photo_crop(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random crop of one of the bundled photographs, resized to (height, width)."""
    photo = _photos()[int(rng.integers(len(_photos())))]
    side = int(rng.integers(min(photo.size) // 4, min(photo.size) // 2))
    top = int(rng.integers(0, photo.height - side))
    left = int(rng.integers(0, photo.width - side))
    # `box` resizes straight from the region, without copying it out first.
    return np.asarray(photo.resize((width, height), Image.BILINEAR, box=(left, top, left + side, top + side)))


# A card is the square a digit is drawn on: darker than the photo around it, so objects have extents.
CARD_SHADE, CARD_BORDER = 0.5, 2


def digit_scene(pool: DigitPool, rng: np.random.Generator, height: int, width: int, digits: list[int],
                background_value: int, edge_value: int, digit_values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """A photo crop with handwritten digits on square cards, and its label map (both uint8 arrays).

    A card's pixels get its digit's value, its outer `CARD_BORDER` pixels `edge_value` (an unlabeled
    band, as annotators leave around object borders), and the photo `background_value`. Cards are
    labelled whole rather than ink-exact: a patch-14 encoder sees 14-pixel squares, and strokes a few
    pixels wide would leave it nothing to segment but the background.
    """
    canvas = photo_crop(rng, height, width).astype(np.float32) * 0.4
    labels = np.full((height, width), background_value, dtype=np.uint8)
    for digit in digits:
        side = int(min(height, width) * rng.uniform(0.6, 0.9))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        canvas[top:top + side, left:left + side] *= CARD_SHADE
        _paste_digit(canvas, pool, digit, top, left, side, rng)
        labels[top:top + side, left:left + side] = edge_value
        inner = slice(top + CARD_BORDER, top + side - CARD_BORDER), slice(left + CARD_BORDER, left + side - CARD_BORDER)
        labels[inner] = digit_values[digit]
    return np.clip(canvas, 0, 255).astype(np.uint8), labels
