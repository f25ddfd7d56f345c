"""torchrun support: one process per GPU, heads replicated, data sharded, counts summed."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, List

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from probes.runtime import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank, world size and its device."""
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and prints progress."""
        return self.rank == 0


def init_distributed(device: str | None) -> DistInfo:
    """Join the torchrun process group when launched by torchrun; else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, resolve_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device)
    if target.type == "cuda":
        target = torch.device("cuda", local_rank)
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    return DistInfo(rank, world, target)


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (returned on the CPU)."""
    if info.world == 1:
        return tensor
    moved = tensor.to(info.device)
    dist.all_reduce(moved, op=dist.ReduceOp.SUM)
    return moved.cpu()


def barrier(info: DistInfo) -> None:
    """Wait for every rank."""
    if info.world > 1:
        dist.barrier()


class ShardSampler(Sampler[int]):
    """Evaluation sharding without DistributedSampler's padding (no image is scored twice)."""

    def __init__(self, length: int, rank: int, world: int) -> None:
        self.indices: List[int] = list(range(rank, length, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def broadcast_from_main(module: torch.nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's parameters and buffers.

    BatchNorm running statistics (and their EMA) are updated from each rank's own shard, so they
    drift apart slightly; scoring every shard with the same head needs one copy.
    """
    if info.world == 1:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def all_gather_objects(obj: object, info: DistInfo) -> list:
    """Every rank's `obj` (picklable), in rank order; a one-element list in one process."""
    if info.world == 1:
        return [obj]
    gathered: list = [None] * info.world
    dist.all_gather_object(gathered, obj)
    return gathered
