"""The ImageNet train split and the six test sets, read exactly as users unpack them.

Each reader turns one on-disk layout into an :class:`ImageSet` (file list + the label rule of that
set, as docs/classification.md states them). Nothing here decodes images;
:mod:`probes.classification.pipeline.images` does.
"""
from __future__ import annotations

import csv
import json
import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from probes.classification import imagenet_info as info
from probes.errors import ConfigError, DatasetError
from probes.results import TEST_SETS

log = logging.getLogger(__name__)

# Extensions are only a filter for what counts as an image file; decoding goes by content.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})")
_WRONG_SHOWN = 40  # wrong class folders named in one error (a whole misplaced set would be 1000)


@dataclass(frozen=True)
class FullSize:
    """How big the real set is: fewer images or classes on disk means a partial copy."""
    images: int
    classes: int


# The released sets' sizes (docs/classification.md, complete sets). ReaL is checked through the val images it
# is built on.
FULL_SIZES: Dict[str, FullSize] = {
    "train": FullSize(1_281_167, 1000),
    "IN-1K": FullSize(50_000, 1000),
    "IN-ReaL": FullSize(46_837, 1000),
    "IN-V2": FullSize(10_000, 1000),
    "IN-A": FullSize(7_500, 200),
    "IN-R": FullSize(30_000, 200),
    "IN-Sketch": FullSize(50_889, 1000),
}


@dataclass
class ImageSet:
    """Image files with their labels and the test sets scored on them.

    The val images carry both IN-1K and IN-ReaL (``scores``), so they pass the backbone once.
    """
    name: str
    root: Path
    files: List[Path]
    targets: List[int]                       # sorted-wnid class index of each file
    class_subset: Optional[Tuple[int, ...]] = None   # IN-A / IN-R: logits kept before argmax
    real_labels: Optional[List[Tuple[int, ...]]] = None  # ReaL list per file (empty = not scored)
    subset: Dict[str, bool] = field(default_factory=dict)  # per score: fewer images than the real set
    scores: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.scores:
            self.scores = (self.name,)

    def __len__(self) -> int:
        return len(self.files)

    def n_scored(self, score: str) -> int:
        """How many images enter the mean of ``score`` (ReaL: non-empty lists only)."""
        if score == "IN-ReaL":
            return sum(1 for x in self.real_labels if x)
        return len(self.files)


def _image_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _class_folders(root: Path) -> List[Path]:
    # Top-level files such as IN-A/IN-R's README.txt are not classes.
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _wnid_layout(root: Path, set_name: str, allowed: Sequence[str]) -> Tuple[List[Path], List[int]]:
    """Read ``root/<wnid>/*``; every folder must be one of ``allowed`` wnids."""
    lookup = info.wnid_to_index()
    allowed_set = set(allowed)
    folders = _class_folders(root)
    wrong = [f.name for f in folders if f.name not in allowed_set]
    if wrong:
        raise DatasetError(wrong_folders_message(set_name, root, wrong, len(allowed_set)))
    files: List[Path] = []
    targets: List[int] = []
    for folder in folders:
        # The folder is the label; file names are never parsed (IN-A's hold a wrong prediction).
        for path in _image_files(folder):
            files.append(path)
            targets.append(lookup[folder.name])
    return files, targets


def wrong_folders_message(set_name: str, root: Path, wrong: Sequence[str], n_allowed: int) -> str:
    """Every folder that is no class of the set, in one line, with where the set's class list is."""
    shown = ", ".join(wrong[:_WRONG_SHOWN]) + (f" (+{len(wrong) - _WRONG_SHOWN} more)"
                                               if len(wrong) > _WRONG_SHOWN else "")
    listing = "IN-1K" if set_name in ("train", "IN-1K", "IN-V2", "IN-Sketch") else set_name
    return (f"{set_name}: {len(wrong)} folder(s) under {root} are not among the set's {n_allowed} class wnids: "
            f"{shown} (`probes classes {listing}` lists them).")


def check_complete(name: str, root: Path, n_images: int, n_classes: int, allow_subset: bool,
                   full: Optional[FullSize] = None) -> bool:
    """Return True when the set is a subset; raise DatasetError for one unless allowed."""
    full = full or FULL_SIZES[name]
    if n_images == 0:
        raise DatasetError(f"{name}: no images found under {root}.")
    if n_classes > full.classes:
        raise DatasetError(f"{name} at {root} has {n_classes} classes, but the set has "
                           f"{full.classes}.")
    if n_images > full.images:
        log.warning("%s at %s has %d images, more than the %d of the published set",
                    name, root, n_images, full.images)
    partial = n_images < full.images or n_classes < full.classes
    if partial and not allow_subset:
        raise DatasetError(
            f"{name} at {root} is partial: {n_images} images in {n_classes} classes instead of "
            f"{full.images} in {full.classes} (pass --allow-subset to score it; rows then say "
            f"subset=True).")
    return partial


# ----------------------------------------------------------------------------- readers per set

def read_train(root: Path, allow_subset: bool) -> ImageSet:
    """``train/<wnid>/*.JPEG``, labelled by sorted-wnid index."""
    if not root.is_dir():
        raise DatasetError(f"train: folder {root} does not exist (the probes are trained on it).")
    files, targets = _wnid_layout(root, "train", info.imagenet_wnids())
    subset = check_complete("train", root, len(files), len(set(targets)), allow_subset)
    return ImageSet("train", root, files, targets, subset={"train": subset})


def _read_val_label_file(path: Path) -> Dict[str, int]:
    """Map a file stem to its class index from ``val.txt`` or Kaggle's ``LOC_val_solution.csv``."""
    labels: Dict[str, int] = {}
    lookup = info.wnid_to_index()
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    # PredictionString is "wnid x0 y0 x1 y1 [wnid ...]": all boxes share the class.
                    wnid = row["PredictionString"].split()[0]
                    labels[Path(row["ImageId"]).stem] = lookup[wnid]
        else:
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                name, index = line.split()
                value = int(index)
                if not 0 <= value < info.NUM_CLASSES:
                    raise ValueError(f"class index {value} on line {n}")
                labels[Path(name).stem] = value
    except (KeyError, ValueError, IndexError) as exc:
        raise DatasetError(f"IN-1K: label file {path} cannot be read ({exc}).") from None
    return labels


def _find_val_label_file(root: Path, data_root: Path, configured: Optional[str]) -> Path:
    if configured:
        path = Path(configured)
        path = path if path.is_absolute() else data_root / path
        if not path.is_file():
            raise DatasetError(f"IN-1K: label file {path} (data.val_labels) does not exist.")
        return path
    for cand in (root / "val.txt", data_root / "val.txt", data_root / "LOC_val_solution.csv",
                 root / "LOC_val_solution.csv", root.parent / "LOC_val_solution.csv"):
        if cand.is_file():
            return cand
    raise DatasetError(f"IN-1K: {root} is a flat folder but no val.txt or LOC_val_solution.csv "
                       f"was found beside it (set data.val_labels).")


def val_label_source(root: Path, data_root: Path, label_file: Optional[str] = None) -> str:
    """Where the val images' labels come from, as `read_val` finds them: wnid folders or a label file."""
    if any(_class_folders(root)):
        return f"the <wnid> folders of {root}"
    return str(_find_val_label_file(root, data_root, label_file))


def read_val(root: Path, data_root: Path, allow_subset: bool,
             label_file: Optional[str] = None) -> ImageSet:
    """``val/<wnid>/`` or the flat raw folder + ``val.txt`` / ``LOC_val_solution.csv``."""
    if any(_class_folders(root)):
        files, targets = _wnid_layout(root, "IN-1K", info.imagenet_wnids())
    else:
        labels = _read_val_label_file(_find_val_label_file(root, data_root, label_file))
        files, targets = [], []
        for path in _image_files(root):
            if path.stem not in labels:
                raise DatasetError(f"IN-1K: image {path} has no line in the val label file.")
            files.append(path)
            targets.append(labels[path.stem])
    subset = check_complete("IN-1K", root, len(files), len(set(targets)), allow_subset)
    return ImageSet("IN-1K", root, files, targets, subset={"IN-1K": subset})


def load_real_labels(path: Optional[Path]) -> Tuple[Tuple[int, ...], ...]:
    """ReaL label lists from ``real.json``, or timm's bundled copy when the file is absent."""
    if path is None or not path.is_file():
        log.info("IN-ReaL: %s not found, using the ReaL labels bundled with timm", path)
        return info.bundled_real_labels()
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise DatasetError(f"IN-ReaL: {path} is not valid JSON ({exc}).") from None
    if not isinstance(data, list) or len(data) != 50_000:
        raise DatasetError(f"IN-ReaL: {path} must hold a list of 50000 label lists.")
    return tuple(tuple(int(c) for c in x) for x in data)


def attach_real(val: ImageSet, real: Sequence[Tuple[int, ...]], allow_subset: bool) -> None:
    """Add IN-ReaL to the val images: labels matched by file name; empty lists are not scored."""
    labels: List[Tuple[int, ...]] = []
    for path in val.files:
        match = _VAL_NAME.search(path.name)
        if match is None:
            raise DatasetError(f"IN-ReaL: val image {path} is not named ILSVRC2012_val_<8 digits>, "
                               f"so its ReaL labels cannot be found.")
        number = int(match.group(1))
        if not 1 <= number <= len(real):
            raise DatasetError(f"IN-ReaL: val image {path} has no entry among the {len(real)} ReaL lists.")
        labels.append(tuple(real[number - 1]))
    n_scored = sum(1 for x in labels if x)
    if n_scored == 0:
        raise DatasetError(f"IN-ReaL: no val image under {val.root} has a non-empty ReaL list.")
    n_classes = len({c for entry in labels for c in entry})
    partial = check_complete("IN-ReaL", val.root, n_scored, n_classes, allow_subset)
    val.real_labels = labels
    val.subset["IN-ReaL"] = partial or val.subset["IN-1K"]
    val.scores = tuple(val.scores) + ("IN-ReaL",)


def read_v2(root: Path, allow_subset: bool) -> ImageSet:
    """IN-V2: folders ``0..999`` labelled ``int(name)`` (never string order), or wnid folders."""
    folders = _class_folders(root)
    if folders and all(f.name.isdigit() for f in folders):
        files, targets = [], []
        for folder in folders:
            index = int(folder.name)
            if not 0 <= index < info.NUM_CLASSES:
                raise DatasetError(f"IN-V2: folder {folder} is not a class index 0..999.")
            for path in _image_files(folder):
                files.append(path)
                targets.append(index)
    else:
        files, targets = _wnid_layout(root, "IN-V2", info.imagenet_wnids())
    subset = check_complete("IN-V2", root, len(files), len(set(targets)), allow_subset)
    return ImageSet("IN-V2", root, files, targets, subset={"IN-V2": subset})


def read_restricted(name: str, root: Path, allow_subset: bool) -> ImageSet:
    """IN-A / IN-R: 200 wnid folders, scored on the 1000-way logits restricted to those classes."""
    indices = info.imagenet_a_indices() if name == "IN-A" else info.imagenet_r_indices()
    wnids = [info.imagenet_wnids()[i] for i in indices]
    files, targets = _wnid_layout(root, name, wnids)
    subset = check_complete(name, root, len(files), len(set(targets)), allow_subset)
    return ImageSet(name, root, files, targets, class_subset=tuple(indices), subset={name: subset})


def read_sketch(root: Path, allow_subset: bool) -> ImageSet:
    """IN-Sketch: 1000 wnid folders, sorted-wnid index."""
    files, targets = _wnid_layout(root, "IN-Sketch", info.imagenet_wnids())
    subset = check_complete("IN-Sketch", root, len(files), len(set(targets)), allow_subset)
    return ImageSet("IN-Sketch", root, files, targets, subset={"IN-Sketch": subset})


# ----------------------------------------------------------------------------- the whole data root

def resolve_path(data_root: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else data_root / path


def load_test_sets(data_root: Path, paths: Mapping[str, str], wanted: Sequence[str],
                   allow_subset: bool, val_labels: Optional[str] = None) -> List[ImageSet]:
    """Every wanted test set found under ``data_root``; missing ones are skipped with a warning.

    IN-ReaL is a second score of the val set (``scores``), so the val images are read once.
    """
    unknown = [name for name in wanted if name not in TEST_SETS]
    if unknown:
        raise ConfigError(f"data.test_sets names unknown set(s) {unknown}; choose from {list(TEST_SETS)}.")
    sets: List[ImageSet] = []

    def present(name: str) -> Optional[Path]:
        root = resolve_path(data_root, paths[name])
        if root.is_dir():
            return root
        log.warning("%s: %s not found, skipping this test set", name, root)
        return None

    if "IN-1K" in wanted or "IN-ReaL" in wanted:
        root = present("IN-1K")
        if root is not None:
            val = read_val(root, data_root, allow_subset, val_labels)
            if "IN-1K" not in wanted:
                val.scores = ()
            if "IN-ReaL" in wanted:
                real_path = resolve_path(data_root, paths["IN-ReaL"]) if paths.get("IN-ReaL") else None
                attach_real(val, load_real_labels(real_path), allow_subset)
            sets.append(val)
    readers = {"IN-V2": read_v2, "IN-Sketch": read_sketch,
               "IN-A": lambda r, a: read_restricted("IN-A", r, a),
               "IN-R": lambda r, a: read_restricted("IN-R", r, a)}
    for name in ("IN-V2", "IN-A", "IN-R", "IN-Sketch"):
        if name in wanted:
            root = present(name)
            if root is not None:
                sets.append(readers[name](root, allow_subset))
    return sets


def split_heldout(train: ImageSet, per_class: int, seed: int, train_per_class: Optional[int] = None,
                  max_fraction: float = 0.2) -> Tuple[ImageSet, ImageSet]:
    """Hold out random images of each class (for head selection) from train.

    At most ``per_class`` and at most ``max_fraction`` of a class (rounded down), but at least one image
    of every class that has two: a class of 12 gives up 2, not 10.
    """
    if per_class < 1:
        raise ConfigError("data.heldout_per_class must be at least 1 (the best head is chosen on it).")
    by_class: Dict[int, List[int]] = {}
    for i, t in enumerate(train.targets):
        by_class.setdefault(t, []).append(i)
    rng = random.Random(seed)
    keep, held = [], []
    for cls in sorted(by_class):
        idx = by_class[cls][:]
        rng.shuffle(idx)
        # Leave at least one training image in every class.
        n_held = min(per_class, max(1, int(max_fraction * len(idx))), len(idx) - 1)
        held.extend(idx[:n_held])
        rest = idx[n_held:]
        keep.extend(rest if train_per_class is None else rest[:train_per_class])
    keep.sort()
    held.sort()
    if not held:
        raise DatasetError(f"train at {train.root}: no class has two images, nothing to hold out.")

    def pick(name: str, idx: List[int]) -> ImageSet:
        return ImageSet(name, train.root, [train.files[i] for i in idx],
                        [train.targets[i] for i in idx], subset={name: train.subset["train"]})

    return pick("train", keep), pick("heldout", held)


def with_heldout(train: ImageSet, heldout: ImageSet) -> Tuple[ImageSet, List[bool]]:
    """Train and the held-out split as one training set (in file order), with each image's held-out flag.

    The published head trains on every training image, as the official run; the flags keep the held-out
    images out of the grid heads' losses.
    """
    files = sorted([(str(f), t, False) for f, t in zip(train.files, train.targets)]
                   + [(str(f), t, True) for f, t in zip(heldout.files, heldout.targets)])
    merged = ImageSet(train.name, train.root, [Path(f) for f, _, _ in files], [t for _, t, _ in files],
                      subset=dict(train.subset))
    return merged, [held for _, _, held in files]


def limit_per_class(image_set: ImageSet, per_class: int) -> ImageSet:
    """The first `per_class` images of each class (a subset protocol, said in the rows)."""
    seen: Dict[int, int] = {}
    keep = []
    for i, t in enumerate(image_set.targets):
        if seen.get(t, 0) < per_class:
            seen[t] = seen.get(t, 0) + 1
            keep.append(i)
    return ImageSet(image_set.name, image_set.root, [image_set.files[i] for i in keep],
                    [image_set.targets[i] for i in keep], subset=dict(image_set.subset))
