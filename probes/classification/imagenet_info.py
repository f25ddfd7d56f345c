"""ImageNet class metadata read from the files timm ships in its wheel (``timm/data/_info/``).

The lists are never re-typed here: the sorted wnid list defines the 1000-way class index, and the
IN-A / IN-R index files give the 200 logits each of those sets is scored on.
"""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Dict, List, Tuple

NUM_CLASSES = 1000


def _info_text(name: str) -> str:
    # timm keeps these files as package data next to timm.data; importlib.resources finds them
    # inside an installed wheel or a source checkout alike.
    return (resources.files("timm.data") / "_info" / name).read_text(encoding="utf-8")


def _lines(name: str) -> List[str]:
    return [line.strip() for line in _info_text(name).splitlines() if line.strip()]


@functools.lru_cache(maxsize=None)
def imagenet_wnids() -> Tuple[str, ...]:
    """The 1000 ImageNet-1K wnids in sorted order (position = class index)."""
    wnids = tuple(_lines("imagenet_synsets.txt"))
    if len(wnids) != NUM_CLASSES or list(wnids) != sorted(wnids):
        raise RuntimeError("timm's imagenet_synsets.txt is not the sorted list of 1000 wnids")
    return wnids


@functools.lru_cache(maxsize=None)
def wnid_to_index() -> Dict[str, int]:
    """Map each ImageNet-1K wnid to its sorted-wnid class index."""
    return {wnid: i for i, wnid in enumerate(imagenet_wnids())}


@functools.lru_cache(maxsize=None)
def lemmas() -> Tuple[str, ...]:
    """Human-readable class names (first lemma of each synset) in class-index order."""
    table = {}
    for line in _lines("imagenet_synset_to_lemma.txt"):
        wnid, _, text = line.partition("\t")
        table[wnid] = text.split(",")[0].strip()
    return tuple(table[w] for w in imagenet_wnids())


def _subset_indices(prefix: str) -> Tuple[int, ...]:
    indices = tuple(int(x) for x in _lines(f"{prefix}_indices.txt"))
    synsets = _lines(f"{prefix}_synsets.txt")
    # The two files must agree with the 1000-class list; a mismatch would silently mis-score.
    lookup = wnid_to_index()
    if [lookup[w] for w in synsets] != list(indices):
        raise RuntimeError(f"timm's {prefix}_indices.txt and {prefix}_synsets.txt disagree")
    return indices


@functools.lru_cache(maxsize=None)
def imagenet_a_indices() -> Tuple[int, ...]:
    """The 200 class indices (sorted) of ImageNet-A."""
    return _subset_indices("imagenet_a")


@functools.lru_cache(maxsize=None)
def imagenet_r_indices() -> Tuple[int, ...]:
    """The 200 class indices (sorted) of ImageNet-R."""
    return _subset_indices("imagenet_r")


@functools.lru_cache(maxsize=None)
def bundled_real_labels() -> Tuple[Tuple[int, ...], ...]:
    """The ReaL label lists shipped by timm: entry i belongs to ILSVRC2012_val_{i+1:08d}.JPEG."""
    return tuple(tuple(x) for x in json.loads(_info_text("imagenet_real_labels.json")))
