"""What load_encoder reads from a checkpoint folder beyond the weights."""
from __future__ import annotations

import json
import logging

import pytest
import torch

from probes import load_encoder
from probes.testing.checkpoints import random_internvit, save_chat_folder, save_hf_folder, tiny_config


@pytest.fixture()
def six_block_folder(tmp_path):
    cfg = tiny_config("6b", num_hidden_layers=6)
    model = random_internvit(cfg, seed=1)
    return cfg, model, save_hf_folder(model.state_dict(), cfg, tmp_path / "six", shards=2)


def test_num_layers_uses_the_first_blocks_and_says_so(six_block_folder, caplog):
    cfg, full, folder = six_block_folder
    with caplog.at_level(logging.INFO, logger="probes"):
        encoder = load_encoder(folder, num_layers=4)
    assert encoder.num_layers == 4
    assert "dropping blocks 4-5 of 6" in caplog.text
    images = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        _, blocks = full.forward_intermediates(images, indices=[3], output_fmt="NLC", return_prefix_tokens=True)
        patches, cls = blocks[0]
        assert torch.allclose(encoder.forward_features(images), torch.cat([cls, patches], 1), atol=1e-6)


def test_architecture_comes_from_config_json(tmp_path):
    """A user's own checkpoint of this architecture (any width/depth) loads with no code change."""
    cfg = tiny_config("300m", hidden_size=64, num_attention_heads=8, num_hidden_layers=3, image_size=42)
    folder = save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "mine")
    encoder = load_encoder(folder)
    assert (encoder.embed_dim, encoder.num_heads, encoder.num_layers) == (64, 8, 3)
    assert encoder.data_config["input_size"] == (3, 42, 42)
    assert encoder.version == "custom"


def test_chat_config_reads_vision_config_and_skips_the_llm(tmp_path):
    cfg = tiny_config("6b")
    folder = save_chat_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "chat")
    assert "vision_config" in json.loads((folder / "config.json").read_text())
    encoder = load_encoder(folder)
    assert encoder.num_layers == cfg.num_hidden_layers
    assert not any(name.startswith(("mlp1", "language_model")) for name, _ in encoder.named_parameters())


def test_preprocessing_is_read_from_preprocessor_config(tmp_path):
    cfg = tiny_config("300m")
    folder = save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "hf")
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": {"height": 42, "width": 42}, "size": {"shortest_edge": 48}, "resample": 2,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    config = load_encoder(folder).data_config
    assert config["input_size"] == (3, 42, 42)
    assert config["interpolation"] == "bilinear"
    assert config["mean"] == (0.5, 0.5, 0.5) and config["std"] == (0.25, 0.25, 0.25)
    assert config["crop_pct"] == pytest.approx(42 / 48)


def test_default_preprocessing_is_imagenet_bicubic_full_crop(tmp_path):
    cfg = tiny_config("6b")
    folder = save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "hf")
    (folder / "preprocessor_config.json").unlink()
    config = load_encoder(folder).data_config
    assert config["mean"] == (0.485, 0.456, 0.406) and config["std"] == (0.229, 0.224, 0.225)
    assert config["interpolation"] == "bicubic" and config["crop_pct"] == 1.0


def test_frozen_by_default_trainable_on_request(tmp_path):
    cfg = tiny_config("300m")
    folder = save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "hf")
    frozen = load_encoder(folder)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    trainable = load_encoder(folder, trainable=True, drop_path_rate=0.2)
    assert trainable.training and all(p.requires_grad for p in trainable.parameters())
    assert trainable.blocks[-1].drop_path1.drop_prob == pytest.approx(0.2)
    assert isinstance(trainable.blocks[0].drop_path1, torch.nn.Identity)  # rate 0 at the first block


def test_version_name_with_weights_argument(tmp_path, monkeypatch):
    from probes.encoders.versions import VERSIONS

    cfg = tiny_config("6b")
    monkeypatch.setitem(VERSIONS, "InternViT-Tiny-Test", cfg)
    folder = save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "hf")
    encoder = load_encoder("internvit-tiny-test", weights=folder)  # case and separators are forgiven
    assert encoder.version == "InternViT-Tiny-Test"


def test_timm_baseline_has_the_same_interface(tmp_path):
    import timm
    from safetensors.torch import save_file

    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    save_file(reference.state_dict(), str(tmp_path / "model.safetensors"))
    encoder = load_encoder("timm:vit_tiny_patch16_224", weights=tmp_path)
    assert (encoder.embed_dim, encoder.num_heads, encoder.patch_size, encoder.num_prefix_tokens) == (192, 3, 16, 1)
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(encoder.forward_features(images), reference.eval().forward_features(images))
        maps = encoder.forward_intermediates(images, indices=2, intermediates_only=True)
    assert [tuple(m.shape) for m in maps] == [(1, 192, 14, 14)] * 2
    assert encoder.version == "timm:vit_tiny_patch16_224"


def test_timm_convnet_tokens_are_flattened_maps():
    encoder = load_encoder("timm:resnet18")
    with torch.no_grad():
        tokens = encoder.forward_features(torch.randn(1, 3, 64, 64))
    assert tokens.shape == (1, 4, 512) and encoder.num_prefix_tokens == 0
