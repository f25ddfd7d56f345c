"""Write tiny ADE20K and COCO-Stuff roots in their real on-disk layouts, from any scene function.

For tests, benchmarks and the demo: no download, real file formats (JPEG images, one-channel PNG
label maps holding the dataset's RAW values, as the archives unpack). What a scene shows is the
caller's choice: the tests draw colour bands, the demo draws handwritten digits on photos.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence, Tuple

import numpy as np
from PIL import Image

# scene(rng, height, width) -> (RGB image uint8 (H, W, 3), label map uint8 (H, W) of the dataset's raw values)
Scene = Callable[[np.random.Generator, int, int], Tuple[np.ndarray, np.ndarray]]
Size = Tuple[int, int]  # (height, width)


def band_scene(values: Sequence[int]) -> Scene:
    """Scenes whose colour follows a label map of vertical bands of `values` (learnable, not trivial)."""
    def scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.zeros((height, width), dtype=np.uint8)
        bands = np.sort(rng.choice(np.arange(8, width - 8), size=len(values) - 1, replace=False))
        for value, start in zip(values[1:], bands):
            labels[:, start:] = value
        palette = {v: rng.integers(0, 256, size=3) for v in values}
        image = np.stack([palette[v] for v in labels.ravel()]).reshape(height, width, 3)
        image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        return image, labels
    return scene


def _write_split(images: Path, annotations: Path, names: Sequence[str], sizes: Sequence[Size], scene: Scene,
                 rng: np.random.Generator, quality: int) -> None:
    images.mkdir(parents=True, exist_ok=True)
    annotations.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        height, width = sizes[i % len(sizes)]
        image, labels = scene(rng, height, width)
        if image.shape != (height, width, 3) or labels.shape != (height, width) or labels.dtype != np.uint8:
            raise ValueError(f"scene gave image {image.shape} and labels {labels.shape} {labels.dtype}, "
                             f"expected ({height}, {width}, 3) and uint8 ({height}, {width})")
        # uint8 (H, W, 3) is read as RGB and uint8 (H, W) as one-channel "L", as the datasets store them.
        Image.fromarray(image).save(images / f"{name}.jpg", quality=quality)
        Image.fromarray(labels).save(annotations / f"{name}.png")


def write_ade20k(parent: Path, scene: Scene, n_train: int = 4, n_val: int = 2,
                 sizes: Sequence[Size] = ((70, 84), (84, 84)), seed: int = 0, quality: int = 95) -> Path:
    """`ADEChallengeData2016/{images,annotations}/{training,validation}/ADE_{train,val}_<n>.{jpg,png}`.

    Raw ADE20K values: 0 = "other" (not scored), 1..150 the classes. `sizes` (height, width) are cycled
    over the images of each split. Returns the `ADEChallengeData2016` folder.
    """
    rng = np.random.default_rng(seed)
    root = Path(parent) / "ADEChallengeData2016"
    for split, count, tag in (("training", n_train, "train"), ("validation", n_val, "val")):
        names = [f"ADE_{tag}_{i + 1:08d}" for i in range(count)]
        _write_split(root / "images" / split, root / "annotations" / split, names, sizes, scene, rng, quality)
    return root


def write_coco_stuff_raw(parent: Path, scene: Scene, n_train: int = 4, n_val: int = 2,
                         sizes: Sequence[Size] = ((84, 70),), seed: int = 1, first_id: int = 1,
                         quality: int = 95) -> Path:
    """`coco_stuff164k/{images,annotations}/{train2017,val2017}/<id>.{jpg,png}` with RAW label values.

    Raw values as the stuffthingmaps archive ships them, before `probes prepare coco-stuff`: 0..181
    things and stuff, 255 unlabeled. Image ids start at `first_id` and run on from train into val
    (COCO ids are unique over both splits). Returns the `coco_stuff164k` folder.
    """
    rng = np.random.default_rng(seed)
    root = Path(parent) / "coco_stuff164k"
    ident = first_id
    for split, count in (("train2017", n_train), ("val2017", n_val)):
        names = [f"{ident + i:012d}" for i in range(count)]
        ident += count
        _write_split(root / "images" / split, root / "annotations" / split, names, sizes, scene, rng, quality)
    return root
