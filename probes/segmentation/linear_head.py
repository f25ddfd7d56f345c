"""The linear-probe decode head: BatchNorm2d(C) + 1×1 conv, logits bilinearly upsampled by mmseg."""
from __future__ import annotations

from typing import Sequence

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import nn


@MODELS.register_module()
class LinearProbeHead(BaseDecodeHead):
    """BN + 1×1 conv on one backbone map; BaseDecodeHead owns the loss and the bilinear upsampling.

    `channels` is the input channel count (no hidden layer); BaseDecodeHead's `conv_seg` is the 1×1 conv.
    """

    def __init__(self, in_channels: int, **kwargs) -> None:
        kwargs.setdefault("dropout_ratio", 0.0)
        super().__init__(in_channels=in_channels, channels=in_channels, **kwargs)
        self.bn = nn.BatchNorm2d(in_channels)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits at feature resolution; mmseg resizes them to the label size (bilinear) in loss/predict."""
        x = self._transform_inputs(inputs)
        return self.cls_seg(self.bn(x))
