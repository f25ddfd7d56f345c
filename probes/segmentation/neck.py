"""The 4-level pyramid neck of head/full tuning: ViT maps at 1/p -> strides ×4, ×2, ×1, ×½."""
from __future__ import annotations

import contextlib
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import nn


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
    fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
    nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
    nn.init.zeros_(conv.bias)


@MODELS.register_module()
class ViTPyramidNeck(BaseModule):
    """Four same-resolution maps -> a pyramid: ×4 (deconv, LN, GELU, deconv), ×2 (deconv), ×1, ×½ (max-pool).

    Channels are unchanged (C each), as in the published head-tuning recipe. On CUDA the neck computes
    in bf16 like the backbone (the released recipe casts backbone and neck to bf16), its LayerNorm in
    fp32, and returns float32 maps for the fp32 decode heads.
    """

    def __init__(self, embed_dim: int, bf16_on_gpu: bool = True, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        c = embed_dim
        self.bf16_on_gpu = bf16_on_gpu
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
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16_on_gpu and maps[0].is_cuda
                    else contextlib.nullcontext())
        with autocast:
            out = (self.up4(maps[0]), self.up2(maps[1]), self.same(maps[2]), self.down2(maps[3]))
        return tuple(o.float() for o in out)
