"""ADE20K / COCO-Stuff-164K folder checks before training, and a label-range check in the pipeline."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from probes.errors import ConfigError, DatasetError

LABEL_SUFFIX = "_labelTrainIds.png"


@dataclass(frozen=True)
class DatasetSpec:
    """How one dataset lies on disk and what mmseg calls it."""

    key: str            # CLI name
    name: str           # name in result rows
    folder: str         # the folder the archive unpacks to
    mm_type: str        # mmseg dataset class
    splits: tuple[str, str]   # (train, val)
    seg_suffix: str
    num_classes: int
    full_sizes: tuple[int, int]   # images of the released (train, val) splits: fewer is a subset


DATASETS = {
    "ade20k": DatasetSpec("ade20k", "ADE20K", "ADEChallengeData2016", "ADE20KDataset",
                          ("training", "validation"), ".png", 150, (20_210, 2_000)),
    "coco-stuff": DatasetSpec("coco-stuff", "COCO-Stuff", "coco_stuff164k", "COCOStuffDataset",
                              ("train2017", "val2017"), LABEL_SUFFIX, 171, (118_287, 5_000)),
}


def dataset_spec(key: str) -> DatasetSpec:
    """The spec for a CLI dataset name."""
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {key!r}; use one of {', '.join(DATASETS)}")
    return DATASETS[key]


def resolve_root(spec: DatasetSpec, root: Path) -> Path:
    """Accept the dataset folder itself or its parent (e.g. data/ holding ADEChallengeData2016/)."""
    if not root.is_dir():
        raise DatasetError(f"{spec.name} folder {root} does not exist")
    nested = root / spec.folder
    return nested if not (root / "images").is_dir() and nested.is_dir() else root


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".jpg")


def check_split(spec: DatasetSpec, root: Path, split: str) -> int:
    """The images of one split, each checked to have its annotation; raises DatasetError naming the problem."""
    image_dir, ann_dir = root / "images" / split, root / "annotations" / split
    for folder in (image_dir, ann_dir):
        if not folder.is_dir():
            raise DatasetError(f"{spec.name} split folder {folder} is missing")
    images = _images(image_dir)
    if not images:
        raise DatasetError(f"{spec.name} split folder {image_dir} holds no .jpg images")
    if spec.seg_suffix == LABEL_SUFFIX and not any(ann_dir.glob(f"*{LABEL_SUFFIX}")):
        if any(ann_dir.glob("*.png")):
            raise DatasetError(
                f"{ann_dir} holds raw COCO-Stuff annotations (0..181) but no *{LABEL_SUFFIX}; "
                f"run `probes prepare coco-stuff {root}` first")
    missing = [p for p in images if not (ann_dir / f"{p.stem}{spec.seg_suffix}").is_file()]
    if missing:
        first = ann_dir / f"{missing[0].stem}{spec.seg_suffix}"
        hint = f"; run `probes prepare coco-stuff {root}` to finish the conversion" \
            if spec.seg_suffix == LABEL_SUFFIX and (ann_dir / f"{missing[0].stem}.png").is_file() else ""
        others = f" (and {len(missing) - 1} more images)" if len(missing) > 1 else ""
        raise DatasetError(f"image {image_dir / missing[0].name} has no annotation {first}{others}{hint}")
    return len(images)


def check_dataset(spec: DatasetSpec, root: Path) -> dict[str, int]:
    """Check both splits; returns image counts per split. Raises DatasetError naming the problem."""
    return {split: check_split(spec, root, split) for split in spec.splits}


def partial_splits(spec: DatasetSpec, counts: dict[str, int]) -> list[str]:
    """'validation: 6 of 2000 images' for each counted split with fewer images than the released one."""
    return [f"{split}: {counts[split]} of {full} images"
            for split, full in zip(spec.splits, spec.full_sizes) if split in counts and counts[split] < full]


def check_complete(spec: DatasetSpec, root: Path, counts: dict[str, int], allow_subset: bool) -> bool:
    """True when a split is partial (then `allow_subset` must be set: the row says subset=True)."""
    partial = partial_splits(spec, counts)
    if partial and not allow_subset:
        raise DatasetError(f"{spec.name} at {root} is partial ({'; '.join(partial)}); pass --allow-subset to "
                           f"train and score it anyway (the row then says subset=True)")
    return bool(partial)


def register_transforms() -> None:
    """Register `CheckLabelRange` in mmseg's TRANSFORMS (needs mmseg imported)."""
    from mmcv.transforms import BaseTransform
    from mmseg.registry import TRANSFORMS

    if TRANSFORMS.get("CheckLabelRange") is not None:
        return

    @TRANSFORMS.register_module()
    class CheckLabelRange(BaseTransform):
        """Fail on an annotation with values outside [0, num_classes) ∪ {ignore_index}, naming the file."""

        def __init__(self, num_classes: Optional[int], ignore_index: int = 255) -> None:
            if num_classes is None:  # the shipped base configs leave it to `probes segment` (set_data)
                raise ConfigError("CheckLabelRange.num_classes is unset: run through `probes segment`, which "
                                  "sets it from the dataset, or give it in the config")
            self.num_classes = num_classes
            self.ignore_index = ignore_index

        def transform(self, results: dict) -> dict:
            labels = results["gt_seg_map"]
            bad = (labels >= self.num_classes) & (labels != self.ignore_index)
            if bad.any():
                value = int(labels[bad].max())
                # Name the value as stored in the file: ADE20K's zero reduction shifts labels by one.
                raw = value + 1 if results.get("reduce_zero_label") else value
                raise DatasetError(
                    f"annotation {results.get('seg_map_path')} holds label value {raw}, outside the "
                    f"{self.num_classes} classes of this dataset (255 = ignore)")
            return results
