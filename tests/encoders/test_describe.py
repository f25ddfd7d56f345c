"""describe_source: shape, names and preprocessing from config files, never from weights."""
from __future__ import annotations

import dataclasses
import json

import pytest

from probes.encoders import EncoderInfo, describe_source
from probes.encoders.versions import VERSIONS
from probes.testing.checkpoints import random_internvit, save_chat_folder, save_hf_folder, tiny_config
from probes.testing.references import save_transformers_chat, transformers_reference


def _garbage_weights(folder):
    for shard in folder.glob("*.safetensors"):
        shard.write_bytes(b"not weights")


def test_a_hf_folder_without_reading_its_weights(tmp_path):
    cfg = tiny_config("300m", num_hidden_layers=3)
    folder = save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "mine")
    _garbage_weights(folder)  # describing must not read them
    info = describe_source(folder)
    assert (info.name, info.version, info.config_version) == ("mine", "custom", None)
    assert (info.embed_dim, info.num_layers, info.num_heads, info.patch_size) == (48, 3, 4, 14)
    assert info.image_size == (56, 56)
    assert info.mean == (0.485, 0.456, 0.406) and info.interpolation == "bicubic" and info.crop_pct == 1.0


def test_a_chat_folder_reads_its_vision_config(tmp_path):
    cfg = tiny_config("6b")
    info = describe_source(save_chat_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "chat"))
    assert (info.embed_dim, info.num_layers) == (48, 4)


def test_a_transformers_hf_folder(tmp_path):
    info = describe_source(save_transformers_chat(transformers_reference(tiny_config("300m")), tmp_path / "hf"))
    assert (info.embed_dim, info.num_layers, info.image_size) == (48, 4, (56, 56))


def test_a_published_architecture_gets_that_versions_configs(tmp_path, monkeypatch):
    cfg = tiny_config("6b")
    monkeypatch.setitem(VERSIONS, "InternViT-Tiny-Test", cfg)
    folder = save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "unnamed")
    assert describe_source(folder).config_version == "InternViT-Tiny-Test"
    assert describe_source(f"InternViT-Tiny-Test={folder}").name == "InternViT-Tiny-Test"


def test_preprocessor_config_is_read(tmp_path):
    cfg = tiny_config("300m")
    folder = save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "hf")
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    info = describe_source(folder)
    assert info.mean == (0.5, 0.5, 0.5) and info.std == (0.5, 0.5, 0.5)


def test_random_version_is_the_version_table():
    info = describe_source("random:InternViT-6B-224px")
    assert (info.embed_dim, info.num_layers, info.image_size) == (3200, 48, (224, 224))
    assert info.name == "random:InternViT-6B-224px"
    assert info.version == info.config_version == "InternViT-6B-224px"


def test_a_bare_version_is_described_without_weights():
    """`probes segment --encoder VERSION` with the weights given later (model.backbone.weights=...)."""
    info = describe_source("InternViT-6B-448px-V1.0")
    assert (info.name, info.config_version, info.num_layers, info.image_size) == (
        "InternViT-6B-448px-V1-0", "InternViT-6B-448px-V1-0", 48, (448, 448))


def test_the_short_positional_form_still_builds():
    info = EncoderInfo(48, 4, "custom")
    assert (info.embed_dim, info.num_layers, info.name, info.config_version) == (48, 4, "custom", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.embed_dim = 3
