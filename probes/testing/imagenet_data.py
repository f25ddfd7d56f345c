"""Write a tiny ImageNet-family data root in the real on-disk layouts, quirks included.

For tests, the benchmark and demos: no download, real file formats. Each class gets its own base
colour so a probe can learn something; the images are small noise-textured rectangles.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from probes.classification import imagenet_info as info


ImageFn = Callable[[int, np.random.Generator, tuple], Image.Image]


def shared_a_r_classes(n: int) -> List[int]:
    """The first ``n`` class indices that belong to both IN-A and IN-R (usable by every set)."""
    shared = sorted(set(info.imagenet_a_indices()) & set(info.imagenet_r_indices()))
    return shared[:n]


def _noise_image(cls: int, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    base = np.array([(cls * 67) % 256, (cls * 131) % 256, (cls * 29) % 256], dtype=np.float32)
    noise = rng.normal(0, 40, size=(size[1], size[0], 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def _save(img: Image.Image, path: Path, mode: str = "RGB", fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert(mode).save(path, format=fmt)


def write_imagenet_root(root: Path, classes: Sequence[int], train_per_class: int = 3,
                        val_per_class: int = 1, other_per_class: int = 1, size: tuple[int, int] = (40, 32),
                        val_layout: str = "wnid", v2_layout: str = "index", quirks: bool = True,
                        sets: Sequence[str] = ("train", "val", "real", "v2", "a", "r", "sketch"),
                        seed: int = 0, image_fn: Optional[ImageFn] = None) -> Dict[str, object]:
    """Write the data root; returns what was written (val file → class, ReaL lists, ...).

    `image_fn(class_index, rng, (width, height))` draws one image; the default is a class-coloured
    noise texture (the demo passes real digit photos instead).
    """
    rng = np.random.default_rng(seed)
    _image = image_fn or _noise_image
    wnids = info.imagenet_wnids()
    written: Dict[str, object] = {"classes": list(classes)}
    if "train" in sets:
        for cls in classes:
            for j in range(train_per_class):
                _save(_image(cls, rng, size), root / "train" / wnids[cls] / f"{wnids[cls]}_{j}.JPEG")
        if quirks:
            # The real train split holds a PNG named .JPEG, CMYK JPEGs and grayscale images.
            c0 = classes[0]
            _save(_image(c0, rng, size), root / "train" / wnids[c0] / f"{wnids[c0]}_png.JPEG", fmt="PNG")
            _save(_image(c0, rng, size), root / "train" / wnids[c0] / f"{wnids[c0]}_cmyk.JPEG", mode="CMYK")
            _save(_image(c0, rng, size), root / "train" / wnids[c0] / f"{wnids[c0]}_gray.JPEG", mode="L")
    val_files: Dict[str, int] = {}
    if "val" in sets:
        number = 0
        for cls in classes:
            for _ in range(val_per_class):
                number += 1
                name = f"ILSVRC2012_val_{number:08d}.JPEG"
                sub = wnids[cls] if val_layout == "wnid" else ""
                _save(_image(cls, rng, size), root / "val" / sub / name)
                val_files[name] = cls
        if val_layout == "flat_txt":
            (root / "val.txt").write_text("".join(f"{n} {c}\n" for n, c in val_files.items()))
        elif val_layout == "flat_csv":
            with (root / "LOC_val_solution.csv").open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["ImageId", "PredictionString"])
                for n, c in val_files.items():
                    w.writerow([Path(n).stem, f"{wnids[c]} 1 2 30 30 {wnids[c]} 3 4 20 20"])
        written["val"] = val_files
    if "real" in sets and val_files:
        real: List[List[int]] = [[] for _ in range(50_000)]
        for k, (name, cls) in enumerate(val_files.items()):
            number = int(name[15:23])
            # The first val image keeps an empty list (not scored); the others get their class,
            # every third one with a second plausible label.
            real[number - 1] = [] if k == 0 else ([cls, (cls + 1) % 1000] if k % 3 == 0 else [cls])
        (root / "real.json").write_text(json.dumps(real))
        written["real"] = real
    if "v2" in sets:
        for cls in classes:
            folder = str(cls) if v2_layout == "index" else wnids[cls]
            for j in range(other_per_class):
                _save(_image(cls, rng, size),
                      root / "imagenetv2-matched-frequency-format-val" / folder / f"{j:04x}.jpeg")
    for key, name, subset in (("a", "imagenet-a", info.imagenet_a_indices()),
                              ("r", "imagenet-r", info.imagenet_r_indices())):
        if key in sets:
            for cls in classes:
                if cls not in subset:
                    continue
                for j in range(other_per_class):
                    # IN-A/IN-R file names carry another model's prediction: never a label source.
                    liar = wnids[(cls + 1) % 1000]
                    _save(_image(cls, rng, size), root / name / wnids[cls] / f"0.{j:06d}_{liar}_wrong.jpg")
            (root / name).mkdir(parents=True, exist_ok=True)
            (root / name / "README.txt").write_text("top-level readme, not a class\n")
    if "sketch" in sets:
        for cls in classes:
            for j in range(other_per_class):
                # Most sketches are grayscale.
                _save(_image(cls, rng, size), root / "sketch" / wnids[cls] / f"sketch_{j}.JPEG",
                      mode="L" if quirks else "RGB")
    return written
