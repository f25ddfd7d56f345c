"""Tiny InternViT references (transformers / timm) and their weights in the HF layout."""
from __future__ import annotations

import pytest
import torch

from probes.testing.checkpoints import tiny_config
from probes.testing.references import hf_state_from_transformers, transformers_reference

STYLES = ("300m", "6b")


@pytest.fixture(scope="session", params=STYLES)
def reference(request):
    """(style, config, transformers model, state dict in HF InternViT names)."""
    cfg = tiny_config(request.param)
    model = transformers_reference(cfg, seed=7)
    return request.param, cfg, model, hf_state_from_transformers(model, cfg)


def reference_tokens(model, images: torch.Tensor) -> torch.Tensor:
    """All tokens after the last block, from transformers' InternVLVisionModel."""
    with torch.no_grad():
        return model(pixel_values=images).last_hidden_state
