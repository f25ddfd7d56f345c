"""Human-readable class names: ImageNet-1K from timm's bundled metadata, ADE20K / COCO-Stuff from mmseg."""
from __future__ import annotations

import functools
from collections import Counter
from typing import Tuple

from probes.errors import ConfigError
from probes.results import DATASETS


@functools.lru_cache(maxsize=None)
def imagenet_class_names() -> Tuple[str, ...]:
    """The 1000 ImageNet-1K names in class-index (sorted wnid) order: each synset's first lemma.

    Two names occur twice ('crane' the bird and the machine, 'maillot' twice); those get their wnid
    appended so every name is unique in a table.
    """
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    wnids = info.label_names()
    names = [info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes())]
    repeated = {name for name, count in Counter(names).items() if count > 1}
    return tuple(f"{name} ({wnid})" if name in repeated else name for name, wnid in zip(names, wnids))


@functools.lru_cache(maxsize=None)
def segmentation_class_names(dataset: str) -> Tuple[str, ...]:
    """The class names of ``dataset`` (ADE20K: 150, COCO-Stuff: 171) from mmseg's dataset metainfo."""
    if dataset not in DATASETS:
        raise ConfigError(f"dataset {dataset!r} is not one of {', '.join(DATASETS)}")
    # mmseg is slow to import (~5 s) and needs our mmcv-lite stand-in first: only when asked.
    from probes.segmentation.mm_compat import import_mmseg

    import_mmseg()
    from mmseg.datasets import ADE20KDataset, COCOStuffDataset

    dataset_class = {"ADE20K": ADE20KDataset, "COCO-Stuff": COCOStuffDataset}[dataset]
    return tuple(dataset_class.METAINFO["classes"])
