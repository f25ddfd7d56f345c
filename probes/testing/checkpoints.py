"""Write InternViT checkpoints in every layout users download, from a state dict in HF names."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import save_file

from probes.encoders.architecture import InternViTConfig
from probes.encoders.internvit import InternViT
from probes.encoders.preprocessing import IMAGENET_MEAN, IMAGENET_STD

StateDict = dict[str, torch.Tensor]

TINY = {
    "300m": dict(hidden_size=48, intermediate_size=192, num_hidden_layers=4, num_attention_heads=4,
                 image_size=56, qkv_bias=True, qk_normalization=False, norm_type="layer_norm",
                 initializer_factor=1.0),
    "6b": dict(hidden_size=48, intermediate_size=192, num_hidden_layers=4, num_attention_heads=4,
               image_size=56, qkv_bias=False, qk_normalization=True, norm_type="rms_norm",
               initializer_factor=0.1),
}


def tiny_config(style: str = "300m", **overrides) -> InternViTConfig:
    """A tiny InternViT architecture of the 300M (LayerNorm, qkv bias) or 6B (RMSNorm, qk-norm) style."""
    return InternViTConfig(**{**TINY[style], **overrides})


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter random values (norm scales near 1), so parity tests see every weight."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            is_scale = param.ndim == 1 and re.search(r"norm|layernorm|ln", name) and name.endswith("weight")
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            param.copy_(1.0 + 0.1 * noise if is_scale else 0.05 * noise)
    return module


def random_internvit(cfg: InternViTConfig, seed: int = 0) -> InternViT:
    """An InternViT with random weights."""
    return randomize_(InternViT(cfg), seed).eval()


def _write_config(folder: Path, config: dict) -> None:
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def write_preprocessor_config(folder: Path, image_size: int) -> None:
    """The `preprocessor_config.json` the official releases ship (CLIP processor, ImageNet stats)."""
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": image_size, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD), "resample": 3, "size": image_size}, indent=2))


def save_safetensors_shards(state: StateDict, folder: Path, shards: int = 1, prefix: str = "model",
                            groups: Optional[list[list[str]]] = None) -> list[Path]:
    """`model.safetensors`, or `model-0000N-of-0000M.safetensors` plus `model.safetensors.index.json`.

    Keys go round-robin over `shards` files unless `groups` lists each shard's keys.
    """
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in state.items()}
    if groups is None and shards == 1:
        save_file(state, str(folder / f"{prefix}.safetensors"), metadata={"format": "pt"})
        return [folder / f"{prefix}.safetensors"]
    keys = list(state)
    groups = groups if groups is not None else [keys[i::shards] for i in range(shards)]
    weight_map, paths = {}, []
    for i, group in enumerate(groups, start=1):
        name = f"{prefix}-{i:05d}-of-{len(groups):05d}.safetensors"
        save_file({k: state[k] for k in group}, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in group})
        paths.append(folder / name)
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / f"{prefix}.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return paths


def save_hf_folder(state: StateDict, cfg: InternViTConfig, folder: Path, shards: int = 1,
                   file_format: str = "safetensors", dtype: Optional[torch.dtype] = None) -> Path:
    """A Hugging Face InternViT folder: config.json, preprocessor_config.json and the weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    _write_config(folder, cfg.to_hf_dict())
    write_preprocessor_config(folder, cfg.image_size)
    if file_format == "bin":
        torch.save(state, folder / "pytorch_model.bin")
    else:
        save_safetensors_shards(state, folder, shards)
    return folder


def save_chat_folder(state: StateDict, cfg: InternViTConfig, folder: Path, shards: int = 2) -> Path:
    """An InternVL chat folder: the encoder under `vision_model.` in `shards` shards, then a shard of projector + LLM.

    (The published chat models shard the same way: whole shards hold only language-model weights.)
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    c = cfg.hidden_size
    vision = {f"vision_model.{k}": v for k, v in state.items()}
    rest = {"mlp1.0.weight": torch.ones(4 * c), "mlp1.1.weight": torch.zeros(16, 4 * c),
            "language_model.model.embed_tokens.weight": torch.zeros(32, 16)}
    _write_config(folder, {
        "architectures": ["InternVLChatModel"], "model_type": "internvl_chat", "select_layer": -1,
        "downsample_ratio": 0.5, "template": "internvl2_5", "vision_config": cfg.to_hf_dict(),
        "llm_config": {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 16, "vocab_size": 32}})
    write_preprocessor_config(folder, cfg.image_size)
    keys = list(vision)
    groups = [keys[i::shards] for i in range(shards)] + [list(rest)]
    save_safetensors_shards({**vision, **rest}, folder, groups=groups)
    return folder


# HF name -> InternVL repo .pth name, written out as a table (not derived from the loader's map).
_PTH_NAMES = {
    "embeddings.class_embedding": "cls_token",
    "embeddings.position_embedding": "pos_embed",
    "embeddings.patch_embedding.weight": "patch_embed.proj.weight",
    "embeddings.patch_embedding.bias": "patch_embed.proj.bias",
}


def save_internvl_pth(state: StateDict, path: Path, clip_projector: bool = True) -> Path:
    """The InternVL repo's `.pth`: `{'module': ...}` with `blocks.{i}` / `ls1.gamma` names."""
    out = {}
    for key, value in state.items():
        if key in _PTH_NAMES:
            out[_PTH_NAMES[key]] = value
            continue
        index, rest = re.match(r"encoder\.layers\.(\d+)\.(.*)", key).groups()
        rest = {"ls1": "ls1.gamma", "ls2": "ls2.gamma"}.get(rest, rest)
        out[f"blocks.{index}.{rest}"] = value
    if clip_projector:
        c = state["embeddings.class_embedding"].shape[-1]
        out.update({"clip_projector.norm1_q.weight": torch.ones(c),
                    "clip_projector.cross_attn.q.weight": torch.zeros(c, c)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"module": out}, path)
    return path


def write_tiny_hf_encoder(folder: Path, style: str = "300m", seed: int = 0, shards: int = 1, **overrides) -> Path:
    """A tiny random InternViT as a Hugging Face folder (the default encoder of tests and the demo)."""
    cfg = tiny_config(style, **overrides)
    return save_hf_folder(random_internvit(cfg, seed).state_dict(), cfg, Path(folder), shards=shards)


def write_hub_cache(cache: Path, repo_id: str, folder: Path, commit: Optional[str] = None, ref: str = "main",
                    names: Optional[list[str]] = None) -> str:
    """Put a folder's files (or only `names` of them) into a hub cache as huggingface_hub lays it out.

    Returns the commit.
    `models--ORG--NAME/blobs/<sha256>` holds each file once, `snapshots/<commit>/<name>` is a relative
    symlink to its blob, and `refs/<ref>` names the commit.
    """
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    commit = commit or hashlib.sha1(f"{repo_id}:{sorted(os.listdir(folder))}".encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in sorted(Path(folder).iterdir()):
        if names is not None and file.name not in names:
            continue
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(file, blob)
        link = snapshot / file.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path("..") / ".." / "blobs" / digest)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return commit
