"""InternViT (300M and 6B styles) with timm's encoder interface, in the Hugging Face key layout.

The module names reproduce the official `InternVisionModel` state-dict keys
(`embeddings.*`, `encoder.layers.{i}.*`), so Hugging Face checkpoints load with no renaming and
foreign layouts are converted to this one in `keymaps.py`.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, resample_abs_pos_embed
from timm.models._features import feature_take_indices
from torch import nn
from torch.utils.checkpoint import checkpoint

from probes.encoders.architecture import InternViTConfig
from probes.encoders.preprocessing import IMAGENET_MEAN, IMAGENET_STD, default_data_config  # noqa: F401 (re-exported)
from probes.errors import InputSizeError


class RMSNorm(nn.Module):
    """RMSNorm computed in float32 whatever the input dtype, as the official code does.

    timm's and torch's RMSNorm compute in the input dtype, which drifts from the official
    outputs in bf16; this is five lines, so we keep our own.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise over the last dimension."""
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def _norm(cfg: InternViTConfig) -> nn.Module:
    if cfg.norm_type == "rms_norm":
        return RMSNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
    return nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)


class Attention(nn.Module):
    """Multi-head self-attention with one qkv projection and optional whole-vector q/k RMSNorm."""

    def __init__(self, cfg: InternViTConfig) -> None:
        super().__init__()
        dim = cfg.hidden_size
        self.num_heads = cfg.num_attention_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=cfg.qkv_bias)
        # The 6B q/k norm spans all heads of a token at once (not per head): an RMSNorm over C.
        self.q_norm = RMSNorm(dim, cfg.layer_norm_eps) if cfg.qk_normalization else nn.Identity()
        self.k_norm = RMSNorm(dim, cfg.layer_norm_eps) if cfg.qk_normalization else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).unflatten(-1, (3, dim)).unbind(2)  # rows are (three, heads, head_dim)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # scale defaults to head_dim ** -0.5
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    """Pre-norm block: x + ls1 * attn(norm1(x)), then x + ls2 * mlp(norm2(x))."""

    def __init__(self, cfg: InternViTConfig, drop_path: float = 0.0) -> None:
        super().__init__()
        dim = cfg.hidden_size
        self.norm1 = _norm(cfg)
        self.attn = Attention(cfg)
        self.ls1 = nn.Parameter(torch.full((dim,), float(cfg.initializer_factor)))
        self.norm2 = _norm(cfg)
        self.mlp = Mlp(dim, cfg.intermediate_size, act_layer=nn.GELU)  # fc1 / exact GELU / fc2
        self.ls2 = nn.Parameter(torch.full((dim,), float(cfg.initializer_factor)))
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        x = x + self.drop_path1(self.attn(self.norm1(x)) * self.ls1)
        return x + self.drop_path2(self.mlp(self.norm2(x)) * self.ls2)


class Embeddings(nn.Module):
    """Patch convolution, class token and (resized) absolute position embedding."""

    def __init__(self, cfg: InternViTConfig) -> None:
        super().__init__()
        dim = cfg.hidden_size
        self.patch_size = cfg.patch_size
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, dim))
        self.patch_embedding = nn.Conv2d(3, dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.position_embedding = nn.Parameter(torch.zeros(1, 1 + cfg.grid_size ** 2, dim))

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid of an input; sizes that are not multiples of the patch size are refused."""
        if height % self.patch_size or width % self.patch_size:
            raise InputSizeError(
                f"input size {height}x{width} is not a multiple of the patch size {self.patch_size}")
        return height // self.patch_size, width // self.patch_size

    def position(self, grid: tuple[int, int]) -> torch.Tensor:
        """Position embedding for a patch grid: bicubic in float32, class entry unchanged."""
        native = int(round((self.position_embedding.shape[1] - 1) ** 0.5))
        # antialias off: the official code calls plain F.interpolate (it matters when shrinking).
        return resample_abs_pos_embed(
            self.position_embedding, new_size=list(grid), old_size=[native, native],
            num_prefix_tokens=1, interpolation="bicubic", antialias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images -> (B, 1 + N, C) tokens."""
        grid = self.grid(x.shape[-2], x.shape[-1])
        weight = self.patch_embedding.weight
        patches = self.patch_embedding(x.to(weight.dtype)).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(weight.dtype).expand(x.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.position(grid).to(weight.dtype)


class _Encoder(nn.Module):
    """Holds the blocks under `encoder.layers` (the checkpoint key prefix)."""

    def __init__(self, blocks: Sequence[Block]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(blocks)


class InternViT(nn.Module):
    """The InternViT vision encoder; no head, and no final norm unless its config has one.

    Interface (shared with `TimmEncoder`): `forward_features`, `forward_intermediates`,
    `prune_intermediate_layers`, `set_grad_checkpointing`, and the attributes `embed_dim`,
    `num_heads`, `patch_size`, `num_layers`, `num_prefix_tokens`, `data_config`, `version`,
    `name`, `source`, `fingerprint`.
    """

    def __init__(self, cfg: InternViTConfig, num_layers: Optional[int] = None,
                 drop_path_rate: Optional[float] = None) -> None:
        super().__init__()
        depth = cfg.num_hidden_layers if num_layers is None else num_layers
        rate = cfg.drop_path_rate if drop_path_rate is None else drop_path_rate
        self.config = cfg.replace(num_hidden_layers=depth, drop_path_rate=rate)
        self.embeddings = Embeddings(cfg)
        rates = [rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]  # linear over depth
        self.encoder = _Encoder([Block(cfg, r) for r in rates])
        # Only transformers-written checkpoints with use_mean_pooling=false have it (a LayerNorm, as there).
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) if cfg.final_norm else nn.Identity()
        self.embed_dim = cfg.hidden_size
        self.num_features = cfg.hidden_size
        self.num_heads = cfg.num_attention_heads
        self.patch_size = cfg.patch_size
        self.num_prefix_tokens = 1
        self.grad_checkpointing = False
        self.data_config = default_data_config(cfg.image_size)
        self.version = "custom"      # the published version name, or 'custom' (configs are looked up by it)
        self.name = "custom"         # a readable name for results (version, folder or repo name)
        self.source = "random init"
        self.fingerprint: Optional[str] = None  # 12 hex chars naming the weights (see fingerprint.py)

    @property
    def blocks(self) -> nn.ModuleList:
        """The transformer blocks (timm's attribute name)."""
        return self.encoder.layers

    @property
    def num_layers(self) -> int:
        """Number of blocks in use."""
        return len(self.encoder.layers)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in backward (full tuning of large models)."""
        self.grad_checkpointing = enable

    def _run_block(self, block: Block, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1 + N, C) tokens of the last block in use (then the final norm, if any)."""
        x = self.embeddings(x)
        for block in self.encoder.layers:
            x = self._run_block(block, x)
        return self.final_norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as `forward_features` (the encoder has no head)."""
        return self.forward_features(x)

    def forward_intermediates(
        self, x: torch.Tensor, indices: Optional[Union[int, list[int]]] = None, norm: bool = False,
        stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False,
        return_prefix_tokens: bool = False,
    ):
        """Outputs of chosen blocks (int = last n, list = those indices) as NCHW maps or NLC tokens.

        `norm=True` passes each output through the final norm (timm's convention); only encoders
        that have one accept it.
        """
        if norm and isinstance(self.final_norm, nn.Identity):
            raise ValueError("this InternViT has no final norm; call forward_intermediates with norm=False")
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take, max_index = feature_take_indices(self.num_layers, indices)
        grid_h, grid_w = self.embeddings.grid(x.shape[-2], x.shape[-1])
        x = self.embeddings(x)
        last = max_index if (stop_early or intermediates_only) else self.num_layers - 1
        outputs, prefixes = [], []
        for i, block in enumerate(self.encoder.layers[: last + 1]):
            x = self._run_block(block, x)
            if i in take:
                normed = self.final_norm(x) if norm else x
                tokens = normed[:, 1:]
                if output_fmt == "NCHW":
                    tokens = tokens.transpose(1, 2).reshape(x.shape[0], -1, grid_h, grid_w)
                outputs.append(tokens)
                prefixes.append(normed[:, :1])
        if return_prefix_tokens:
            outputs = list(zip(outputs, prefixes))
        return outputs if intermediates_only else (self.final_norm(x), outputs)

    def prune_intermediate_layers(self, indices: Union[int, list[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the blocks after the last index needed (and the final norm if `prune_norm`); returns those kept."""
        take, max_index = feature_take_indices(self.num_layers, indices)
        self.encoder.layers = self.encoder.layers[: max_index + 1]
        if prune_norm:
            self.final_norm = nn.Identity()
        kept_norm = self.config.final_norm and not prune_norm
        self.config = self.config.replace(num_hidden_layers=self.num_layers, final_norm=kept_norm)
        return take

    def set_input_size(self, image_size: int) -> None:
        """Resize the position table once to `image_size`'s patch grid (bicubic, float32), as the released
        segmentation backbone does at load; the resized table is then the parameter (full tuning trains it)."""
        embeddings = self.embeddings
        grid = embeddings.grid(image_size, image_size)
        with torch.no_grad():
            table = embeddings.position(grid).to(embeddings.position_embedding.dtype)
        embeddings.position_embedding = nn.Parameter(
            table.detach().clone(), requires_grad=embeddings.position_embedding.requires_grad)
        self.config = self.config.replace(image_size=image_size)
