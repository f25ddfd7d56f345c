"""DeepSpeed 0.8.0's gradient reduction (ZeRO stage 1/2 `average_tensor`, reduce-scatter path) as a DDP comm hook.

DeepSpeed divides each gradient bucket by the world size in the bucket's own dtype, casts the result to its
`communication_data_type` (fp16 in 0.8.0 whenever ZeRO is on), sums the fp16 copies over the ranks and copies
the fp16 sum back into the bucket. `released_reduction_hook` does exactly that to each of DDP's buckets.
"""
# No `from __future__ import annotations`: DDP checks the hook's annotations are the real GradBucket/Future.
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class ReductionState:
    """What the hook needs: the dtype the ranks' shares are summed in, and the process group (None: world)."""

    comm_dtype: torch.dtype
    group: Optional[dist.ProcessGroup] = None


def released_reduction_hook(state: ReductionState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Divide the bucket by the world size in its dtype, cast to `comm_dtype`, sum over ranks, copy back."""
    # Not torch's fp16_compress_hook: it casts first and divides in fp16, so a share that fits fp16 only once
    # halved overflows, and a subnormal loses a bit DeepSpeed keeps; 0.8.0 divides before it casts.
    buffer = bucket.buffer()
    buffer.div_(dist.get_world_size(state.group))
    shares = buffer.to(state.comm_dtype)
    work = dist.all_reduce(shares, group=state.group, async_op=True)

    def copy_back(done: torch.futures.Future) -> torch.Tensor:
        buffer.copy_(done.value()[0])
        return buffer

    return work.get_future().then(copy_back)


def register_released_reduction(model: DistributedDataParallel, comm_dtype: torch.dtype) -> None:
    """Make `model` (a DDP wrapper) reduce its gradients as DeepSpeed 0.8.0 does, summing in `comm_dtype`."""
    model.register_comm_hook(ReductionState(comm_dtype, model.process_group), released_reduction_hook)
