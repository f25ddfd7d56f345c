"""The published heads: shapes, parameter counts on the real 6B shape, initialisation, math."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from probes.runtime import count_trainable
from probes.classification.heads import (AttentionPoolingHead, LinearHead, build_head,
                                         linear_input)


def test_linear_probe_on_6b_has_6413800_trainable_params():
    with torch.device("meta"):
        head = build_head("linear", embed_dim=3200, num_heads=25, num_prefix_tokens=1)
    assert count_trainable(head) == 6_413_800
    assert head.norm.num_features == 6400 and head.norm.eps == 1e-6
    assert (head.fc.in_features, head.fc.out_features) == (6400, 1000)


def test_attention_pooling_on_6b_has_about_44_2m_params():
    with torch.device("meta"):
        head = build_head("attention_pooling", embed_dim=3200, num_heads=25, num_prefix_tokens=1)
    n = count_trainable(head)
    assert n == 44_199_400  # 3 LayerNorms, q/k/v (no bias) + 3 biases, proj, BN, Linear
    assert round(n / 1e6, 1) == 44.2
    assert head.num_heads == 25


def test_linear_init_is_normal_001_with_zero_bias():
    torch.manual_seed(0)
    head = LinearHead(512, 1000)
    assert abs(head.fc.weight.std().item() - 0.01) < 5e-4
    assert torch.count_nonzero(head.fc.bias) == 0


def test_attention_pooling_classifier_init_is_normal_001_with_zero_bias():
    torch.manual_seed(0)
    head = AttentionPoolingHead(64, 4, 1000)
    assert abs(head.fc.weight.std().item() - 0.01) < 5e-4 and abs(head.fc.weight.mean().item()) < 5e-4
    assert torch.count_nonzero(head.fc.bias) == 0


def test_both_heads_normalise_over_the_global_batch():
    from probes.batchnorm import GlobalBatchNorm

    for probe in ("linear", "attention_pooling"):
        head = build_head(probe, embed_dim=8, num_heads=2, num_prefix_tokens=1)
        assert isinstance(head.norm, GlobalBatchNorm) and head.norm.eps == 1e-6


def test_linear_input_is_class_token_and_mean_of_patches():
    tokens = torch.randn(2, 1 + 9, 8)
    out = linear_input(tokens, num_prefix_tokens=1)
    assert out.shape == (2, 16)
    torch.testing.assert_close(out[:, :8], tokens[:, 0])
    torch.testing.assert_close(out[:, 8:], tokens[:, 1:].mean(1))  # class token left out of the mean
    assert linear_input(tokens, num_prefix_tokens=0).shape == (2, 8)


def test_attention_pooling_biases_start_at_zero_and_projections_have_none():
    head = AttentionPoolingHead(48, 4)
    for name in ("q", "k", "v"):
        assert getattr(head, name).bias is None
        assert torch.count_nonzero(getattr(head, f"{name}_bias")) == 0
    assert head.proj.bias is not None
    assert head.norm_q.eps == 1e-5 and head.norm.eps == 1e-6


def test_attention_pooling_matches_torch_multihead_attention_with_mean_query():
    torch.manual_seed(0)
    dim, heads = 48, 4
    head = AttentionPoolingHead(dim, heads)
    for p in head.parameters():  # random everything, biases and norms included
        nn.init.normal_(p, std=0.2)
    tokens = torch.randn(3, 17, dim)
    ref = nn.MultiheadAttention(dim, heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([head.q.weight, head.k.weight, head.v.weight]))
        ref.in_proj_bias.copy_(torch.cat([head.q_bias, head.k_bias, head.v_bias]))
        ref.out_proj.weight.copy_(head.proj.weight)
        ref.out_proj.bias.copy_(head.proj.bias)
        query = tokens.mean(1, keepdim=True)  # all tokens, class token included
        expected, _ = ref(head.norm_q(query), head.norm_k(tokens), head.norm_v(tokens))
        torch.testing.assert_close(head.pool(tokens), expected[:, 0], rtol=1e-5, atol=1e-5)


def test_heads_map_to_1000_logits():
    tokens = torch.randn(4, 17, 48)
    lin = build_head("linear", 48, 4, 1).eval()
    att = build_head("attention_pooling", 48, 4, 1).eval()
    assert lin(linear_input(tokens, 1)).shape == (4, 1000)
    assert att(tokens).shape == (4, 1000)


def test_unknown_probe_is_rejected():
    with pytest.raises(ValueError, match="unknown probe"):
        build_head("mlp", 48, 4, 1)


def _reference_pool(head: AttentionPoolingHead, tokens: torch.Tensor) -> torch.Tensor:
    """The textbook form: LayerNorm, project every token to k and v, attend from the mean token."""
    b, t, c = tokens.shape
    h = head.num_heads
    q = head.q(head.norm_q(tokens.mean(1, keepdim=True))) + head.q_bias
    k = head.k(head.norm_k(tokens)) + head.k_bias
    v = head.v(head.norm_v(tokens)) + head.v_bias
    q, k, v = (x.reshape(b, -1, h, c // h).transpose(1, 2) for x in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    return head.proj(out.transpose(1, 2).reshape(b, c))


def test_rearranged_attention_pooling_has_the_textbook_gradients():
    torch.manual_seed(1)
    head = AttentionPoolingHead(32, 4)
    for p in head.parameters():
        nn.init.normal_(p, std=0.3)
    tokens = torch.randn(5, 9, 32)
    target = torch.randn(5, 32)
    grads = []
    for fn in (lambda: head.pool(tokens), lambda: _reference_pool(head, tokens)):
        head.zero_grad()
        ((fn() - target) ** 2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in head.named_parameters() if p.grad is not None})
    ours, ref = grads
    assert set(ours) == set(ref) == {n for n, _ in head.named_parameters() if not n.startswith(("norm.", "fc."))}
    for name, g in ref.items():
        torch.testing.assert_close(ours[name], g, rtol=1e-4, atol=1e-5)


def test_shared_normalisation_gives_the_same_logits():
    from probes.classification.heads import normalize_tokens

    head = AttentionPoolingHead(48, 4).eval()
    nn.init.normal_(head.norm_k.weight)
    nn.init.normal_(head.norm_v.bias)
    tokens = torch.randn(2, 17, 48)
    torch.testing.assert_close(head(tokens, normalize_tokens(tokens)), head(tokens))


def test_shared_token_summaries_give_bit_identical_logits_and_the_mean_is_the_query():
    from probes.classification.heads import token_summaries

    head = AttentionPoolingHead(48, 4).eval()
    nn.init.normal_(head.norm_k.weight)
    nn.init.normal_(head.norm_v.bias)
    tokens = torch.randn(2, 17, 48)
    normalized, mean = token_summaries(tokens)
    assert torch.equal(head(tokens, normalized, mean), head(tokens))   # what a head alone computes, bit for bit
    assert not torch.allclose(head(tokens, normalized, mean + 1.0), head(tokens))   # the passed mean is read
