"""Our encoder equals independent InternViT implementations in float32, in every checkpoint layout."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from probes import load_encoder
from probes.encoders.versions import VERSIONS
from probes.testing.checkpoints import save_chat_folder, save_hf_folder, save_internvl_pth, tiny_config
from probes.testing.references import hf_state_from_timm, timm_reference

from .conftest import reference_tokens

TOL = 1e-5
TINY_VERSION = "InternViT-Tiny-Test"
SIZES = [(56, 56), (70, 84)]  # native, and a non-square size that resizes the position embedding


def _write(layout: str, state, cfg, folder):
    """Write `state` in one layout; return the source string load_encoder should accept."""
    if layout == "hf":
        return save_hf_folder(state, cfg, folder / "hf")
    if layout == "hf-sharded":
        return save_hf_folder(state, cfg, folder / "sharded", shards=3)
    if layout == "hf-bin":
        return save_hf_folder(state, cfg, folder / "bin", file_format="bin")
    if layout == "chat":
        return save_chat_folder(state, cfg, folder / "chat")
    if layout == "pth+version":  # the repo's .pth carries no architecture: a version name gives it
        return f"{TINY_VERSION}={save_internvl_pth(state, folder / 'ckpt.pth')}"
    if layout == "version+folder":  # a version name plus the local folder of its weights
        return f"{TINY_VERSION}={save_hf_folder(state, cfg, folder / 'named')}"
    raise ValueError(layout)


@pytest.mark.parametrize("layout", ["hf", "hf-sharded", "hf-bin", "chat", "pth+version", "version+folder"])
def test_matches_transformers_in_every_layout(reference, layout, tmp_path, monkeypatch):
    style, cfg, model, state = reference
    monkeypatch.setitem(VERSIONS, TINY_VERSION, cfg)  # a tiny architecture under a version name
    encoder = load_encoder(_write(layout, state, cfg, tmp_path))
    for size in SIZES:
        images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(size[1]))
        with torch.no_grad():
            ours = encoder.forward_features(images)
        theirs = reference_tokens(model, images)
        assert ours.shape == theirs.shape == (2, 1 + (size[0] // 14) * (size[1] // 14), cfg.hidden_size)
        assert (ours - theirs).abs().max().item() <= TOL, (style, layout, size)


def test_matches_timm_vit_intern300m(tmp_path):
    cfg = tiny_config("300m")
    timm_model = timm_reference(cfg, seed=5)
    encoder = load_encoder(save_hf_folder(hf_state_from_timm(timm_model, cfg), cfg, tmp_path / "hf"))
    images = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert (encoder.forward_features(images) - timm_model.forward_features(images)).abs().max() <= TOL


def test_matches_timm_at_a_non_square_size_with_the_official_resize(tmp_path):
    """timm's dynamic-size path antialiases the position embedding; the official code does not.

    So timm is built at 70x84 with the position embedding resized the official way
    (bicubic, align_corners=False, float32, class entry kept), written out here.
    """
    cfg = tiny_config("300m")
    native = timm_reference(cfg, seed=6)
    encoder = load_encoder(save_hf_folder(hf_state_from_timm(native, cfg), cfg, tmp_path / "hf"))
    import timm

    resized = timm.create_model(
        "vit_intern300m_patch14_448", pretrained=False, num_classes=0, img_size=(70, 84), patch_size=14,
        embed_dim=48, depth=4, num_heads=4, mlp_ratio=4.0, init_values=1.0, dynamic_img_size=False).eval()
    state = native.state_dict()
    grid = state["pos_embed"][:, 1:].reshape(1, 4, 4, 48).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(5, 6), mode="bicubic", align_corners=False)
    state["pos_embed"] = torch.cat([state["pos_embed"][:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
    resized.load_state_dict(state)
    images = torch.randn(2, 3, 70, 84)
    with torch.no_grad():
        assert (encoder.forward_features(images) - resized.forward_features(images)).abs().max() <= TOL


def test_bf16_weights_stay_close_to_float32(reference, tmp_path):
    """bf16 storage (the GPU default) runs and stays within bf16 rounding of the float32 result."""
    _, cfg, model, state = reference
    folder = save_hf_folder(state, cfg, tmp_path / "hf", dtype=torch.bfloat16)
    exact = load_encoder(folder, dtype="float32")
    half = load_encoder(folder, dtype="bfloat16")
    assert half.embeddings.patch_embedding.weight.dtype == torch.bfloat16
    images = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        diff = (half.forward_features(images).float() - exact.forward_features(images)).abs().max()
    assert diff < 0.15
