"""The two published probe heads: linear (class token ⊕ mean patch) and attention pooling."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from probes.batchnorm import GlobalBatchNorm
from probes.results import PROBES


def linear_input(tokens: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """(B, T, C) tokens -> the linear probe's input: class token ⊕ mean of patch tokens (B, 2C).

    Encoders without a class token (timm convnets) give the mean patch token alone (B, C).
    """
    patches = tokens[:, num_prefix_tokens:]
    mean = patches.mean(dim=1)
    if num_prefix_tokens == 0:
        return mean
    return torch.cat([tokens[:, 0], mean], dim=1)


def _classifier(in_dim: int, num_classes: int) -> nn.Linear:
    """The released classifier: Linear with normal(0, 0.01) weights and zero bias."""
    fc = nn.Linear(in_dim, num_classes)
    nn.init.normal_(fc.weight, std=0.01)
    nn.init.zeros_(fc.bias)
    return fc


class LinearHead(nn.Module):
    """SyncBatchNorm(D, eps 1e-6) -> Linear(D, classes), weights normal(0, 0.01), zero bias.

    The norm uses the global batch's statistics under torchrun, as the released SyncBatchNorm does.
    """

    def __init__(self, in_dim: int, num_classes: int = 1000) -> None:
        super().__init__()
        self.norm = GlobalBatchNorm(in_dim, eps=1e-6)
        self.fc = _classifier(in_dim, num_classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, D) pooled features -> (B, classes) logits."""
        return self.fc(self.norm(pooled))


class AttentionPoolingHead(nn.Module):
    """One cross-attention block whose single query is the mean of all tokens, then BN + Linear."""

    def __init__(self, dim: int, num_heads: int, num_classes: int = 1000) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention pooling: dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        # Separate norms for the query, key and value inputs, as in the released probe.
        self.norm_q = nn.LayerNorm(dim, eps=1e-5)
        self.norm_k = nn.LayerNorm(dim, eps=1e-5)
        self.norm_v = nn.LayerNorm(dim, eps=1e-5)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        # Learned biases kept apart from the projections and started at zero (released layout).
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.k_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)
        self.norm = GlobalBatchNorm(dim, eps=1e-6)   # global-batch statistics, as the released SyncBatchNorm
        self.fc = _classifier(dim, num_classes)

    def pool(self, tokens: torch.Tensor, normalized: Optional[torch.Tensor] = None,
             mean: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, T, C) tokens -> (B, C) attention-pooled feature.

        Computes exactly LayerNorm -> projection -> one-query attention, rearranged for speed:
        - with one query, the key/value projections move to the query side:
          q·(W_k x_t) = (W_kᵀ q)·x_t, and since the weights a_t sum to 1,
          Σ_t a_t W_v x_t = W_v Σ_t a_t x_t: O(T·C·heads + C²) per image instead of O(T·C²);
        - LayerNorm(x) = γ ⊙ x̂ + β, and x̂ (the affine-free normalisation) is the same for every
          attention head of a sweep, so it may be passed in once (``normalized``); γ and β fold
          into the query-side vectors. Terms constant over tokens cancel in the softmax.
        - the query's input, the mean of all tokens, is also the same for every head (``mean``).
        This is what lets 16 heads ride on one backbone pass almost for free.
        """
        b, t, c = tokens.shape
        h = self.num_heads
        d = c // h
        if normalized is None:
            normalized = normalize_tokens(tokens, self.norm_k.eps)
        query = token_mean(tokens) if mean is None else mean
        q = F.linear(self.norm_q(query), self.q.weight, self.q_bias).view(b, h, d)
        # Keys: q·(W_k (γ_k ⊙ x̂_t + β_k) + b_k) = ((W_kᵀ q) ⊙ γ_k)·x̂_t + (terms equal for all t).
        q_on_keys = torch.einsum("bhd,hdc->bhc", q, self.k.weight.view(h, d, c)) * self.norm_k.weight
        # The token-independent part q·(W_k β_k + b_k) cancels in the softmax; it is still added so
        # that every parameter takes part (zero gradient), as DDP expects and as the textbook form.
        key_shift = F.linear(self.norm_k.bias, self.k.weight, self.k_bias).view(h, d)
        scores = torch.einsum("bhc,btc->bht", q_on_keys, normalized) + (q * key_shift).sum(-1, keepdim=True)
        scores = scores * d ** -0.5
        attn = scores.softmax(dim=-1)
        # Values: Σ_t a_t (W_v (γ_v ⊙ x̂_t + β_v) + b_v) = W_v (γ_v ⊙ Σ_t a_t x̂_t + β_v) + b_v.
        mixed = torch.einsum("bht,btc->bhc", attn, normalized) * self.norm_v.weight + self.norm_v.bias
        out = torch.einsum("bhc,hdc->bhd", mixed, self.v.weight.view(h, d, c)) + self.v_bias.view(h, d)
        return self.proj(out.reshape(b, c))

    def forward(self, tokens: torch.Tensor, normalized: Optional[torch.Tensor] = None,
                mean: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, T, C) tokens -> (B, classes) logits (``normalized``, ``mean``: see ``token_summaries``)."""
        return self.fc(self.norm(self.pool(tokens, normalized, mean)))


def normalize_tokens(tokens: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm without its affine part, shared by every attention-pooling head of a sweep."""
    return F.layer_norm(tokens, tokens.shape[-1:], eps=eps)


def token_mean(tokens: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, C): the attention-pooling query's input, the mean of all tokens (class token included)."""
    return tokens.mean(dim=1)


def token_summaries(tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """What every attention-pooling head of a sweep reads alike from one token batch: (normalized, mean).

    Computed once per batch and passed to each head, it gives each head exactly the tensors it would
    compute alone (the same ops on the same input), once instead of once per head.
    """
    return normalize_tokens(tokens), token_mean(tokens)


def build_head(probe: str, embed_dim: int, num_heads: int, num_prefix_tokens: int,
               num_classes: int = 1000) -> nn.Module:
    """One probe head for an encoder of width ``embed_dim`` with ``num_heads`` attention heads."""
    if probe == "linear":
        in_dim = 2 * embed_dim if num_prefix_tokens > 0 else embed_dim
        return LinearHead(in_dim, num_classes)
    if probe == "attention_pooling":
        return AttentionPoolingHead(embed_dim, num_heads, num_classes)
    raise ValueError(f"unknown probe {probe!r}; choose from {PROBES}")
