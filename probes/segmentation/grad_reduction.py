"""DeepSpeed 0.8.0's gradient reduction (ZeRO stage 1/2 `average_tensor`, reduce-scatter path) as a DDP comm hook.

DeepSpeed copies each gradient into its bucket (`ipg_buffer`), whose dtype is the model's when the optimizer
was built (`self.dtype`: bf16, the whole model cast; the fp32 heads' gradients are rounded to bf16 there),
divides the bucket by the world size in that dtype, casts the result to its `communication_data_type` (fp16
in 0.8.0 whenever ZeRO is on), sums the fp16 copies over the ranks and copies the fp16 sum back into the
bf16 bucket. `released_reduction_hook` does exactly that to each of DDP's buckets and hands the bf16 result
back in the bucket's own dtype (exact: every bf16 value is an fp32 value).
"""
# No `from __future__ import annotations`: DDP checks the hook's annotations are the real GradBucket/Future.
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class ReductionState:
    """What the hook needs: DeepSpeed's bucket dtype, the dtype the shares are summed in, the process group."""

    bucket_dtype: torch.dtype
    comm_dtype: torch.dtype
    group: Optional[dist.ProcessGroup] = None


def released_reduction_hook(state: ReductionState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Round the bucket to `bucket_dtype`, divide by the world size there, sum in `comm_dtype`, copy back."""
    # Not torch's fp16_compress_hook: it casts first and divides in fp16, so a share that fits fp16 only once
    # halved overflows, and a subnormal loses a bit DeepSpeed keeps; 0.8.0 divides before it casts.
    buffer = bucket.buffer()
    bucket_copy = buffer.to(state.bucket_dtype)   # the same tensor when the bucket already has that dtype
    bucket_copy.div_(dist.get_world_size(state.group))
    shares = bucket_copy.to(state.comm_dtype)
    work = dist.all_reduce(shares, group=state.group, async_op=True)

    def copy_back(done: torch.futures.Future) -> torch.Tensor:
        buffer.copy_(done.value()[0].to(state.bucket_dtype))
        return buffer

    return work.get_future().then(copy_back)


def register_released_reduction(model: DistributedDataParallel, bucket_dtype: torch.dtype,
                                comm_dtype: torch.dtype) -> None:
    """Make `model` (a DDP wrapper) reduce its gradients as DeepSpeed 0.8.0 does (bf16 buckets, fp16 sums)."""
    model.register_comm_hook(ReductionState(bucket_dtype, comm_dtype, model.process_group), released_reduction_hook)
