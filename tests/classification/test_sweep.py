"""Many heads on one set of features: own lr group, own schedule, own clipping, own EMA."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from timm.data.mixup import mixup_target
from timm.loss import SoftTargetCrossEntropy

from probes.classification.sweep import FeatureNeeds, HeadBank, SweepTrainer, head_specs, make_features

DIM, HEADS, PREFIX = 16, 2, 1


def _feats(seed: int, batch: int = 8):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, 1 + 4, DIM, generator=g)
    targets = torch.randint(0, 1000, (batch,), generator=g)
    return make_features(tokens, PREFIX, FeatureNeeds(True, True)), mixup_target(targets, 1000, 1.0, 0.1)


def _trainer(specs, seed=0, **kw):
    torch.manual_seed(seed)
    bank = HeadBank(specs, DIM, HEADS, PREFIX)
    args = dict(total_batch=1024, iters_per_epoch=4, epochs=3)
    args.update(kw)
    return SweepTrainer(bank, **args)


def test_default_sweep_is_both_probes_times_eight_lrs():
    from probes.classification.config import load_config
    cfg = load_config()
    specs = head_specs(cfg.probe.probes, cfg.probe.head_lrs)
    assert len(specs) == 16 and len({s.key for s in specs}) == 16
    assert cfg.probe.head_lrs[0] == 0.1  # the published lr is always in the grid
    assert load_config(None, {"probe.lrs": [0.5, 1.0]}).probe.head_lrs == (0.1, 0.5, 1.0)


def test_each_head_has_its_group_with_lr_scaled_by_batch_over_512():
    specs = head_specs(["linear", "attention_pooling"], [0.1, 0.4])
    trainer = _trainer(specs, total_batch=1024)
    groups = trainer.param_groups
    assert [g["name"] for g in groups] == [s.key for s in specs]
    assert [g["initial_lr"] for g in groups] == pytest.approx([0.2, 0.8, 0.2, 0.8])
    for opt in trainer.optimizers.values():
        assert opt.defaults["momentum"] == 0.9 and opt.defaults["nesterov"] and opt.defaults["weight_decay"] == 0.0


def test_schedule_is_one_epoch_warmup_from_zero_then_per_iteration_cosine_to_zero():
    specs = head_specs(["linear"], [0.1, 0.4])
    trainer = _trainer(specs, total_batch=512, iters_per_epoch=4, epochs=3)
    seen = []
    for step in range(12):
        seen.append([g["lr"] for g in trainer.param_groups])
        trainer.step(*_feats(step), SoftTargetCrossEntropy())
    lows = [a for a, _ in seen]
    assert lows[0] == 0.0
    assert lows[1:4] == pytest.approx([0.025, 0.05, 0.075])          # linear warm-up over epoch 1
    assert lows[4] == pytest.approx(0.05 * (1 + math.cos(math.pi * 4 / 12)))  # cosine over all 12
    assert all(b == pytest.approx(4 * a) for a, b in seen)           # every head keeps its own peak
    assert trainer.current_lrs()[specs[0].key] == pytest.approx(0.0)  # decayed to 0 at the end


def test_heads_trained_together_equal_heads_trained_alone():
    specs = head_specs(["linear", "attention_pooling"], [0.1, 1.0])
    together = _trainer(specs)
    alone = {}
    for spec in specs:
        t = _trainer([spec])
        t.bank.heads[spec.key].load_state_dict(together.bank.heads[spec.key].state_dict())
        t.ema.set(t.bank)
        alone[spec.key] = t
    loss = SoftTargetCrossEntropy()
    for step in range(6):
        feats, soft = _feats(step)
        together.step(feats, soft, loss)
        for t in alone.values():
            t.step(feats, soft, loss)
    for spec in specs:
        for a, b in zip(together.bank.heads[spec.key].state_dict().values(),
                        alone[spec.key].bank.heads[spec.key].state_dict().values()):
            torch.testing.assert_close(a, b)
        for a, b in zip(together.ema.module.heads[spec.key].state_dict().values(),
                        alone[spec.key].ema.module.heads[spec.key].state_dict().values()):
            torch.testing.assert_close(a, b)


def test_gradients_are_clipped_per_head(monkeypatch):
    specs = head_specs(["linear"], [0.1, 0.2])
    trainer = _trainer(specs, clip_grad=0.5)
    norms = {}
    for spec in specs:
        opt = trainer.optimizers[spec.key]

        def inspect(*a, _real=opt.step, _key=spec.key, **k):
            grads = [p.grad for p in trainer.bank.heads[_key].parameters()]
            norms[_key] = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()
            return _real(*a, **k)

        monkeypatch.setattr(opt, "step", inspect)
    feats, soft = _feats(0)
    feats["pooled"] = feats["pooled"] * 1e4  # huge gradients
    trainer.step(feats, soft, SoftTargetCrossEntropy())
    assert all(n == pytest.approx(0.5, rel=1e-4) for n in norms.values())


def test_ema_follows_the_heads_with_decay_0998():
    specs = head_specs(["linear"], [1.0])
    trainer = _trainer(specs, iters_per_epoch=1, warmup_epochs=0)
    before = copy.deepcopy(trainer.ema.module.heads[specs[0].key].fc.weight.detach())
    trainer.step(*_feats(0), SoftTargetCrossEntropy())
    after = trainer.bank.heads[specs[0].key].fc.weight.detach()
    expected = 0.998 * before + 0.002 * after
    torch.testing.assert_close(trainer.ema.module.heads[specs[0].key].fc.weight, expected)
    assert not torch.equal(after, before)


def test_fp16_loss_scaling_skips_only_the_overflowing_heads_step():
    specs = head_specs(["linear"], [0.1, 0.2])
    trainer = _trainer(specs, loss_scaling=True, iters_per_epoch=1, warmup_epochs=0)
    bad, good = specs[0].key, specs[1].key
    trainer.bank.heads[bad].fc.weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))
    before = {k: trainer.bank.heads[k].fc.weight.detach().clone() for k in (bad, good)}
    trainer.step(*_feats(0), SoftTargetCrossEntropy())
    assert torch.equal(trainer.bank.heads[bad].fc.weight, before[bad])         # its step was skipped ...
    assert not torch.equal(trainer.bank.heads[good].fc.weight, before[good])   # ... the other head's was not
    assert trainer.scalers[bad].get_scale() < trainer.scalers[good].get_scale()


def test_a_non_finite_loss_stops_training_naming_the_head():
    from probes.errors import TrainingDivergedError

    specs = head_specs(["linear"], [0.1])
    trainer = _trainer(specs)
    feats, soft = _feats(0)
    feats["pooled"][0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match=rf"head {specs[0].key} has a non-finite loss .* at step 1"):
        trainer.step(feats, soft, SoftTargetCrossEntropy())

