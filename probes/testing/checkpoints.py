"""Write InternViT checkpoints in every layout users download, from a state dict in HF names."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import save_file

from probes.encoders.config import InternViTConfig
from probes.encoders.internvit import IMAGENET_MEAN, IMAGENET_STD, InternViT

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


def save_safetensors_shards(state: StateDict, folder: Path, shards: int = 1, prefix: str = "model") -> list[Path]:
    """`model.safetensors`, or `model-0000N-of-0000M.safetensors` plus `model.safetensors.index.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in state.items()}
    if shards == 1:
        save_file(state, str(folder / f"{prefix}.safetensors"), metadata={"format": "pt"})
        return [folder / f"{prefix}.safetensors"]
    keys = list(state)
    groups = [keys[i::shards] for i in range(shards)]
    weight_map, paths = {}, []
    for i, group in enumerate(groups, start=1):
        name = f"{prefix}-{i:05d}-of-{shards:05d}.safetensors"
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
    """An InternVL chat folder: the encoder under `vision_model.`, plus projector and LLM weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    c = cfg.hidden_size
    whole = {f"vision_model.{k}": v for k, v in state.items()}
    whole.update({"mlp1.0.weight": torch.ones(4 * c), "mlp1.1.weight": torch.zeros(16, 4 * c),
                  "language_model.model.embed_tokens.weight": torch.zeros(32, 16)})
    _write_config(folder, {
        "architectures": ["InternVLChatModel"], "model_type": "internvl_chat", "select_layer": -1,
        "downsample_ratio": 0.5, "template": "internvl2_5", "vision_config": cfg.to_hf_dict(),
        "llm_config": {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 16, "vocab_size": 32}})
    write_preprocessor_config(folder, cfg.image_size)
    save_safetensors_shards(whole, folder, shards)
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
