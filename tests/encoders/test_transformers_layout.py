"""Folders written by transformers' own InternVL classes (docs/encoders.md: a folder written by transformers)
load and match it."""
from __future__ import annotations

import json

import pytest
import torch

from probes import load_encoder
from probes.encoders.architecture import InternViTConfig
from probes.errors import CheckpointError
from probes.testing.checkpoints import tiny_config
from probes.testing.references import save_transformers_chat, save_transformers_vision, transformers_reference

from .conftest import reference_tokens

TOL = 1e-5
SIZES = [(56, 56), (70, 84)]


def _assert_matches(encoder, model) -> None:
    for size in SIZES:
        images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(size[1]))
        with torch.no_grad():
            ours = encoder.forward_features(images)
        theirs = reference_tokens(model, images)
        assert ours.shape == theirs.shape
        assert (ours - theirs).abs().max().item() <= TOL, size


def test_vision_model_saved_by_transformers_matches_it(reference, tmp_path):
    _, _, model, _ = reference
    encoder = load_encoder(save_transformers_vision(model, tmp_path / "vision"))
    _assert_matches(encoder, model)


def test_sharded_vision_model_streams_each_q_k_v_into_its_rows(reference, tmp_path):
    _, _, model, _ = reference
    folder = save_transformers_vision(model, tmp_path / "sharded", max_shard_size="40KB")
    assert len(list(folder.glob("model-*.safetensors"))) > 2
    _assert_matches(load_encoder(folder), model)


@pytest.mark.parametrize("wrapper", ["generation", "model"])
def test_whole_hf_chat_model_loads_its_vision_tower_only(reference, tmp_path, wrapper):
    _, _, model, _ = reference
    folder = save_transformers_chat(model, tmp_path / "chat", wrapper=wrapper)
    assert "text_config" in json.loads((folder / "config.json").read_text())
    encoder = load_encoder(folder)
    assert not any("language_model" in name or "projector" in name for name, _ in encoder.named_parameters())
    _assert_matches(encoder, model)


def test_model_prefixed_vision_tower_keys_load(reference, tmp_path):
    """Some -hf repos store the tower as `model.vision_tower.*` (transformers' in-memory names)."""
    from safetensors.torch import load_file, save_file

    _, _, model, _ = reference
    folder = save_transformers_chat(model, tmp_path / "chat")
    state = load_file(str(folder / "model.safetensors"))
    save_file({f"model.{k}" if k.startswith("vision_tower.") else k: v for k, v in state.items()},
              str(folder / "model.safetensors"))
    _assert_matches(load_encoder(folder), model)


def test_a_tower_stored_twice_is_refused(reference, tmp_path):
    from safetensors.torch import load_file, save_file

    _, _, model, _ = reference
    folder = save_transformers_chat(model, tmp_path / "chat")
    state = load_file(str(folder / "model.safetensors"))
    state["model.vision_tower.embeddings.cls_token"] = state["vision_tower.embeddings.cls_token"].clone()
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="vision_tower.embeddings.cls_token all fill embeddings.class_embedding"):
        load_encoder(folder)


@pytest.mark.parametrize("style", ["300m", "6b"])
def test_config_fields_of_transformers_are_read(style, tmp_path):
    cfg = tiny_config(style)
    folder = save_transformers_vision(transformers_reference(cfg, seed=3), tmp_path / "v")
    raw = json.loads((folder / "config.json").read_text())
    assert isinstance(raw["image_size"], list) and "qkv_bias" not in raw  # transformers' own spelling
    read = InternViTConfig.from_file(folder / "config.json")
    assert (read.qkv_bias, read.qk_normalization, read.norm_type) == (cfg.qkv_bias, cfg.qk_normalization, cfg.norm_type)
    assert (read.image_size, read.patch_size, read.initializer_factor) == (56, 14, cfg.initializer_factor)


def test_attention_bias_is_read_in_an_official_style_config_too():
    """A 300M-style config that spells the fields the transformers way is not read as 6B-style."""
    raw = {"hidden_size": 48, "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4,
           "attention_bias": True, "use_qk_norm": False, "norm_type": "layer_norm"}
    read = InternViTConfig.from_dict(raw)
    assert read.qkv_bias and not read.qk_normalization


def test_final_norm_of_use_mean_pooling_false_is_loaded_and_applied(tmp_path):
    cfg = tiny_config("300m", final_norm=True)
    model = transformers_reference(cfg, seed=4)
    assert not model.config.use_mean_pooling
    encoder = load_encoder(save_transformers_vision(model, tmp_path / "normed"))
    assert isinstance(encoder.final_norm, torch.nn.LayerNorm)
    _assert_matches(encoder, model)
    images = torch.randn(1, 3, 56, 56)
    with torch.no_grad():  # block maps stay un-normed unless asked (timm's convention)
        raw_map = encoder.forward_intermediates(images, indices=[3], intermediates_only=True)[0]
        normed_map = encoder.forward_intermediates(images, indices=[3], norm=True, intermediates_only=True)[0]
        tokens = encoder.forward_features(images)
    assert torch.allclose(normed_map, tokens[:, 1:].transpose(1, 2).reshape(1, 48, 4, 4), atol=1e-6)
    assert not torch.allclose(raw_map, normed_map)


def test_a_layout_we_do_not_know_is_one_line_naming_the_nearest(tmp_path):
    """E.g. a CLIP vision tower: no list of 100 keys, one sentence."""
    from safetensors.torch import save_file

    folder = tmp_path / "clip"
    folder.mkdir()
    state = {f"vision_model.encoder.layers.{i}.self_attn.{p}_proj.weight": torch.zeros(2, 2)
             for i in range(12) for p in "qkv"}
    state["vision_model.embeddings.class_embedding"] = torch.zeros(2)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(tiny_config("300m").to_hf_dict()))
    with pytest.raises(CheckpointError) as err:
        load_encoder(folder)
    message = str(err.value)
    assert "\n" not in message and len(message) < 400
    assert "12 blocks under 'vision_model.encoder.layers.{i}.'" in message
    assert "nearest known layout is" in message
