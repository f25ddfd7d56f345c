"""The 4-level pyramid neck of head/full tuning: ViT maps at 1/p -> strides ×4, ×2, ×1, ×½."""
from __future__ import annotations

import contextlib
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from probes.segmentation.precision import bf16_autocast, check_autocast


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map, computed in float32 (eps 1e-6, as released)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each position's channel vector in fp32, return the input dtype."""
        # Why fp32: the neck runs in bf16 on GPU, and the released neck normalises in fp32 there.
        with torch.autocast(x.device.type, enabled=False):
            out = F.layer_norm(x.float().permute(0, 2, 3, 1), self.normalized_shape,
                               self.weight.float(), self.bias.float(), self.eps)
        return out.permute(0, 3, 1, 2).to(x.dtype)


def _init_transposed_conv(conv: nn.ConvTranspose2d) -> None:
    # The released neck's init: normal(0, sqrt(2 / fan_out)) with fan_out = k*k*out/groups, bias 0.
    # Drawn in fp32 and copied: a bf16-stored neck (the released arrangement) gets the fp32 draw rounded,
    # as the release, which initialised in fp32 and then cast to bf16.
    fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
    with torch.no_grad():
        conv.weight.copy_(torch.empty_like(conv.weight, dtype=torch.float32).normal_(0.0, math.sqrt(2.0 / fan_out)))
    nn.init.zeros_(conv.bias)


class ViTPyramidNeck(BaseModule):
    """Four same-resolution maps -> a pyramid: ×4 (deconv, LN, GELU, deconv), ×2 (deconv), ×1, ×½ (max-pool).

    Channels are unchanged (C each), as in the published head-tuning recipe. On CUDA the neck computes
    in bf16 like the backbone (the released recipe casts backbone and neck to bf16), its LayerNorm in
    fp32, and returns float32 maps for the fp32 decode heads. `bf16_autocast` as for ProbeEncoder.
    """

    def __init__(self, embed_dim: int, bf16_autocast: str = "cuda", init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        c = embed_dim
        self.bf16_autocast = check_autocast(bf16_autocast)
        self.up4 = nn.Sequential(
            nn.ConvTranspose2d(c, c, kernel_size=2, stride=2), ChannelLayerNorm(c), nn.GELU(),
            nn.ConvTranspose2d(c, c, kernel_size=2, stride=2))
        self.up2 = nn.ConvTranspose2d(c, c, kernel_size=2, stride=2)
        self.same = nn.Identity()
        self.down2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self._init_convs()

    def _init_convs(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose2d):
                _init_transposed_conv(module)

    def init_weights(self) -> None:
        """mmengine's init pass: the released initialisation (again, after any `init_cfg`)."""
        super().init_weights()
        self._init_convs()

    def forward(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Four (B, C, h, w) maps -> (B, C, 4h, 4w), (B, C, 2h, 2w), (B, C, h, w), (B, C, h/2, w/2)."""
        if len(maps) != 4:
            raise ValueError(f"ViTPyramidNeck takes 4 maps (backbone out_indices), got {len(maps)}")
        autocast = bf16_autocast(self.bf16_autocast, maps[0])
        if autocast is None:
            # Without autocast it computes in its weights' dtype: bf16 in the released arrangement, whose
            # neck takes the backbone's bf16 maps (ours hands over their exact fp32 copies).
            maps = [m.to(self.up2.weight.dtype) for m in maps]
        with autocast or contextlib.nullcontext():
            out = (self.up4(maps[0]), self.up2(maps[1]), self.same(maps[2]), self.down2(maps[3]))
        return tuple(o.float() for o in out)
