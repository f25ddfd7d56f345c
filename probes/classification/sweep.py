"""Many probe heads trained together on one set of frozen features (one backbone pass for all).

Every head (probe type × learning rate) has its own SGD parameter group, its own per-iteration
cosine schedule (through the group's base lr), its own gradient clipping and its own EMA copy.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import torch
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch import nn

from probes.classification.heads import build_head, linear_input, normalize_tokens


@dataclass(frozen=True)
class HeadSpec:
    """One head of the sweep: a probe type and its base lr (per 512 images)."""
    probe: str
    lr: float

    @property
    def key(self) -> str:
        """A ModuleDict-safe name, e.g. ``linear_lr0p1``."""
        return f"{self.probe}_lr{self.lr:g}".replace(".", "p").replace("-", "m")


def head_specs(probes: Sequence[str], lrs: Sequence[float]) -> List[HeadSpec]:
    """Every probe type crossed with every learning rate."""
    return [HeadSpec(p, float(lr)) for p in probes for lr in lrs]


def make_features(tokens: torch.Tensor, num_prefix_tokens: int, need_tokens: bool,
                  need_pooled: bool) -> Dict[str, torch.Tensor]:
    """The inputs the heads read: pooled features (linear) and/or all tokens (attention pooling)."""
    feats: Dict[str, torch.Tensor] = {}
    if need_pooled:
        feats["pooled"] = linear_input(tokens, num_prefix_tokens)
    if need_tokens:
        feats["tokens"] = tokens
    return feats


class HeadBank(nn.Module):
    """All heads of a sweep; ``forward`` maps shared features to each head's logits."""

    def __init__(self, specs: Sequence[HeadSpec], embed_dim: int, num_heads: int,
                 num_prefix_tokens: int, num_classes: int = 1000) -> None:
        super().__init__()
        self.specs = list(specs)
        self.heads = nn.ModuleDict({
            s.key: build_head(s.probe, embed_dim, num_heads, num_prefix_tokens, num_classes)
            for s in self.specs})

    @property
    def need_tokens(self) -> bool:
        """Whether any head reads the full token sequence."""
        return any(s.probe == "attention_pooling" for s in self.specs)

    @property
    def need_pooled(self) -> bool:
        """Whether any head reads the pooled (class ⊕ mean patch) feature."""
        return any(s.probe == "linear" for s in self.specs)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Logits of every head, keyed by ``HeadSpec.key``."""
        normalized = None
        if self.need_tokens:
            # One affine-free LayerNorm of the tokens serves every attention-pooling head.
            normalized = normalize_tokens(feats["tokens"])
        return {s.key: (self.heads[s.key](feats["pooled"]) if s.probe == "linear"
                        else self.heads[s.key](feats["tokens"], normalized))
                for s in self.specs}


class SweepTrainer:
    """Optimizer, schedule, clipping and EMA for a HeadBank; one ``step`` updates every head."""

    def __init__(self, bank: HeadBank, *, total_batch: int, iters_per_epoch: int, epochs: int,
                 warmup_epochs: float = 1.0, momentum: float = 0.9, nesterov: bool = True,
                 weight_decay: float = 0.0, clip_grad: Optional[float] = 5.0,
                 ema_decay: float = 0.998, lr_batch_ref: int = 512,
                 model: Optional[nn.Module] = None) -> None:
        self.bank = bank
        # `model` is what is called in forward (the DDP wrapper under torchrun); bank holds weights.
        self.model = model if model is not None else bank
        groups = [{"params": list(bank.heads[s.key].parameters()),
                   "lr": s.lr * total_batch / lr_batch_ref, "name": s.key} for s in bank.specs]
        # The fused kernel updates each tensor in one pass (the sweep holds ~60M head parameters
        # at C=1024, so per-step optimizer traffic matters next to the backbone).
        self.optimizer = torch.optim.SGD(groups, lr=0.0, momentum=momentum, nesterov=nesterov,
                                         weight_decay=weight_decay, fused=True)
        total = max(1, iters_per_epoch * epochs)
        # Cosine over the whole run, stepped each iteration; the first epoch a linear warm-up
        # from 0 (timm scales each group's own base lr, so every head keeps its own schedule).
        self.scheduler = CosineLRScheduler(
            self.optimizer, t_initial=total, lr_min=0.0, warmup_t=int(warmup_epochs * iters_per_epoch),
            warmup_lr_init=0.0, warmup_prefix=False, t_in_epochs=False)
        self.ema = ModelEmaV3(bank, decay=ema_decay)
        self.clip_grad = clip_grad
        self.step_count = 0

    def step(self, feats: Mapping[str, torch.Tensor], soft_targets: torch.Tensor,
             loss_fn: nn.Module, autocast=None) -> Dict[str, float]:
        """One optimisation step of every head on the same features; returns each head's loss."""
        self.model.train()
        with (autocast if autocast is not None else contextlib.nullcontext()):
            logits = self.model(feats)
        losses = {k: loss_fn(v.float(), soft_targets) for k, v in logits.items()}
        self.optimizer.zero_grad(set_to_none=True)
        # Heads share no parameters, so the sum's gradient is each head's own loss gradient.
        torch.stack(list(losses.values())).sum().backward()
        if self.clip_grad:
            for head in self.bank.heads.values():
                torch.nn.utils.clip_grad_norm_(head.parameters(), self.clip_grad)
        self.optimizer.step()
        self.step_count += 1
        self.scheduler.step_update(self.step_count)
        self.ema.update(self.bank)
        return {k: float(v.detach()) for k, v in losses.items()}

    def current_lrs(self) -> Dict[str, float]:
        """The lr each head uses at the next step."""
        return {g["name"]: g["lr"] for g in self.optimizer.param_groups}

    def state_dict(self) -> Dict[str, object]:
        """Everything needed to continue training exactly where it stopped."""
        return {"bank": self.bank.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "step": self.step_count}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore a state written by ``state_dict``."""
        self.bank.load_state_dict(state["bank"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step_count = int(state["step"])

