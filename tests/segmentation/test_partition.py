"""ZeRO-1 partitioning of the released update on 2 gloo processes: the same weights, half the masters per rank.

Each rank trains the same small mixed-dtype model (bf16 part, fp32 head, two lr groups, clipping active) on
its own inputs through DDP, once partitioned and once not, and the two must agree bit for bit.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from probes.segmentation.mm_compat import import_mmseg
from probes.testing.ranks import run_ranks

import_mmseg()

from probes.segmentation.master_weights import MASTERS_KEY, ReleasedPrecisionOptimWrapper  # noqa: E402
from probes.segmentation.partition import owners  # noqa: E402


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(6, 12), nn.GELU(), nn.Linear(12, 5)).to(torch.bfloat16)
        self.head = nn.Linear(5, 3)
        with torch.no_grad():
            for p in self.head.parameters():
                p.copy_(p.to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x.to(torch.bfloat16)).float())


def _build(partition: bool):
    from torch.nn.parallel import DistributedDataParallel

    net = _Net()
    groups = [dict(params=list(net.backbone.parameters()), lr=1e-2, weight_decay=0.05),
              dict(params=list(net.head.parameters()), lr=3e-2, weight_decay=0.0)]
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    wrapper = ReleasedPrecisionOptimWrapper(optimizer, clip_grad=dict(max_norm=0.05), partition=partition)
    return net, DistributedDataParallel(net), wrapper


def _train(rank: int, ddp, wrapper, steps: range, poison: bool = False) -> None:
    for step in steps:
        x = torch.randn(4, 6, generator=torch.Generator().manual_seed(10 * step + rank))
        with wrapper.optim_context(ddp):
            loss = ddp(x).pow(2).sum()
        loss.backward()
        if poison:   # a reduced gradient overflowed: param 1's, owned by rank 1, so rank 0 holds no bad one
            wrapper._flat[1].grad.fill_(float("inf"))
        wrapper.step()
        wrapper.zero_grad()


def _same_weights_half_the_masters(rank: int, world: int) -> dict:
    results = {}
    for partition in (True, False):
        net, ddp, wrapper = _build(partition)
        _train(rank, ddp, wrapper, range(3))
        before = [p.detach().clone() for p in net.parameters()]
        _train(rank, ddp, wrapper, range(3, 4), poison=True)
        results[partition] = {
            "params": [p.detach().clone() for p in net.parameters()],
            "unchanged_by_poison": all(torch.equal(a, b) for a, b in zip(before, net.parameters())),
            "skipped": wrapper.skipped_steps,
            "masters": {i: m.clone() for i, _, m in wrapper._pairs()},
            "state_numel": sum(t.numel() for s in wrapper.optimizer.state.values() for t in s.values()
                               if torch.is_tensor(t)),
        }
    return results


def test_partitioned_and_replicated_masters_give_the_same_weights(tmp_path: Path) -> None:
    ranks = run_ranks(_same_weights_half_the_masters, 2, tmp_path)
    total = sum(p.numel() for p in _Net().parameters())
    for rank in ranks:
        for a, b in zip(rank[True]["params"], rank[False]["params"]):
            assert a.dtype == b.dtype and torch.equal(a, b)
        assert rank[True]["skipped"] == rank[False]["skipped"] == 1 and rank[True]["unchanged_by_poison"]
        assert len(rank[False]["masters"]) == len(ranks[0][False]["params"])   # replicated: all of them
    for a, b in zip(ranks[0][True]["params"], ranks[1][True]["params"]):
        assert torch.equal(a, b)   # the owners' values reached both ranks
    owned = [rank[True]["masters"] for rank in ranks]
    assert not set(owned[0]) & set(owned[1]) and set(owned[0]) | set(owned[1]) == set(range(len(owned[0]) + len(owned[1])))
    for held in owned:
        numel = sum(m.numel() for m in held.values())
        assert abs(numel - total / 2) <= total * 0.1                          # about half the elements
    for rank in ranks:
        assert abs(rank[True]["state_numel"] - 2 * sum(m.numel() for m in rank[True]["masters"].values())) <= 8
        for index, master in rank[True]["masters"].items():                    # the same masters as replicated
            assert torch.equal(master, ranks[0][False]["masters"][index])


def test_owners_balance_by_numel_in_parameter_order() -> None:
    assert owners([10, 3, 3, 3, 1], 2) == [0, 1, 1, 1, 1]
    assert owners([4, 4, 4], 3) == [0, 1, 2] and owners([5, 5], 1) == [0, 0]


def _save_and_resume(rank: int, world: int, folder: Path) -> dict:
    import torch.distributed as dist

    net, ddp, wrapper = _build(True)
    _train(rank, ddp, wrapper, range(2))
    replicated_net, replicated_ddp, replicated = _build(False)
    _train(rank, replicated_ddp, replicated, range(2))
    wrapper.gather_state()                  # every rank, as atomic_saves does before rank 0 saves
    if rank == 0:
        torch.save({"model": net.state_dict(), "optimizer": wrapper.state_dict(),
                    "replicated": replicated.state_dict()}, folder / "ckpt.pth")
    dist.barrier()
    _train(rank, ddp, wrapper, range(2, 4))
    saved = torch.load(folder / "ckpt.pth", weights_only=False)
    resumed_net, resumed_ddp, resumed = _build(True)
    resumed_net.load_state_dict(saved["model"])
    resumed.load_state_dict(saved["optimizer"])
    _train(rank, resumed_ddp, resumed, range(2, 4))
    return {"whole": [p.detach().clone() for p in net.parameters()],
            "resumed": [p.detach().clone() for p in resumed_net.parameters()]}


def test_a_partitioned_checkpoint_has_the_replicated_layout_and_resumes_bitwise(tmp_path: Path) -> None:
    ranks = run_ranks(_save_and_resume, 2, tmp_path, tmp_path)
    for rank in ranks:
        assert all(torch.equal(a, b) for a, b in zip(rank["whole"], rank["resumed"]))
    saved = torch.load(tmp_path / "ckpt.pth", weights_only=False)
    ours, theirs = saved["optimizer"], saved["replicated"]
    assert ours["param_groups"] == theirs["param_groups"] and ours.keys() == theirs.keys()
    assert ours["state"].keys() == theirs["state"].keys()
    for index, entry in theirs["state"].items():
        assert entry.keys() == ours["state"][index].keys()
        assert all(torch.equal(entry[k].cpu(), ours["state"][index][k]) for k in entry)
    for a, b in zip(ours[MASTERS_KEY], theirs[MASTERS_KEY]):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def _gather(rank: int, world: int) -> object:
    from probes.segmentation.partition import gather_on_first

    # Parameter 0 on rank 0, parameter 1 on rank 1; each has a tensor and a plain value (an optimizer may keep
    # a Python number in its state), which rank 0 must receive from the owner it is not.
    owner_of = [0, 1]
    mine = {rank: {"exp_avg": torch.full((2,), float(rank + 1)), "step": 10 * (rank + 1)}}
    return gather_on_first(mine, owner_of, torch.device("cpu"))


def test_rank_0_gathers_tensors_and_plain_values_it_does_not_own(tmp_path: Path) -> None:
    first, second = run_ranks(_gather, 2, tmp_path)
    assert second is None
    assert sorted(first) == [0, 1]
    assert first[1]["step"] == 20 and torch.equal(first[1]["exp_avg"], torch.full((2,), 2.0))
    assert first[0]["step"] == 10 and torch.equal(first[0]["exp_avg"], torch.full((2,), 1.0))
