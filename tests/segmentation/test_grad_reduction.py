"""The released update under 2 gloo processes: gradients reduced as DeepSpeed 0.8.0's `average_tensor` reduces them.

Hand computation (stage_1_and_2.py v0.8.0, reduce-scatter path): each rank's gradient copied into the bf16
bucket (ZeRO's `self.dtype`: the fp32 head's gradient is rounded to bf16 too), divided by 2 there, cast to
fp16, the two fp16 copies summed in fp16, the sum copied back into the bf16 bucket, then into the gradient's dtype.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from probes.segmentation.mm_compat import import_mmseg
from probes.testing.ranks import run_ranks

import_mmseg()

from probes.segmentation.master_weights import ReleasedPrecisionOptimWrapper  # noqa: E402

# Per-rank inputs, which are the gradients (the loss is linear in the weights): ordinary values with fp32
# digits, fp16 subnormals, and a pair whose shares fit fp16 only once halved (7e4: inf if cast before divided).
INPUTS = [torch.tensor([0.3183099, -1.2345678, 2.5e-6, 7e-5, 1e-8, 70000.0, 3.1415927, -0.7071068]),
          torch.tensor([0.1111111, 0.9876543, 3.3e-6, -1.2e-5, 4e-8, -60000.0, 2.7182817, 0.5772157])]


class _Linear(nn.Module):
    """A bf16 weight (backbone) and an fp32 weight (head); the gradient of each is the rank's input."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Parameter(torch.ones(8, dtype=torch.bfloat16))
        self.head = nn.Parameter(torch.ones(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.backbone * x.to(torch.bfloat16)).float().sum() + (self.head * x).sum()


def _one_step(rank: int, world: int) -> dict:
    from torch.nn.parallel import DistributedDataParallel

    model = _Linear()
    ddp = DistributedDataParallel(model)
    wrapper = ReleasedPrecisionOptimWrapper(torch.optim.SGD(model.parameters(), lr=1.0), partition=False)
    with wrapper.optim_context(ddp):
        loss = ddp(INPUTS[rank])
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    masters_before = [m.clone() for g in wrapper.optimizer.param_groups for m in g["params"]]
    wrapper.step()
    masters = [m.clone() for g in wrapper.optimizer.param_groups for m in g["params"]]
    return {"grads": grads, "masters_before": masters_before, "masters": masters}


def _hand_reduced(dtype: torch.dtype) -> torch.Tensor:
    shares = [(x.to(dtype).to(torch.bfloat16) / 2).to(torch.float16) for x in INPUTS]
    return (shares[0] + shares[1]).to(torch.bfloat16).to(dtype)


def test_two_ranks_end_with_deepspeeds_fp16_sum_of_halves(tmp_path: Path) -> None:
    ranks = run_ranks(_one_step, 2, tmp_path)
    expected = {"backbone": _hand_reduced(torch.bfloat16), "head": _hand_reduced(torch.float32)}
    assert torch.isfinite(expected["backbone"]).all()   # divided before the cast: 7e4 / 2 fits fp16
    for rank in ranks:
        for name, grad in rank["grads"].items():
            assert grad.dtype == expected[name].dtype and torch.equal(grad, expected[name]), name
        # SGD at lr 1 on the fp32 masters: each master moved by exactly the reduced gradient, not rounded again.
        for before, after, name in zip(rank["masters_before"], rank["masters"], ["backbone", "head"]):
            assert torch.equal(after, before - expected[name].float()), name
    # Not DDP's average in each dtype (the arithmetic before): the fp32 head's differs in the fp16 rounding;
    # nor the fp32 head's gradient kept out of the bf16 bucket (DeepSpeed's bucket has the model's bf16 dtype).
    assert not torch.equal(expected["head"], (INPUTS[0] + INPUTS[1]) / 2)
    fp32_bucket = [(x / 2).to(torch.float16) for x in INPUTS]
    assert not torch.equal(expected["head"], (fp32_bucket[0] + fp32_bucket[1]).float())
