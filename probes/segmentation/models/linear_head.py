"""The linear-probe decode head: SyncBatchNorm(C) + 1×1 conv, logits bilinearly upsampled by mmseg."""
from __future__ import annotations

from typing import Sequence

import torch
from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead


class LinearProbeHead(BaseDecodeHead):
    """Norm + 1×1 conv on one backbone map; BaseDecodeHead owns the loss and the bilinear upsampling.

    The released linear probe is mmseg 0.x's FCNHead with no convs and `with_norm=True`: a
    SyncBatchNorm over the input channels (torch defaults: eps 1e-5, momentum 0.1), then `conv_seg`
    (normal(0, 0.01) init, no dropout). `norm_cfg` picks the norm (SyncBN by default: statistics over
    the global batch when several processes train).
    """

    def __init__(self, in_channels: int, norm_cfg: dict | None = None, **kwargs) -> None:
        kwargs.setdefault("dropout_ratio", 0.0)
        super().__init__(in_channels=in_channels, channels=in_channels, **kwargs)
        _, self.bn = build_norm_layer(norm_cfg or dict(type="SyncBN", requires_grad=True), in_channels)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits at feature resolution; mmseg resizes them to the label size (bilinear) in loss/predict."""
        x = self._transform_inputs(inputs)
        return self.cls_seg(self.bn(x.float()))
