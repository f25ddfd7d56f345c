"""The segmentor: mmseg's EncoderDecoder with every sliding window of an image in one forward."""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import EncoderDecoder

from probes.segmentation.precision import round_to_bf16_


def slide_windows(height: int, width: int, crop: tuple, stride: tuple) -> List[tuple]:
    """(y1, y2, x1, x2) of every window, in mmseg's order and with its edge rule (the last window ends at the edge)."""
    (h_crop, w_crop), (h_stride, w_stride) = crop, stride
    h_grids = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    windows = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2, x2 = min(h_idx * h_stride + h_crop, height), min(w_idx * w_stride + w_crop, width)
            windows.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
    return windows


class ProbeEncoderDecoder(EncoderDecoder):
    """EncoderDecoder whose sliding-window test runs all windows of an image as one batch.

    The same windows, logits and averaging as mmseg's `slide_inference` (tests/segmentation/test_models.py
    compares them), but one backbone call per image instead of one per window. Why: under FSDP every encoder
    block's forward is a collective, so processes must make the same number of calls; images of different
    sizes have different window counts, and a per-window loop deadlocks the job at its first validation. The
    val sampler gives every process the same number of images, so one call per image keeps them in step (and
    on one GPU a batch of windows is faster than a loop).

    `bf16_weights` (the released arrangement, `precision.py`): backbone and neck are cast to bf16 once built,
    before any wrapper (DDP) sees them, as DeepSpeed cast the released model; the heads stay fp32 tensors
    holding bf16-rounded values, which is what the released heads computed with (DeepSpeed re-points every
    parameter at its bf16 buffer after each step; the heads cast themselves back to fp32 each forward).
    The backbone and neck hand the heads fp32 maps, as the released backbone does.
    """

    def __init__(self, *args, bf16_weights: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bf16_weights = bf16_weights
        if bf16_weights:
            self.backbone.to(torch.bfloat16)
            if self.with_neck:
                self.neck.to(torch.bfloat16)
            self._round_heads()

    def _round_heads(self) -> None:
        for head in (self.decode_head, getattr(self, "auxiliary_head", None)):
            if head is not None:
                round_to_bf16_(head)

    def init_weights(self) -> None:
        """mmengine's init pass; with `bf16_weights` the re-drawn head weights are rounded to bf16 again."""
        super().init_weights()
        if self.bf16_weights:
            self._round_heads()

    def slide_inference(self, inputs: torch.Tensor, batch_img_metas: List[dict]) -> torch.Tensor:
        """Logits of each image: every window decoded in one batch, overlaps averaged."""
        batch, _, height, width = inputs.shape
        windows = slide_windows(height, width, tuple(self.test_cfg.crop_size), tuple(self.test_cfg.stride))
        crops = torch.cat([inputs[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in windows])
        batch_img_metas[0]["img_shape"] = crops.shape[2:]   # mmseg's signal that the logits are per window
        logits = self.encode_decode(crops, batch_img_metas)
        preds = inputs.new_zeros((batch, self.out_channels, height, width))
        count = inputs.new_zeros((batch, 1, height, width))
        for i, (y1, y2, x1, x2) in enumerate(windows):
            preds += F.pad(logits[i * batch:(i + 1) * batch], (x1, width - x2, y1, height - y2))
            count[:, :, y1:y2, x1:x2] += 1
        return preds / count
