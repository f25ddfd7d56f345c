"""The timm-style interface the probes rely on."""
from __future__ import annotations

import pytest
import torch

from probes.errors import InputSizeError
from probes.testing.checkpoints import random_internvit, tiny_config


@pytest.fixture(scope="module")
def encoder():
    return random_internvit(tiny_config("6b", num_hidden_layers=4), seed=2)


def test_attributes(encoder):
    assert (encoder.embed_dim, encoder.num_heads, encoder.patch_size) == (48, 4, 14)
    assert (encoder.num_layers, encoder.num_prefix_tokens) == (4, 1)


def test_forward_intermediates_selects_blocks_as_nchw(encoder):
    images = torch.randn(2, 3, 42, 70)
    with torch.no_grad():
        maps = encoder.forward_intermediates(images, indices=[0, -1], intermediates_only=True)
        tokens = encoder.forward_features(images)
        last_two = encoder.forward_intermediates(images, indices=2, intermediates_only=True)
    assert [tuple(m.shape) for m in maps] == [(2, 48, 3, 5)] * 2
    # The last map is the last block's patch tokens laid out row-major on the patch grid.
    assert torch.allclose(maps[1], tokens[:, 1:].transpose(1, 2).reshape(2, 48, 3, 5))
    assert torch.allclose(last_two[1], maps[1])


def test_forward_intermediates_without_only_returns_final_tokens_too(encoder):
    images = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        final, maps = encoder.forward_intermediates(images, indices=[1])
        assert torch.allclose(final, encoder.forward_features(images))
    assert len(maps) == 1


def test_input_not_a_multiple_of_the_patch_is_refused(encoder):
    with pytest.raises(InputSizeError, match="57x56 is not a multiple of the patch size 14"):
        encoder.forward_features(torch.randn(1, 3, 57, 56))


def test_prune_intermediate_layers_keeps_only_needed_blocks():
    model = random_internvit(tiny_config("300m", num_hidden_layers=4), seed=3)
    images = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        wanted = model.forward_intermediates(images, indices=[1], intermediates_only=True)[0]
        model.prune_intermediate_layers([1])
        assert model.num_layers == 2
        assert torch.allclose(model.forward_intermediates(images, indices=[1], intermediates_only=True)[0], wanted)


def test_gradient_checkpointing_gives_the_same_gradients():
    model = random_internvit(tiny_config("6b"), seed=4).train()
    images = torch.randn(2, 3, 28, 28)
    model.forward_features(images).square().mean().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model.forward_features(images).square().mean().backward()
    for expected, param in zip(plain, model.parameters()):
        assert torch.allclose(param.grad, expected, atol=1e-6)


def test_frozen_forward_keeps_no_autograd_graph(encoder):
    with torch.inference_mode():
        tokens = encoder.forward_features(torch.randn(1, 3, 28, 28))
    assert tokens.is_inference() and tokens.grad_fn is None


def test_qk_norm_spans_all_heads():
    """6B's q/k RMSNorm normalises the whole C vector of a token, not each head separately."""
    model = random_internvit(tiny_config("6b"), seed=5)
    attn = model.blocks[0].attn
    assert attn.q_norm.weight.shape == (48,)
    x = torch.randn(1, 3, 48)
    q = attn.qkv(x)[..., :48]
    whole = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + 1e-6) * attn.q_norm.weight
    assert torch.allclose(attn.q_norm(q), whole, atol=1e-6)
