"""Independent InternViT implementations from installed packages, with their weights in HF names.

transformers' `InternVLVisionModel` (both styles) and timm's `vit_intern300m_patch14_448`
(300M style) are built with random weights; their state dicts are mapped to the Hugging Face
InternViT layout here, so our loader can be checked against them layout by layout. transformers'
own `save_pretrained` writes the transformers layouts (docs/encoders.md, sources: a folder written by
transformers), so those folders come from the library itself rather than from our understanding of it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from probes.encoders.architecture import InternViTConfig
from probes.testing.checkpoints import randomize_

StateDict = dict[str, torch.Tensor]


def transformers_reference(cfg: InternViTConfig, seed: int = 0, attn: str = "eager"):
    """transformers' InternVLVisionModel with random weights (a test/benchmark-only dependency)."""
    from transformers import InternVLVisionConfig, InternVLVisionModel

    config = InternVLVisionConfig(
        hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        attention_bias=cfg.qkv_bias, use_qk_norm=cfg.qk_normalization, norm_type=cfg.norm_type,
        layer_norm_eps=cfg.layer_norm_eps, image_size=cfg.image_size, patch_size=cfg.patch_size,
        layer_scale_init_value=cfg.initializer_factor, use_mean_pooling=not cfg.final_norm, hidden_act="gelu")
    config._attn_implementation = attn
    return randomize_(InternVLVisionModel(config), seed).eval()


def save_transformers_vision(model, folder: Path, max_shard_size: str | None = None) -> Path:
    """`InternVLVisionModel.save_pretrained`: the transformers vision layout (q/k/v apart, `lambda_1`)."""
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(str(folder), **kwargs)
    return Path(folder)


def save_transformers_chat(vision_model, folder: Path, wrapper: str = "generation",
                           max_shard_size: str | None = None) -> Path:
    """A whole `-hf` chat model (tiny Qwen2 LLM) around `vision_model`'s weights, saved by transformers.

    `wrapper` is "generation" (InternVLForConditionalGeneration, as the -hf repos) or "model" (InternVLModel).
    """
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLModel, Qwen2Config

    text = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=1, vocab_size=64)
    config = InternVLConfig(vision_config=vision_model.config, text_config=text, image_token_id=5)
    whole = (InternVLForConditionalGeneration if wrapper == "generation" else InternVLModel)(config)
    tower = whole.model.vision_tower if wrapper == "generation" else whole.vision_tower
    tower.load_state_dict(vision_model.state_dict())
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    whole.save_pretrained(str(folder), **kwargs)
    return Path(folder)


def hf_state_from_transformers(model, cfg: InternViTConfig) -> StateDict:
    """transformers' names (separate q/k/v, `lambda_1`, `layernorm_before`) -> InternViT HF names."""
    src = model.state_dict()
    out = {
        "embeddings.class_embedding": src["embeddings.cls_token"],
        "embeddings.position_embedding": src["embeddings.position_embeddings"],
        "embeddings.patch_embedding.weight": src["embeddings.patch_embeddings.projection.weight"],
        "embeddings.patch_embedding.bias": src["embeddings.patch_embeddings.projection.bias"],
    }
    for i in range(cfg.num_hidden_layers):
        a, b = f"encoder.layer.{i}.", f"encoder.layers.{i}."
        out[b + "attn.qkv.weight"] = torch.cat([src[a + f"attention.{p}_proj.weight"] for p in "qkv"])
        if cfg.qkv_bias:
            out[b + "attn.qkv.bias"] = torch.cat([src[a + f"attention.{p}_proj.bias"] for p in "qkv"])
        if cfg.qk_normalization:
            out[b + "attn.q_norm.weight"] = src[a + "attention.q_norm.weight"]
            out[b + "attn.k_norm.weight"] = src[a + "attention.k_norm.weight"]
        for ours, theirs in (("attn.proj", "attention.projection_layer"), ("mlp.fc1", "mlp.fc1"),
                             ("mlp.fc2", "mlp.fc2"), ("norm1", "layernorm_before"), ("norm2", "layernorm_after")):
            for leaf in ("weight", "bias"):
                if a + f"{theirs}.{leaf}" in src:
                    out[b + f"{ours}.{leaf}"] = src[a + f"{theirs}.{leaf}"]
        out[b + "ls1"], out[b + "ls2"] = src[a + "lambda_1"], src[a + "lambda_2"]
    return {k: v.detach().clone() for k, v in out.items()}


def timm_reference(cfg: InternViTConfig, seed: int = 0):
    """timm's `vit_intern300m_patch14_448` architecture at `cfg`'s size, random weights (300M style)."""
    import timm

    if cfg.norm_type != "layer_norm" or cfg.qk_normalization or not cfg.qkv_bias:
        raise ValueError("timm's vit_intern300m covers only the 300M style (LayerNorm, qkv bias, no qk-norm)")
    model = timm.create_model(
        "vit_intern300m_patch14_448", pretrained=False, num_classes=0, img_size=cfg.image_size,
        patch_size=cfg.patch_size, embed_dim=cfg.hidden_size, depth=cfg.num_hidden_layers,
        num_heads=cfg.num_attention_heads, mlp_ratio=cfg.intermediate_size / cfg.hidden_size,
        init_values=cfg.initializer_factor)
    return randomize_(model, seed).eval()


def _timm_names(cfg: InternViTConfig) -> list[tuple[str, str]]:
    """(timm name, InternViT HF name) for every tensor of the 300M-style encoder."""
    pairs = [("cls_token", "embeddings.class_embedding"), ("pos_embed", "embeddings.position_embedding"),
             ("patch_embed.proj.weight", "embeddings.patch_embedding.weight"),
             ("patch_embed.proj.bias", "embeddings.patch_embedding.bias")]
    for i in range(cfg.num_hidden_layers):
        a, b = f"blocks.{i}.", f"encoder.layers.{i}."
        pairs += [(a + f"{name}.{leaf}", b + f"{name}.{leaf}")
                  for name in ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
                  for leaf in ("weight", "bias")]
        pairs += [(a + "ls1.gamma", b + "ls1"), (a + "ls2.gamma", b + "ls2")]
    return pairs


def hf_state_from_timm(model, cfg: InternViTConfig) -> StateDict:
    """timm's names (`cls_token`, `blocks.{i}`, `ls1.gamma`) -> InternViT HF names."""
    src = model.state_dict()
    return {hf: src[theirs].detach().clone() for theirs, hf in _timm_names(cfg)}


def timm_state_from_hf(state: StateDict, cfg: InternViTConfig) -> StateDict:
    """InternViT HF names -> timm's `vit_intern300m` names (the inverse of `hf_state_from_timm`)."""
    return {theirs: state[hf] for theirs, hf in _timm_names(cfg)}
