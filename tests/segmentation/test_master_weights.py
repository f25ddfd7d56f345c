"""The released update (master_weights.py) against a hand-written transcription of DeepSpeed 0.8.0's ZeRO-1 bf16 step.

The reference is written out from stage_1_and_2.py (v0.8.0): gradients through fp16 and back into their own
dtype, fp32, global-norm clipping, AdamW in float64 here (torch's in fp32 there), masters rounded to bf16.
The fp32 masters agree to fp32 rounding; the bf16 weights, their rounding, agree exactly.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from probes.segmentation.mm_compat import import_mmseg

import_mmseg()

from probes.segmentation.master_weights import ReleasedPrecisionOptimWrapper  # noqa: E402

BETAS, EPS = (0.9, 0.999), 1e-8
GROUPS = [dict(lr=1e-2, weight_decay=0.05), dict(lr=3e-2, weight_decay=0.0)]   # two lr groups, one decays


def _model() -> nn.ModuleDict:
    torch.manual_seed(0)
    model = nn.ModuleDict({"backbone": nn.Linear(6, 5), "head": nn.Linear(5, 3)})
    model.backbone.to(torch.bfloat16)                 # bf16 weights
    with torch.no_grad():                             # fp32 head holding bf16 values (as the segmentor leaves it)
        for p in model.head.parameters():
            p.copy_(p.to(torch.bfloat16))
    return model


def _wrapper(model: nn.ModuleDict, max_norm: float) -> ReleasedPrecisionOptimWrapper:
    groups = [dict(params=list(model.backbone.parameters()), **GROUPS[0]),
              dict(params=list(model.head.parameters()), **GROUPS[1])]
    optimizer = torch.optim.AdamW(groups, lr=1e-3, betas=BETAS, eps=EPS)
    return ReleasedPrecisionOptimWrapper(optimizer, clip_grad=dict(max_norm=max_norm))


def _grads(step: int, model: nn.ModuleDict) -> list[torch.Tensor]:
    """Gradients in each parameter's dtype, with values fp16 rounds (fp32 digits, underflow below 6e-8)."""
    gen = torch.Generator().manual_seed(100 + step)
    grads = []
    for p in model.parameters():
        g = torch.randn(p.shape, generator=gen) * (0.3 + step)
        g.view(-1)[0] = 1e-8            # below fp16's smallest subnormal: flushed to zero
        g.view(-1)[-1] = 1.2345678e-6   # an fp16 subnormal: keeps 4 significant bits
        grads.append(g.to(p.dtype))
    return grads


def _reference(model: nn.ModuleDict, steps: int, max_norm: float) -> list[torch.Tensor]:
    params = list(model.parameters())
    group_of = [0] * len(list(model.backbone.parameters())) + [1] * len(list(model.head.parameters()))
    masters = [p.detach().double() for p in params]
    m = [torch.zeros_like(x) for x in masters]
    v = [torch.zeros_like(x) for x in masters]
    for step in range(1, steps + 1):
        # the bf16 bucket (heads' fp32 gradients included) and the fp16 all-reduce
        lowp = [g.to(torch.bfloat16).to(torch.float16).to(torch.bfloat16).to(g.dtype) for g in _grads(step - 1, model)]
        squares = sum(g.double().norm().item() ** 2 for g in lowp)
        norm = float(torch.tensor(squares, dtype=torch.float32)) ** 0.5
        factor = (norm + 1e-6) / max_norm
        grads = [g.float().double() / (factor if factor > 1 else 1.0) for g in lowp]
        for i, g in enumerate(grads):
            lr, wd = GROUPS[group_of[i]]["lr"], GROUPS[group_of[i]]["weight_decay"]
            m[i] = BETAS[0] * m[i] + (1 - BETAS[0]) * g
            v[i] = BETAS[1] * v[i] + (1 - BETAS[1]) * g * g
            masters[i] = masters[i] * (1 - lr * wd)
            denom = (v[i].sqrt() / math.sqrt(1 - BETAS[1] ** step)) + EPS
            masters[i] = masters[i] - lr / (1 - BETAS[0] ** step) * m[i] / denom
    return masters


def _train(model: nn.ModuleDict, wrapper: ReleasedPrecisionOptimWrapper, steps: range) -> None:
    for step in steps:
        for p, g in zip(model.parameters(), _grads(step, model)):
            p.grad = g
        wrapper.step()
        wrapper.zero_grad()


@pytest.mark.parametrize("max_norm", [0.5, 0.0])   # clipping on every step, and off (as released)
def test_update_matches_the_hand_written_zero1_bf16_step(max_norm: float) -> None:
    model = _model()
    expected = _reference(_model(), steps=3, max_norm=max_norm or math.inf)
    wrapper = _wrapper(model, max_norm)
    _train(model, wrapper, range(3))
    masters = [m for group in wrapper.optimizer.param_groups for m in group["params"]]
    for param, master, ref in zip(model.parameters(), masters, expected):
        assert master.dtype == torch.float32
        torch.testing.assert_close(master, ref.float(), rtol=2e-6, atol=1e-8)
        assert torch.equal(param.float(), ref.to(torch.bfloat16).float())    # bf16-rounded, heads included
    assert {p.dtype for p in model.backbone.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.head.parameters()} == {torch.float32}


def test_a_gradient_fp16_cannot_hold_skips_the_step() -> None:
    model = _model()
    wrapper = _wrapper(model, 0.0)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.full_like(p, 7e4)    # > 65504: inf in fp16, ZeRO's overflow check skips the step
    wrapper.step()
    assert wrapper.skipped_steps == 1 and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_masters_are_saved_and_a_resumed_update_continues_bitwise() -> None:
    whole = _model()
    whole_wrapper = _wrapper(whole, 0.5)
    _train(whole, whole_wrapper, range(3))
    first = _model()
    first_wrapper = _wrapper(first, 0.5)
    _train(first, first_wrapper, range(1))
    saved_model = {k: v.clone() for k, v in first.state_dict().items()}
    saved = first_wrapper.state_dict()
    resumed = _model()
    resumed.load_state_dict(saved_model)
    resumed_wrapper = _wrapper(resumed, 0.5)
    resumed_wrapper.load_state_dict(saved)
    _train(resumed, resumed_wrapper, range(1, 3))
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(whole_wrapper.optimizer.param_groups, resumed_wrapper.optimizer.param_groups):
        assert all(torch.equal(x, y) for x, y in zip(a["params"], b["params"]))



class _Net(nn.Module):
    """The shape of the released model: a bf16 part handing fp32 features to an fp32 head."""

    def __init__(self, parts: nn.ModuleDict) -> None:
        super().__init__()
        self.parts = parts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.parts.head(self.parts.backbone(x.to(torch.bfloat16)).float())


def test_under_ddp_the_mixed_dtype_model_takes_the_same_update(tmp_path) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    def train(parts: nn.ModuleDict, ddp: bool) -> None:
        net = _Net(parts)
        run = DistributedDataParallel(net) if ddp else net   # DDP buckets bf16 and fp32 gradients apart
        wrapper = _wrapper(parts, 0.5)
        for step in range(2):
            run(torch.randn(4, 6, generator=torch.Generator().manual_seed(step))).sum().backward()
            wrapper.step()
            wrapper.zero_grad()

    plain, wrapped = _model(), _model()
    train(plain, ddp=False)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        train(wrapped, ddp=True)
    finally:
        dist.destroy_process_group()
    assert {p.dtype for p in wrapped.backbone.parameters()} == {torch.bfloat16}
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), wrapped.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(_model().parameters(), wrapped.parameters()))
