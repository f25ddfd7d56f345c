"""Key layouts of the checkpoints users download, each mapped onto `InternViT`'s own names.

A mapping returns the `Target` of a checkpoint key (the model key, and which block of its rows
the tensor fills: transformers stores q, k and v apart where InternViT has one qkv), or None
for a key that is not part of the encoder (language model, projector) and is skipped on purpose.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Iterable, NamedTuple, Optional

from probes.errors import CheckpointError


class Target(NamedTuple):
    """Where one checkpoint tensor goes: a model key, and which of `parts` equal row blocks of it."""

    name: str
    part: int = 0
    parts: int = 1


KeyMap = Callable[[str], Optional[Target]]

_CHAT_PREFIX = "vision_model."
_HF_TOWER = re.compile(r"^(model\.)?vision_tower\.")
_PTH_BLOCK = re.compile(r"^blocks\.(\d+)\.(.*)$")
_PTH_RENAMES = {
    "cls_token": "embeddings.class_embedding",
    "pos_embed": "embeddings.position_embedding",
    "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
    "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
}
_TF_BLOCK = re.compile(r"^encoder\.layer\.(\d+)\.(.*)$")
_TF_QKV = re.compile(r"^attention\.([qkv])_proj\.(weight|bias)$")
_TF_RENAMES = {
    "embeddings.cls_token": "embeddings.class_embedding",
    "embeddings.position_embeddings": "embeddings.position_embedding",
    "embeddings.patch_embeddings.projection.weight": "embeddings.patch_embedding.weight",
    "embeddings.patch_embeddings.projection.bias": "embeddings.patch_embedding.bias",
    "layernorm.weight": "final_norm.weight",  # only when use_mean_pooling=false
    "layernorm.bias": "final_norm.bias",
}
_TF_SKIPPED = {"embeddings.mask_token"}  # masked-image-modelling token, unused by a forward pass
_TF_BLOCK_RENAMES = {
    "attention.q_norm.weight": "attn.q_norm.weight", "attention.k_norm.weight": "attn.k_norm.weight",
    "attention.projection_layer.weight": "attn.proj.weight", "attention.projection_layer.bias": "attn.proj.bias",
    "layernorm_before.weight": "norm1.weight", "layernorm_before.bias": "norm1.bias",
    "layernorm_after.weight": "norm2.weight", "layernorm_after.bias": "norm2.bias",
    "lambda_1": "ls1", "lambda_2": "ls2",
}


def hf_key(key: str) -> Optional[Target]:
    """Hugging Face `InternVisionModel` folders already use the model's names."""
    return Target(key)


def chat_key(key: str) -> Optional[Target]:
    """InternVL chat checkpoints: the encoder sits under `vision_model.`; the rest is skipped."""
    return Target(key[len(_CHAT_PREFIX):]) if key.startswith(_CHAT_PREFIX) else None


def internvl_pth_key(key: str) -> Optional[Target]:
    """The InternVL repo's classification/segmentation `.pth` (timm-like names, `ls1.gamma`)."""
    if key.startswith("clip_projector."):  # the 6B-224px file's CLIP head: not the encoder
        return None
    if key in _PTH_RENAMES:
        return Target(_PTH_RENAMES[key])
    match = _PTH_BLOCK.match(key)
    if match:
        index, rest = match.groups()
        rest = {"ls1.gamma": "ls1", "ls2.gamma": "ls2"}.get(rest, rest)
        return Target(f"encoder.layers.{index}.{rest}")
    return Target(key)  # left as is: reported as unexpected if the model has no such key


def transformers_key(key: str) -> Optional[Target]:
    """transformers' `InternVLVisionModel.save_pretrained`: q/k/v apart, `lambda_1`, `layernorm_before`."""
    if key in _TF_SKIPPED:
        return None
    if key in _TF_RENAMES:
        return Target(_TF_RENAMES[key])
    match = _TF_BLOCK.match(key)
    if not match:
        return Target(key)
    index, rest = match.groups()
    qkv = _TF_QKV.match(rest)
    if qkv:  # q, k, v rows stacked in that order are InternViT's (three, heads, head_dim) qkv rows
        which, leaf = qkv.groups()
        return Target(f"encoder.layers.{index}.attn.qkv.{leaf}", "qkv".index(which), 3)
    return Target(f"encoder.layers.{index}.{_TF_BLOCK_RENAMES.get(rest, rest)}")


def transformers_chat_key(key: str) -> Optional[Target]:
    """transformers' `InternVLModel` / `InternVLForConditionalGeneration` (the `-hf` repos): the vision tower."""
    match = _HF_TOWER.match(key)
    return transformers_key(key[match.end():]) if match else None


LAYOUTS: dict[str, KeyMap] = {
    "huggingface": hf_key, "internvl-chat": chat_key, "internvl-pth": internvl_pth_key,
    "transformers": transformers_key, "transformers-hf": transformers_chat_key,
}
# What a block key of each layout looks like: detection needs one such key.
_SIGNATURES = {
    "internvl-chat": re.compile(r"^vision_model\.encoder\.layers\.\d+\.attn\.(qkv|proj)\."),
    "transformers-hf": re.compile(
        r"^(model\.)?vision_tower\.encoder\.layer\.\d+\.attention\.(q_proj|projection_layer)\."),
    "transformers": re.compile(r"^encoder\.layer\.\d+\.attention\.(q_proj|projection_layer)\."),
    "internvl-pth": re.compile(r"^blocks\.\d+\.attn\.(qkv|proj)\."),
    "huggingface": re.compile(r"^encoder\.layers\.\d+\.attn\.(qkv|proj)\."),
}
# One typical key per layout, for messages and for guessing the nearest layout of unknown keys.
EXAMPLES = {
    "huggingface": ("embeddings.class_embedding", "embeddings.patch_embedding.weight",
                    "encoder.layers.0.attn.qkv.weight", "encoder.layers.0.attn.q_norm.weight",
                    "encoder.layers.0.norm1.weight", "encoder.layers.0.mlp.fc1.weight", "encoder.layers.0.ls1"),
    "internvl-chat": ("vision_model.embeddings.class_embedding", "vision_model.encoder.layers.0.attn.qkv.weight",
                      "vision_model.encoder.layers.0.norm1.weight", "vision_model.encoder.layers.0.ls1",
                      "mlp1.0.weight", "language_model.model.embed_tokens.weight"),
    "internvl-pth": ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight",
                     "blocks.0.norm1.weight", "blocks.0.mlp.fc1.weight", "blocks.0.ls1.gamma"),
    "transformers": ("embeddings.cls_token", "embeddings.patch_embeddings.projection.weight",
                     "encoder.layer.0.attention.q_proj.weight", "encoder.layer.0.attention.projection_layer.weight",
                     "encoder.layer.0.layernorm_before.weight", "encoder.layer.0.mlp.fc1.weight",
                     "encoder.layer.0.lambda_1"),
    "transformers-hf": ("vision_tower.embeddings.cls_token", "vision_tower.encoder.layer.0.attention.q_proj.weight",
                        "vision_tower.encoder.layer.0.lambda_1", "multi_modal_projector.linear_1.weight",
                        "language_model.model.embed_tokens.weight"),
}
_NUMBERED = re.compile(r"^((?:[^.]+\.)*?)(\d+)\.(.+)$")


def find_layout(keys: Iterable[str]) -> Optional[str]:
    """The layout a set of checkpoint keys follows, or None when it is none of ours."""
    keys = list(keys)
    return next((name for name, pattern in _SIGNATURES.items() if any(pattern.match(k) for k in keys)), None)


def _tokens(keys: Iterable[str]) -> set[str]:
    return {part for key in keys for part in re.split(r"[._]", key) if part and not part.isdigit()}


def nearest_layout(keys: Iterable[str]) -> str:
    """The known layout whose names share the most words with `keys` (Jaccard over name words)."""
    words = _tokens(keys)
    return max(EXAMPLES, key=lambda name: len(words & _tokens(EXAMPLES[name])) / len(words | _tokens(EXAMPLES[name])))


def looks_like(keys: list[str]) -> str:
    """A few words on an unknown key set: where its numbered blocks sit, with one example."""
    numbered = [m for m in map(_NUMBERED.match, keys) if m]
    if not numbered:
        return f"{len(keys)} tensors without numbered blocks, e.g. '{sorted(keys)[0]}'" if keys else "no tensors"
    prefix, _ = Counter(m.group(1) for m in numbered).most_common(1)[0]
    blocks = {int(m.group(2)) for m in numbered if m.group(1) == prefix}
    example = sorted(m.group(0) for m in numbered if m.group(1) == prefix and m.group(2) == str(min(blocks)))[0]
    return f"{len(blocks)} blocks under '{prefix}{{i}}.', e.g. '{example}'"


def detect_layout(keys: Iterable[str], where: str) -> str:
    """The layout of a checkpoint's keys; keys of no known layout are one clear error naming the nearest."""
    keys = list(keys)
    layout = find_layout(keys)
    if layout is None:
        near = nearest_layout(keys)
        sample = next(k for k in EXAMPLES[near] if ".0." in k)
        raise CheckpointError(
            f"checkpoint {where} is in no known InternViT layout: it holds {looks_like(keys)}; the nearest "
            f"known layout is {near} (keys like '{sample}')")
    return layout


def encoder_keys(keys: Iterable[str], where: str) -> dict[str, Target]:
    """The keys of a checkpoint that belong to the encoder, with where each goes."""
    keys = list(keys)
    key_map = LAYOUTS[detect_layout(keys, where)]
    return {key: target for key in keys if (target := key_map(key)) is not None}
