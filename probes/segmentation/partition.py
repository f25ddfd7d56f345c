"""ZeRO stage 1's partitioning for the released update: which rank owns each parameter's fp32 master and
optimizer state, and the collectives that share what one rank owns (ReleasedPrecisionOptimWrapper uses them).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.distributed as dist


def owners(numels: Sequence[int], world: int) -> list[int]:
    """Each parameter's rank: greedy by numel in parameter order, to the least-loaded rank (lowest on a tie)."""
    loads = [0] * world
    owner_of = []
    for numel in numels:
        rank = min(range(world), key=lambda r: (loads[r], r))
        loads[rank] += numel
        owner_of.append(rank)
    return owner_of


def broadcast_from_owners(tensors: Sequence[torch.Tensor], owner_of: Sequence[int]) -> None:
    """Every rank's copy of each tensor takes its owner's value (one broadcast per tensor)."""
    for tensor, owner in zip(tensors, owner_of):
        dist.broadcast(tensor, src=owner)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is True on any."""
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _layout(entries: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    # What a receiver must allocate for each tensor (shape, dtype), or the plain value itself.
    return {i: {key: ("tensor", tuple(v.shape), v.dtype) if torch.is_tensor(v) else ("value", v)
                for key, v in entry.items()} for i, entry in entries.items()}


def gather_on_first(entries: dict[int, dict[str, Any]], owner_of: Sequence[int],
                    device: torch.device) -> Optional[dict[int, dict[str, Any]]]:
    """Every rank's per-parameter entries (index -> {key: tensor or value}) collected on rank 0, on CPU.

    A collective: every rank calls it with the entries of the parameters it owns; rank 0 gets all of them
    (tensors copied to CPU, one parameter at a time, so no device holds more than its own shard and one
    parameter's state), the other ranks get None.
    """
    rank = dist.get_rank()
    layouts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(layouts, _layout(entries))
    layout = {i: spec for part in layouts for i, spec in part.items()}
    gathered: Optional[dict[int, dict[str, Any]]] = {} if rank == 0 else None
    for index in sorted(layout):
        owner = owner_of[index]
        for key in sorted(layout[index]):
            kind, *spec = layout[index][key]
            if kind == "value":   # a plain value travelled in the layout itself: rank 0 may not own it
                if gathered is not None:
                    gathered.setdefault(index, {})[key] = spec[0]
                continue
            if owner == 0:
                if gathered is not None:
                    gathered.setdefault(index, {})[key] = entries[index][key].detach().cpu().clone()
                continue
            # NCCL moves device tensors only: a CPU tensor (AdamW's `step`) travels through the device.
            shape, dtype = spec
            buffer = entries[index][key].to(device) if rank == owner else torch.empty(shape, dtype=dtype, device=device)
            dist.broadcast(buffer, src=owner)
            if gathered is not None:
                gathered.setdefault(index, {})[key] = buffer.cpu()
    return gathered
