"""The released head/full-tuning update as an mmengine optimizer wrapper: bf16 weights, fp32 masters.

InternVL-MMDetSeg trained head and full tuning with DeepSpeed 0.8.0 (its README pins it), ZeRO stage 1,
bf16 enabled (zero_configs/adam_zero1_bf16.json). Read from DeepSpeed 0.8.0's engine.py and
runtime/zero/stage_1_and_2.py, one step of that update is, for every trainable parameter:
  1. its gradient is copied into ZeRO's gradient bucket, whose dtype is the model's when the optimizer was
     built (bf16: the engine had cast the whole model), so the fp32 heads' gradients are rounded to bf16
     too; the bucket is divided by the world size there, cast to ZeRO's communication dtype, which 0.8.0
     defaults to fp16 whenever ZeRO is on (bf16 included; 0.9.0 made it fp32), summed over the ranks and
     copied back into the bf16 bucket, even on one GPU;
  2. taken to fp32 (a gradient that does not exist counts as zeros); a non-finite one skips the step;
  3. if `gradient_clipping` > 0 (not in the released config), all are multiplied by
     1 / ((norm + 1e-6) / max_norm) when that factor exceeds 1, norm = sqrt of the sum of the squared
     float64 norms of the step-1 gradients, rounded to fp32 on its way through the all-reduce;
  4. the optimizer (the config's AdamW with its layer-decay param groups) steps on the fp32 masters;
  5. the parameter takes its master rounded to bf16 (round to nearest even); fp32 tensors (the heads)
     take the bf16-rounded value too: DeepSpeed re-points every parameter at its bf16 buffer after the step.
The masters start as the parameters' bf16 values and are saved in, and restored from, the checkpoint.
Under DDP step 1 is DDP's reduction itself: the wrapper registers `grad_reduction.released_reduction_hook`
on the DDP model it is first given (`optim_context`), which rounds each gradient to bf16, divides it by the
world size there, casts to fp16, sums the fp16 copies and copies the sum back in bf16, as DeepSpeed does; the
wrapper then takes those gradients as they are. On one process (no DDP) the wrapper rounds them
bf16 -> fp16 -> bf16 itself.
"""
from __future__ import annotations

import contextlib
import logging
import math
from typing import Iterator, Optional

import torch
import torch.distributed as dist
from mmengine.optim import OptimWrapper
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer

from probes.errors import ConfigError
from probes.segmentation.grad_reduction import register_released_reduction
from probes.segmentation.partition import any_rank, broadcast_from_owners, gather_on_first, owners

log = logging.getLogger(__name__)

MASTERS_KEY = "fp32_masters"
_MASTER_ENTRY = "fp32_master"   # a gathered parameter's master, beside its optimizer state
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def _dtype(name: str, key: str) -> torch.dtype:
    if name not in _DTYPES:
        raise ConfigError(f"optim_wrapper.{key}={name!r} is not one of {', '.join(_DTYPES)}")
    return _DTYPES[name]


class ReleasedPrecisionOptimWrapper(OptimWrapper):
    """OptimWrapper whose optimizer steps on fp32 masters of the model's (bf16) parameters, as ZeRO-1 does.

    `grad_comm_dtype`: the dtype gradients are rounded through (DeepSpeed 0.8.0: float16);
    `weight_dtype`: the dtype of every parameter's value after a step and of the gradient bucket (bfloat16);
    `clip_grad=dict(max_norm=X)`: DeepSpeed's `gradient_clipping` arithmetic (off in the released runs);
    `partition`: on several processes, each parameter's master and optimizer state live on one rank only
    (ZeRO stage 1; `partition.py`), the same numbers in less memory; False keeps all of them on every rank.
    """

    def __init__(self, optimizer: Optimizer, grad_comm_dtype: str = "float16", weight_dtype: str = "bfloat16",
                 clip_grad: Optional[dict] = None, accumulative_counts: int = 1, partition: bool = True) -> None:
        if accumulative_counts != 1:
            raise ConfigError("ReleasedPrecisionOptimWrapper takes accumulative_counts=1 only (the released "
                              "gradient_accumulation_steps)")
        clip = dict(clip_grad or {})
        if clip and (clip.pop("type", "norm") != "norm" or set(clip) != {"max_norm"}):
            raise ConfigError(f"optim_wrapper.clip_grad={clip_grad!r}: ReleasedPrecisionOptimWrapper clips by "
                              "global norm only, as DeepSpeed's gradient_clipping (dict(max_norm=X))")
        if not isinstance(partition, bool):
            raise ConfigError(f"optim_wrapper.partition={partition!r} is not True or False")
        super().__init__(optimizer)
        self.max_norm = float(clip.get("max_norm", 0.0))
        self.grad_comm_dtype = _dtype(grad_comm_dtype, "grad_comm_dtype")
        self.weight_dtype = _dtype(weight_dtype, "weight_dtype")
        self.skipped_steps = 0
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.partitioned = partition and world > 1
        self.rank = dist.get_rank() if self.partitioned else 0
        self.model_params = [list(group["params"]) for group in optimizer.param_groups]
        self._flat = [p for params in self.model_params for p in params]
        self.owner_of = owners([p.numel() for p in self._flat], world) if self.partitioned else [0] * len(self._flat)
        # The optimizer steps on the masters: its groups (lr, weight decay, layer-decay scale) stay as built,
        # their tensors are swapped for fp32 masters of the parameters this rank owns (all, unpartitioned), so
        # its state is fp32, keyed by the masters from the start, and exists only on the owner.
        self._owned: list[int] = []   # flat indices of this rank's parameters, in the order of its masters
        flat = 0
        for group, params in zip(optimizer.param_groups, self.model_params):
            masters = []
            for param in params:
                if self.owner_of[flat] == self.rank:
                    masters.append(param.detach().to(torch.float32, copy=True))
                    self._owned.append(flat)
                flat += 1
            group["params"] = masters
        self._masters_set = False
        self._reducing_model: Optional[nn.Module] = None   # the DDP model whose comm hook reduces as DeepSpeed
        self._gathered: Optional[dict] = None              # rank 0's full state between gather_state and saving

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """mmengine's context for each train step; on the first one under DDP, install the released reduction."""
        # The step's DDP wrapper passes itself here before its first forward, so the hook is in place before
        # any gradient is reduced; a plain model (one process) keeps the wrapper's own fp16 rounding.
        if isinstance(model, DistributedDataParallel) and self._reducing_model is None:
            register_released_reduction(model, self.weight_dtype, self.grad_comm_dtype)
            self._reducing_model = model
        with super().optim_context(model):
            yield

    def _masters(self) -> list[torch.Tensor]:
        return [m for group in self.optimizer.param_groups for m in group["params"]]

    def _pairs(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        # (flat index, parameter, master) of the parameters this rank owns
        for index, master in zip(self._owned, self._masters()):
            yield index, self._flat[index], master

    @torch.no_grad()
    def _set_masters_from_params(self) -> None:
        # At the first step, after the model's init pass (and any load_from) wrote the weights.
        for param in self._flat:
            param.copy_(param.to(self.weight_dtype))
        for _, param, master in self._pairs():
            master.copy_(param)
        self._masters_set = True

    def _reduced_gradients(self) -> list[torch.Tensor]:
        """Every parameter's gradient as DeepSpeed reduced it, in the parameter's dtype (zeros for none)."""
        if self.partitioned and self._reducing_model is None:
            raise RuntimeError("a partitioned ReleasedPrecisionOptimWrapper steps on gradients reduced over all "
                               "ranks: give it the DDP model in optim_context before the first backward")
        grads = []
        for param in self._flat:
            grad = param.grad if param.grad is not None else torch.zeros_like(param)
            # Gradients the DDP hook reduced went through the bucket and fp16 there; rounding them again is no
            # longer a no-op near fp16's top (65504 is 65536 in bf16, inf in fp16).
            if self._reducing_model is None:
                grad = grad.to(self.weight_dtype).to(self.grad_comm_dtype).to(self.weight_dtype).to(grad.dtype)
            grads.append(grad)
        return grads

    def _clip(self, grads: list[torch.Tensor]) -> None:
        # Over every parameter's gradient, which every rank holds (the reduction is an all-reduce): each rank
        # computes the unpartitioned norm itself, in the same order, with no further collective.
        squares = sum(g.detach().double().norm(2).item() ** 2 for g in grads)
        norm = float(torch.tensor([squares], dtype=torch.float32).item()) ** 0.5
        self.message_hub.update_scalar("train/grad_norm", norm)
        factor = (norm + 1e-6) / self.max_norm
        if math.isfinite(norm) and factor > 1:
            for _, _, master in self._pairs():
                master.grad.mul_(1.0 / factor)

    def step(self, **kwargs) -> None:
        """Round the gradients, step the fp32 masters (unless a gradient is non-finite), write bf16 weights."""
        if not self._masters_set:
            self._set_masters_from_params()
        grads = self._reduced_gradients()
        for index, _, master in self._pairs():
            master.grad = grads[index].to(torch.float32, copy=True)
        finite = all(bool(torch.isfinite(m.grad).all()) for _, _, m in self._pairs())
        if self.partitioned:   # ZeRO's overflow check: one rank's non-finite gradient skips the step on all
            finite = not any_rank(not finite, self._flat[0].device)
        if not finite:
            self.skipped_steps += 1
            log.warning("a gradient is not finite in %s: step skipped, as ZeRO's overflow check skips it "
                        "(%d so far)", self.grad_comm_dtype, self.skipped_steps)
            self.zero_grad()
            return
        if self.max_norm > 0:
            self._clip(grads)
        self.optimizer.step(**kwargs)
        with torch.no_grad():
            for _, param, master in self._pairs():
                param.copy_(master.to(self.weight_dtype))
            if self.partitioned:   # each owner's bf16 value reaches every rank (ZeRO-1's all-gather)
                broadcast_from_owners([p.detach() for p in self._flat], self.owner_of)

    def zero_grad(self, **kwargs) -> None:
        """Drop the model's and the masters' gradients."""
        for param in self._flat:
            param.grad = None
        for master in self._masters():
            master.grad = None

    def gather_state(self) -> None:
        """Collect every rank's masters and optimizer state on rank 0 for the next `state_dict` (a collective).

        mmengine saves checkpoints on rank 0 alone (`Runner.save_checkpoint` is master_only), so the runner
        calls this on every rank just before (interrupts.atomic_saves); unpartitioned it does nothing.
        """
        if not self.partitioned:
            return
        if not self._masters_set:
            self._set_masters_from_params()
        entries = {index: {**self.optimizer.state.get(master, {}), _MASTER_ENTRY: master}
                   for index, _, master in self._pairs()}
        gathered = gather_on_first(entries, self.owner_of, self._flat[0].device)
        if gathered is None:
            return
        groups, masters, state, flat = [], [], {}, 0
        for group, params in zip(self.optimizer.param_groups, self.model_params):
            indices = list(range(flat, flat + len(params)))
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": indices})
            masters.append([gathered[i][_MASTER_ENTRY] for i in indices])
            state.update({i: {k: v for k, v in gathered[i].items() if k != _MASTER_ENTRY}
                          for i in indices if len(gathered[i]) > 1})
            flat += len(params)
        full = {"state": state, "param_groups": groups, MASTERS_KEY: masters}
        if self.base_param_settings is not None:
            full["base_param_settings"] = self.base_param_settings
        self._gathered = full

    def state_dict(self) -> dict:
        """The optimizer's state and the fp32 masters of every parameter, in the unpartitioned layout."""
        if self.partitioned:
            if self._gathered is None:
                raise RuntimeError("the partitioned optimizer state is on every rank: call gather_state() on "
                                   "every rank before state_dict() on rank 0")
            state, self._gathered = self._gathered, None
            return state
        if not self._masters_set:
            self._set_masters_from_params()
        state = super().state_dict()
        state[MASTERS_KEY] = [list(group["params"]) for group in self.optimizer.param_groups]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the masters and optimizer state this rank owns from a full (unpartitioned-layout) state."""
        state = dict(state_dict)
        masters = state.pop(MASTERS_KEY, None)
        if masters is None:
            raise ConfigError("the checkpoint's optimizer state has no fp32 master weights: it was not saved "
                              "by a precision='released' run")
        saved_groups = state["param_groups"]
        if [len(m) for m in masters] != [len(p) for p in self.model_params] or len(saved_groups) != len(masters):
            raise ConfigError("the checkpoint's fp32 master weights do not match this model's parameters")
        saved_masters = [m for group in masters for m in group]
        saved_ids = [i for group in saved_groups for i in group["params"]]
        # This rank's shard, renumbered as its own optimizer numbers its masters; any world size saved it.
        local_groups, local_state, local, flat = [], {}, 0, 0
        for saved, params in zip(saved_groups, self.model_params):
            ids = []
            for _ in params:
                if self.owner_of[flat] == self.rank:
                    if saved_ids[flat] in state["state"]:
                        local_state[local] = state["state"][saved_ids[flat]]
                    ids.append(local)
                    local += 1
                flat += 1
            local_groups.append({**{k: v for k, v in saved.items() if k != "params"}, "params": ids})
        with torch.no_grad():
            for index, _, master in self._pairs():
                master.copy_(saved_masters[index])
        self._masters_set = True
        local_dict = {"state": local_state, "param_groups": local_groups}
        if "base_param_settings" in state:
            local_dict["base_param_settings"] = state["base_param_settings"]
        super().load_state_dict(local_dict)
