"""timm baselines: tags pick their preprocessing and hub weights; without weights, the same seeded weights."""
from __future__ import annotations

import logging

import pytest
import timm
import torch
from safetensors.torch import save_file

from probes import load_encoder
from probes.encoders import describe_source
from probes.errors import EncoderSourceError
from probes.testing.checkpoints import write_hub_cache

TAGGED = "vit_tiny_patch16_224.augreg_in21k"  # 5.7M parameters; hub repo timm/vit_tiny_patch16_224.augreg_in21k


@pytest.fixture()
def offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"


def test_a_tag_loads_its_weights_from_the_hub_cache(offline_cache, tmp_path):
    reference = timm.create_model(TAGGED, pretrained=False).eval()  # with its 21k-class head, as published
    (tmp_path / "repo").mkdir()
    save_file(reference.state_dict(), str(tmp_path / "repo" / "model.safetensors"))
    write_hub_cache(offline_cache, f"timm/{TAGGED}", tmp_path / "repo")
    encoder = load_encoder(f"timm:{TAGGED}")
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(encoder.forward_features(images), reference.forward_features(images))
    assert encoder.name == encoder.version == f"timm:{TAGGED}"
    assert len(encoder.fingerprint) == 12


def test_a_tag_not_in_the_cache_offline_is_one_line(offline_cache):
    with pytest.raises(EncoderSourceError) as err:
        load_encoder(f"timm:{TAGGED}")
    assert "\n" not in str(err.value) and f"`hf download timm/{TAGGED}`" in str(err.value)


def test_a_tag_sets_the_preprocessing():
    clip = describe_source("timm:vit_base_patch16_clip_224.openai")
    dino = describe_source("timm:vit_large_patch14_dinov2.lvd142m")
    assert clip.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073)) and clip.crop_pct == 0.9
    assert dino.mean == pytest.approx((0.485, 0.456, 0.406)) and dino.image_size == (518, 518)
    assert (dino.embed_dim, dino.num_layers, dino.patch_size) == (1024, 24, 14)


def test_an_unknown_tag_lists_the_known_ones():
    with pytest.raises(EncoderSourceError, match="has no pretrained tag 'nope'.*augreg_in21k"):
        describe_source("timm:vit_tiny_patch16_224.nope")


def test_siglip_without_weights_reports_its_half_half_normalisation(caplog):
    info = describe_source("timm:vit_base_patch16_siglip_224")
    assert (info.mean, info.std) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    with caplog.at_level(logging.WARNING):
        encoder = load_encoder("timm:vit_base_patch16_siglip_224")
    assert (encoder.data_config["mean"], encoder.data_config["std"]) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert "seeded random initialisation" in caplog.text


def test_without_weights_every_load_has_the_same_seeded_weights():
    torch.manual_seed(123)  # the caller's RNG state does not matter...
    first = load_encoder("timm:vit_tiny_patch16_224")
    after = torch.rand(1)
    torch.manual_seed(456)
    second = load_encoder("timm:vit_tiny_patch16_224")
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    assert first.fingerprint == second.fingerprint and len(first.fingerprint) == 12
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), after)  # ...and is left as it was


def test_describing_prints_no_weights_warning(caplog, tmp_path):
    """describe_source builds on the meta device; only a real weightless load warns."""
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    with caplog.at_level(logging.WARNING):
        describe_source("timm:vit_tiny_patch16_224")
        load_encoder("timm:vit_tiny_patch16_224", weights=tmp_path)
    assert "no weights" not in caplog.text


def test_nan_in_timm_weights_is_refused(tmp_path):
    from probes.errors import CheckpointError

    state = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).state_dict()
    state["blocks.3.mlp.fc2.weight"][0, 0] = float("nan")
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="blocks.3.mlp.fc2.weight hold NaN or Inf"):
        load_encoder("timm:vit_tiny_patch16_224", weights=tmp_path)
