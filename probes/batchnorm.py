"""Batch normalisation over the global batch of all processes (SyncBatchNorm semantics) on any device."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce
from torch.nn.modules.batchnorm import _BatchNorm


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm over the global batch of all processes (`nn.SyncBatchNorm`'s numbers) on any device.

    The official heads are SyncBatchNorm, and the suite tests that a multi-process run equals a
    one-process run on CPU; torch's SyncBatchNorm refuses CPU tensors (and DDP refuses it in a CPU
    module), and nothing in torch, mmengine or mmcv-lite synchronises BN on CPU. So this computes the
    global mean and biased variance with autograd-aware all-reduces, whose backward sums every
    process's gradient of the statistics exactly as SyncBatchNorm's backward does. In one process, or
    in eval mode, it is plain BatchNorm. Inputs are (N, C) or (N, C, ...).
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalise with the statistics of the whole global batch while training."""
        syncing = self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not syncing:
            return super().forward(input)
        self._check_input_dim(input)
        group = dist.group.WORLD
        dims = [0] + list(range(2, input.dim()))
        x = input.float()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype)
        total = differentiable_all_reduce(torch.cat([x.sum(dims), count]), group=group)
        n = total[-1]
        mean = total[:-1] / n
        shape = [1, -1] + [1] * (input.dim() - 2)
        centred = x - mean.view(shape)
        # Two passes (mean, then squared deviations) as torch's own kernels, not E[x²] - E[x]².
        var = differentiable_all_reduce((centred * centred).sum(dims), group=group) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum)
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                unbiased = var.detach() * (n / (n - 1)).clamp(min=0)
                self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)


def register_global_bn() -> None:
    """Make `GlobalSyncBN` buildable from mmengine / mmcv `norm_cfg` dicts (idempotent)."""
    from mmengine.registry import MODELS

    if MODELS.get("GlobalSyncBN") is None:
        MODELS.register_module("GlobalSyncBN", module=GlobalBatchNorm)
