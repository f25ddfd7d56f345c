"""`probes prepare coco-stuff ROOT`: raw stuffthingmaps (0..181, 255) -> *_labelTrainIds.png (0..170, 255)."""
from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from probes.errors import DatasetError
from probes.io import write_atomic
from probes.segmentation.datasets import LABEL_SUFFIX

log = logging.getLogger(__name__)

SPLITS = ("train2017", "val2017")
# Raw ids of the 11 COCO thing classes that were never annotated (docs/segmentation.md); the other 171 of
# 0..181 keep their order and become train ids 0..170, as in mmseg's tools/dataset_converters/coco_stuff164k.py.
UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
IGNORE = 255


def train_id_table() -> np.ndarray:
    """256-entry lookup raw value -> train id; unused ids and 255 map to 255, 182..254 to -1 (invalid)."""
    table = np.full(256, -1, dtype=np.int16)
    used = [v for v in range(182) if v not in UNUSED_IDS]
    table[used] = np.arange(len(used))
    table[list(UNUSED_IDS)] = IGNORE
    table[IGNORE] = IGNORE
    return table


def convert_file(raw: Path) -> bool:
    """Write `<stem>_labelTrainIds.png` beside `raw`; returns False when it already existed (resume)."""
    target = raw.with_name(raw.stem + LABEL_SUFFIX)
    if target.is_file():
        return False
    with Image.open(raw) as img:
        if img.mode not in ("L", "P"):
            raise DatasetError(f"{raw} is a {img.mode} image; COCO-Stuff annotations are single-channel PNGs")
        values = np.asarray(img)
    mapped = train_id_table()[values]
    if (mapped < 0).any():
        bad = int(values[mapped < 0].max())
        raise DatasetError(f"{raw} holds value {bad}, outside COCO-Stuff's raw range 0..181 and 255")
    # Atomic: a crash never leaves a truncated *_labelTrainIds.png that a resume would skip.
    write_atomic(target, lambda out: Image.fromarray(mapped.astype(np.uint8), mode="L").save(out, format="PNG"),
                 mode="wb")
    return True


def raw_annotations(root: Path) -> list[Path]:
    """Raw annotation PNGs of both splits (converted outputs and temp files excluded)."""
    files: list[Path] = []
    for split in SPLITS:
        folder = root / "annotations" / split
        if not folder.is_dir():
            raise DatasetError(f"COCO-Stuff annotation folder {folder} is missing "
                               "(unzip stuffthingmaps_trainval2017.zip into annotations/)")
        # Temp files of an interrupted conversion are hidden (".name.XXXX.tmp"), so *.png never sees them.
        files += sorted(p for p in folder.glob("*.png") if not p.name.endswith(LABEL_SUFFIX))
    return files


def prepare_coco_stuff(root: Path, workers: int | None = None) -> tuple[int, int]:
    """Convert every raw annotation under `root`; returns (converted now, already done)."""
    if not root.is_dir():
        raise DatasetError(f"COCO-Stuff folder {root} does not exist")
    if not (root / "annotations").is_dir() and (root / "coco_stuff164k").is_dir():
        root = root / "coco_stuff164k"
    files = raw_annotations(root)
    if not files:
        raise DatasetError(f"{root / 'annotations'} holds no raw COCO-Stuff PNGs to convert")
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        done = [convert_file(f) for f in files]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(convert_file, files, chunksize=64))
    converted = sum(done)
    log.info("COCO-Stuff: %d annotations converted, %d already done, under %s", converted, len(files) - converted, root)
    return converted, len(files) - converted
