"""The 4-level pyramid neck of head/full tuning: ViT maps at 1/14 -> strides ×4, ×2, ×1, ×½."""
from __future__ import annotations

from typing import Sequence

import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import nn


class _ChannelsLastLayerNorm(nn.LayerNorm):
    """LayerNorm over channels of an NCHW map (the norm between the two ×4 transposed convs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@MODELS.register_module()
class ViTPyramidNeck(BaseModule):
    """Four same-resolution maps -> a pyramid: ×4 (deconv, LN, GELU, deconv), ×2 (deconv), ×1, ×½ (max-pool).

    Channels are unchanged (C each), as in the published head-tuning recipe.
    """

    def __init__(self, embed_dim: int, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        c = embed_dim
        self.up4 = nn.Sequential(
            nn.ConvTranspose2d(c, c, kernel_size=2, stride=2), _ChannelsLastLayerNorm(c), nn.GELU(),
            nn.ConvTranspose2d(c, c, kernel_size=2, stride=2))
        self.up2 = nn.ConvTranspose2d(c, c, kernel_size=2, stride=2)
        self.same = nn.Identity()
        self.down2 = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Four (B, C, h, w) maps -> (B, C, 4h, 4w), (B, C, 2h, 2w), (B, C, h, w), (B, C, h/2, w/2)."""
        if len(maps) != 4:
            raise ValueError(f"ViTPyramidNeck takes 4 maps (backbone out_indices), got {len(maps)}")
        return (self.up4(maps[0]), self.up2(maps[1]), self.same(maps[2]), self.down2(maps[3]))
