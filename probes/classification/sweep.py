"""Many probe heads trained together on one set of frozen features (one backbone pass for all).

Every head (probe type × learning rate × block) has its own SGD optimizer, its own per-iteration
cosine schedule, its own gradient clipping, its own fp16 loss scaler and its own EMA copy: each head
trains exactly as it would alone, so the published head's numbers do not depend on the grid beside it.
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, replace
from typing import Callable, ContextManager, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch import nn
from torch.profiler import record_function

from probes.classification.heads import build_head, linear_input, token_summaries
from probes.errors import TrainingDivergedError


@dataclass(frozen=True)
class HeadSpec:
    """One head of the sweep: a probe type, its base lr (per 512 images) and the block it reads.

    `published` marks the published head: it trains on every training image, as the official run does;
    the grid heads leave the held-out images out of their loss, because the held-out split picks among them.
    """
    probe: str
    lr: float
    layer: Optional[int] = None   # a block counted from 1; None = the last block in use
    published: bool = False
    replica: int = 0              # training replica (`train.seeds`); 0 is the head a 1-seed run trains

    @property
    def key(self) -> str:
        """A ModuleDict-safe name, e.g. ``linear_lr0p1``, ``linear_lr0p1_L12``, ``linear_published`` or, for
        replica 2 of it, ``linear_published_seed2`` (replica 0 keeps the plain key, hence its initialisation)."""
        if self.published:
            name = f"{self.probe}_published"
        else:
            name = f"{self.probe}_lr{self.lr:g}".replace(".", "p").replace("-", "m")
            name = name if self.layer is None else f"{name}_L{self.layer}"
        return name if self.replica == 0 else f"{name}_seed{self.replica}"

    @property
    def first(self) -> "HeadSpec":
        """Replica 0 of this head (the head itself when it is replica 0)."""
        return replace(self, replica=0)

    @property
    def feature(self) -> str:
        """The feature this head reads."""
        base = "pooled" if self.probe == "linear" else "tokens"
        return base if self.layer is None else f"{base}@{self.layer}"


@dataclass(frozen=True)
class FeatureNeeds:
    """Which features a backbone pass must produce for a set of heads."""
    pooled: bool
    tokens: bool
    layers: tuple = ()   # extra blocks (counted from 1) whose pooled features linear heads read

    @classmethod
    def of(cls, specs: Sequence[HeadSpec]) -> "FeatureNeeds":
        """What the given heads read."""
        return cls(pooled=any(s.feature == "pooled" for s in specs),
                   tokens=any(s.feature == "tokens" for s in specs),
                   layers=tuple(sorted({s.layer for s in specs if s.layer is not None})))


def head_specs(probes: Sequence[str], lrs: Sequence[float], layers: Sequence[int] = (),
               published_lr: Optional[float] = None, seeds: int = 1) -> List[HeadSpec]:
    """Every probe type crossed with every learning rate; linear heads on each extra block too.

    With `published_lr`, each probe's published head comes first (trained on every image). With `seeds` K,
    every head has K replicas: replica 0 first (the heads of a 1-seed run, in their order), then the others.
    """
    specs = [HeadSpec(p, float(published_lr), published=True) for p in probes] if published_lr is not None else []
    specs += [HeadSpec(p, float(lr)) for p in probes for lr in lrs]
    specs += [HeadSpec("linear", float(lr), layer) for layer in layers for lr in lrs]
    return specs + [replace(s, replica=r) for r in range(1, seeds) for s in specs]


def replica_feature(feature: str, replica: int) -> str:
    """The name of a feature a replica reads from its own batch (a cached run's own data order)."""
    return f"{feature}#{replica}"


def make_features(tokens: torch.Tensor, num_prefix_tokens: int, needs: FeatureNeeds,
                  by_layer: Optional[Mapping[int, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
    """The inputs the heads read: pooled features (linear), all tokens (attention pooling), per-block pooled."""
    feats: Dict[str, torch.Tensor] = {}
    if needs.pooled:
        feats["pooled"] = linear_input(tokens, num_prefix_tokens)
    if needs.tokens:
        feats["tokens"] = tokens
    for layer in needs.layers:
        feats[f"pooled@{layer}"] = linear_input(by_layer[layer], num_prefix_tokens)
    return feats


def head_seed(seed: int, key: str) -> int:
    """A head's initialisation seed: a stable function of the run's seed and the head's key."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{key}".encode()).digest()[:4], "little")


class HeadBank(nn.Module):
    """All heads of a sweep; ``forward`` maps shared features to each head's logits."""

    def __init__(self, specs: Sequence[HeadSpec], embed_dim: int, num_heads: int,
                 num_prefix_tokens: int, num_classes: int = 1000, seed: int = 0) -> None:
        super().__init__()
        self.specs = list(specs)
        self.heads = nn.ModuleDict()
        for s in self.specs:
            # Each head is initialised from its own seed (the run's seed and its key), so the published head
            # starts the same whichever grid heads are trained beside it: the grid is not number-shaping.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(head_seed(seed, s.key))
                self.heads[s.key] = build_head(s.probe, embed_dim, num_heads, num_prefix_tokens, num_classes)

    @property
    def needs(self) -> FeatureNeeds:
        """The features these heads read."""
        return FeatureNeeds.of(self.specs)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Logits of every head, keyed by ``HeadSpec.key``.

        A replica reads ``replica_feature(feature, r)`` where the batch has it (a cached run gives each
        replica its own data order), else the shared feature (the backbone pass, evaluation).
        """
        # One affine-free LayerNorm and one token mean per token batch serve every attention-pooling head.
        shared: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
        logits = {}
        for s in self.specs:
            name = replica_feature(s.feature, s.replica)
            name = name if name in feats else s.feature
            if s.probe == "linear":
                logits[s.key] = self.heads[s.key](feats[name])
                continue
            if name not in shared:
                shared[name] = token_summaries(feats[name])
            logits[s.key] = self.heads[s.key](feats[name], *shared[name])
        return logits


def _kept_share(local: int, device: torch.device) -> float:
    """The factor that makes DDP's average of per-process means the mean over every process's kept samples.

    DDP averages gradients over W processes; a process keeping n of the K samples kept in all weights its
    mean by n * W / K. One process: 1.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return 1.0
    world = torch.distributed.get_world_size()
    total = torch.tensor([float(local)], device=device)
    torch.distributed.all_reduce(total)
    return local * world / float(total.item()) if total.item() > 0 else 0.0


class SweepTrainer:
    """Optimizers, schedules, clipping, loss scaling and EMA for a HeadBank; ``step`` updates every head."""

    def __init__(self, bank: HeadBank, *, total_batch: int, iters_per_epoch: int, epochs: int,
                 warmup_epochs: float = 1.0, momentum: float = 0.9, nesterov: bool = True,
                 weight_decay: float = 0.0, clip_grad: Optional[float] = 5.0,
                 ema_decay: float = 0.998, lr_batch_ref: int = 512, model: Optional[nn.Module] = None,
                 loss_scaling: bool = False, autocast: Optional[Callable[[], ContextManager]] = None) -> None:
        self.bank = bank
        # The heads' mixed precision (a fresh context per use); none: full precision.
        self.autocast = autocast or contextlib.nullcontext
        # `model` is what is called in forward (the DDP wrapper under torchrun); bank holds weights.
        self.model = model if model is not None else bank
        total = max(1, iters_per_epoch * epochs)
        self.optimizers: Dict[str, torch.optim.SGD] = {}
        self.schedulers: Dict[str, CosineLRScheduler] = {}
        self.scalers: Dict[str, torch.amp.GradScaler] = {}
        device = next(bank.parameters()).device.type
        for spec in bank.specs:
            # The fused kernel updates each tensor in one pass (a sweep holds ~60M head parameters at C=1024).
            self.optimizers[spec.key] = torch.optim.SGD(
                [{"params": list(bank.heads[spec.key].parameters()), "name": spec.key}],
                lr=spec.lr * total_batch / lr_batch_ref, momentum=momentum, nesterov=nesterov,
                weight_decay=weight_decay, fused=True)
            # Cosine over the whole run, stepped each iteration; the first epoch a linear warm-up from 0
            # (timm's CosineLRScheduler, as the official loop).
            self.schedulers[spec.key] = CosineLRScheduler(
                self.optimizers[spec.key], t_initial=total, lr_min=0.0,
                warmup_t=int(warmup_epochs * iters_per_epoch), warmup_lr_init=0.0, warmup_prefix=False,
                t_in_epochs=False)
            # fp16 training scales each head's loss on its own, so one head's overflow skips only its step.
            self.scalers[spec.key] = torch.amp.GradScaler(device, enabled=loss_scaling)
        self.ema = ModelEmaV3(bank, decay=ema_decay)
        self.clip_grad = clip_grad
        self.step_count = 0
        self.published_keys = frozenset(s.key for s in bank.specs if s.published)
        self.replica_of = {s.key: s.replica for s in bank.specs}

    @property
    def param_groups(self) -> List[dict]:
        """Every head's parameter group, in head order (its current lr, initial lr, name)."""
        return [opt.param_groups[0] for opt in self.optimizers.values()]

    def step(self, feats: Mapping[str, torch.Tensor], soft_targets: Union[torch.Tensor, Mapping[int, torch.Tensor]],
             loss_fn: nn.Module,
             grid_keep: Optional[torch.Tensor] = None) -> Dict[str, float]:
        """One optimisation step of every head on the same features; returns each head's loss.

        `grid_keep` (one bool per sample): the samples the grid heads learn from; the published heads learn
        from all. None: every head learns from every sample. `soft_targets` may map each replica to the
        targets of its own batch (a cached run's own data order; no `grid_keep` then).
        """
        per_replica = isinstance(soft_targets, Mapping)
        if per_replica and grid_keep is not None:
            raise ValueError("per-replica batches take no grid_keep mask (cached runs keep no held-out image)")
        self.model.train()
        # The record_function labels name the step's phases in a profile (benchmarks/heads_step.py).
        with record_function("heads.forward"), self.autocast():
            logits = self.model(feats)
        with record_function("heads.loss"):
            losses = self._losses(logits, soft_targets, loss_fn, grid_keep, per_replica)
            stacked = torch.stack(list(losses.values()))
            finite = torch.isfinite(stacked).tolist()   # one device sync for every head
        for (key, loss), ok in zip(losses.items(), finite):
            if not ok:
                raise TrainingDivergedError(
                    f"head {key} has a non-finite loss ({loss.item()}) at step {self.step_count + 1} (likely an "
                    "fp16 overflow: try train.precision=bf16 or fp32, or a lower lr); no rows written")
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        # Heads share no parameters, so the sum's gradient is each head's own (scaled) loss gradient.
        with record_function("heads.backward"):
            torch.stack([self.scalers[k].scale(loss) for k, loss in losses.items()]).sum().backward()
        # Each head's update runs to its end before the next head's starts (unscale, clip, SGD step, EMA), so
        # its gradients, momentum and weights are still in the CPU's cache from one pass to the next.
        decay = self.ema.get_decay()
        for key, opt in self.optimizers.items():
            scaler = self.scalers[key]
            with record_function("heads.clip"):
                scaler.unscale_(opt)
                if self.clip_grad:
                    self._clip(key, self.clip_grad)
            with record_function("heads.sgd"):
                scaler.step(opt)
                scaler.update()
            with record_function("heads.ema"):
                self._update_ema(key, decay)
        # The official loop calls `lr_scheduler.step_update(epoch * num_steps + idx)` after step `idx`, so
        # step k runs at the schedule's value for k - 1 (steps 0 and 1 both at the warm-up's start).
        for scheduler in self.schedulers.values():
            scheduler.step_update(self.step_count)
        self.step_count += 1
        return dict(zip(losses, stacked.detach().tolist()))

    def _losses(self, logits: Mapping[str, torch.Tensor], soft_targets: Union[torch.Tensor, Mapping[int, torch.Tensor]],
                loss_fn: nn.Module, grid_keep: Optional[torch.Tensor], per_replica: bool) -> Dict[str, torch.Tensor]:
        """Each head's loss: the published heads' on every sample, the grid heads' on the kept ones."""
        # One host sync per step for the mask, not one per head.
        kept = grid_keep.nonzero().squeeze(1) if grid_keep is not None else None
        kept_targets = soft_targets.index_select(0, kept) if kept is not None and len(kept) else None
        share = _kept_share(len(kept), soft_targets.device) if kept is not None else 1.0
        losses = {}
        for key, value in logits.items():
            if per_replica:
                losses[key] = loss_fn(value.float(), soft_targets[self.replica_of[key]])
            elif kept is None or key in self.published_keys:
                losses[key] = loss_fn(value.float(), soft_targets)
            elif kept_targets is not None:
                losses[key] = loss_fn(value.float().index_select(0, kept), kept_targets) * share
            else:   # no sample a grid head may learn from in this batch: no gradient
                losses[key] = value.float().sum() * 0.0
        return losses

    def _clip(self, key: str, max_norm: float) -> None:
        """Clip one head's gradient norm to ``max_norm`` with ``clip_grad_norm_``'s numbers.

        torch rescales the gradients by min(1, max_norm / (norm + 1e-6)) even when that is 1, so as not to wait
        on the device; on the CPU, where reading the factor costs no wait, a head within the limit keeps its
        gradients untouched: the same numbers without a pass over them.
        """
        params = [p for p in self.bank.heads[key].parameters() if p.grad is not None]
        if not params:
            return
        norm = torch.nn.utils.get_total_norm([p.grad for p in params], 2.0)
        if norm.device.type == "cpu" and torch.clamp(max_norm / (norm + 1e-6), max=1.0).item() == 1.0:
            return   # the very factor clip_grads_with_norm_ would multiply by
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)

    @torch.no_grad()
    def _update_ema(self, key: str, decay: float) -> None:
        """One head's EMA step, as ``ModelEmaV3.update`` does it for the whole bank (lerp floats, copy counters)."""
        floats: List[List[torch.Tensor]] = [[], []]
        for ema_v, v in zip(self.ema.module.heads[key].state_dict().values(),
                            self.bank.heads[key].state_dict().values()):
            if ema_v.is_floating_point():
                floats[0].append(ema_v)
                floats[1].append(v)
            else:
                ema_v.copy_(v)
        torch._foreach_lerp_(floats[0], floats[1], weight=1.0 - decay)

    def current_lrs(self) -> Dict[str, float]:
        """The lr each head uses at the next step."""
        return {g["name"]: g["lr"] for g in self.param_groups}

    def state_dict(self) -> Dict[str, object]:
        """Everything needed to continue training exactly where it stopped."""
        return {"bank": self.bank.state_dict(), "ema": self.ema.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
                "step": self.step_count}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore a state written by ``state_dict``."""
        self.bank.load_state_dict(state["bank"])
        self.ema.load_state_dict(state["ema"])
        for part, owners in (("optimizers", self.optimizers), ("schedulers", self.schedulers),
                             ("scalers", self.scalers)):
            for key, owner in owners.items():
                owner.load_state_dict(state[part][key])
        self.step_count = int(state["step"])
