"""Key layouts of the checkpoints users download, each mapped onto `InternViT`'s own names.

A mapping returns the model key for a checkpoint key, or None for a key that is not part of
the encoder (language model, projector) and is skipped on purpose.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable, Optional

KeyMap = Callable[[str], Optional[str]]

_CHAT_PREFIX = "vision_model."
_PTH_BLOCK = re.compile(r"^blocks\.(\d+)\.(.*)$")
_PTH_RENAMES = {
    "cls_token": "embeddings.class_embedding",
    "pos_embed": "embeddings.position_embedding",
    "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
    "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
}


def hf_key(key: str) -> Optional[str]:
    """Hugging Face `InternVisionModel` folders already use the model's names."""
    return key


def chat_key(key: str) -> Optional[str]:
    """InternVL chat checkpoints: the encoder sits under `vision_model.`; the rest is skipped."""
    return key[len(_CHAT_PREFIX):] if key.startswith(_CHAT_PREFIX) else None


def internvl_pth_key(key: str) -> Optional[str]:
    """The InternVL repo's classification/segmentation `.pth` (timm-like names, `ls1.gamma`)."""
    if key.startswith("clip_projector."):  # the 6B-224px file's CLIP head: not the encoder
        return None
    if key in _PTH_RENAMES:
        return _PTH_RENAMES[key]
    match = _PTH_BLOCK.match(key)
    if match:
        index, rest = match.groups()
        rest = {"ls1.gamma": "ls1", "ls2.gamma": "ls2"}.get(rest, rest)
        return f"encoder.layers.{index}.{rest}"
    return key  # left as is: reported as unexpected if the model has no such key


LAYOUTS: dict[str, KeyMap] = {"huggingface": hf_key, "internvl-chat": chat_key, "internvl-pth": internvl_pth_key}


def detect_layout(keys: Iterable[str]) -> str:
    """Name the layout a set of checkpoint keys follows."""
    keys = list(keys)
    if any(k.startswith(_CHAT_PREFIX) for k in keys):
        return "internvl-chat"
    if any(k in _PTH_RENAMES or _PTH_BLOCK.match(k) for k in keys):
        return "internvl-pth"
    return "huggingface"
