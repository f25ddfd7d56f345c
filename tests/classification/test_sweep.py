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


def _official_lrs(base_lr: float, iters_per_epoch: int, epochs: int, warmup_epochs: int) -> list[float]:
    """The lr of each step in OpenGVLab/InternVL classification/main.py: build_scheduler, then after every
    step `lr_scheduler.step_update(epoch * num_steps + idx)`."""
    from timm.scheduler import CosineLRScheduler

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = CosineLRScheduler(optimizer, t_initial=epochs * iters_per_epoch, lr_min=0.0, warmup_lr_init=0.0,
                                  warmup_t=warmup_epochs * iters_per_epoch, cycle_limit=1, t_in_epochs=False)
    used = []
    for epoch in range(epochs):
        for idx in range(iters_per_epoch):
            used.append(optimizer.param_groups[0]["lr"])
            scheduler.step_update(epoch * iters_per_epoch + idx)
    return used


def test_schedule_follows_the_official_call_sequence_step_for_step():
    specs = head_specs(["linear"], [0.1, 0.4])
    trainer = _trainer(specs, total_batch=512, iters_per_epoch=4, epochs=3)
    seen = []
    for step in range(12):
        seen.append([g["lr"] for g in trainer.param_groups])
        trainer.step(*_feats(step), SoftTargetCrossEntropy())
    lows = [a for a, _ in seen]
    assert lows == pytest.approx(_official_lrs(0.1, 4, 3, 1))
    # Steps 0 and 1 at 0, then the warm-up one step behind the counter, then the cosine over all 12.
    assert lows[:5] == pytest.approx([0.0, 0.0, 0.025, 0.05, 0.075])
    assert lows[5] == pytest.approx(0.05 * (1 + math.cos(math.pi * 4 / 12)))
    assert all(b == pytest.approx(4 * a) for a, b in seen)           # every head keeps its own peak


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
    for spec in specs:   # bit for bit: the grid beside a head changes none of its numbers
        for a, b in zip(together.bank.heads[spec.key].state_dict().values(),
                        alone[spec.key].bank.heads[spec.key].state_dict().values()):
            assert torch.equal(a, b), spec.key
        for a, b in zip(together.ema.module.heads[spec.key].state_dict().values(),
                        alone[spec.key].ema.module.heads[spec.key].state_dict().values()):
            assert torch.equal(a, b), spec.key


def test_the_bank_summarises_each_token_batch_once_for_all_attention_pooling_heads(monkeypatch):
    from probes.classification import sweep

    calls = []
    real = sweep.token_summaries
    monkeypatch.setattr(sweep, "token_summaries", lambda tokens: calls.append(tokens) or real(tokens))
    bank = HeadBank(head_specs(["linear", "attention_pooling"], [0.1, 0.2, 0.5]), DIM, HEADS, PREFIX)
    bank(_feats(0)[0])
    assert len(calls) == 1


def _grads_at_optimizer_step(trainer, monkeypatch):
    """Each head's gradients as its optimizer receives them (filled by the next step)."""
    seen = {}
    for key, opt in trainer.optimizers.items():
        def spy(*a, _real=opt.step, _key=key, **k):
            seen[_key] = [p.grad.clone() for p in trainer.bank.heads[_key].parameters()]
            return _real(*a, **k)
        monkeypatch.setattr(opt, "step", spy)
    return seen


def test_clipping_rescales_only_the_heads_over_the_limit_with_clip_grad_norms_numbers(monkeypatch):
    specs = head_specs(["linear", "attention_pooling"], [0.1])
    feats, soft = _feats(0)
    raw_trainer = _trainer(specs, clip_grad=None)
    raw = _grads_at_optimizer_step(raw_trainer, monkeypatch)
    raw_trainer.step(feats, soft, SoftTargetCrossEntropy())
    norms = {k: torch.nn.utils.get_total_norm(g).item() for k, g in raw.items()}
    low, high = sorted(norms, key=norms.get)
    limit = (norms[low] * norms[high]) ** 0.5   # one head over the limit, one within it
    expected = {}
    for key, grads in raw.items():   # torch's own clipping of the same gradients
        params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        torch.nn.utils.clip_grad_norm_(params, limit)
        expected[key] = [p.grad for p in params]

    trainer = _trainer(specs, clip_grad=limit)
    seen = _grads_at_optimizer_step(trainer, monkeypatch)
    rescaled = []
    real_mul = torch._foreach_mul_
    monkeypatch.setattr(torch, "_foreach_mul_", lambda tensors, *a, **k: rescaled.append(tensors[0]) or
                        real_mul(tensors, *a, **k))
    trainer.step(feats, soft, SoftTargetCrossEntropy())
    for key in expected:
        assert all(torch.equal(a, b) for a, b in zip(seen[key], expected[key])), key
    # Only the clipped head's gradients took a rescaling pass (torch scales every head, by 1 when within the limit).
    high_grads = {id(p.grad) for p in trainer.bank.heads[high].parameters()}
    assert len(rescaled) == 1 and id(rescaled[0]) in high_grads


def test_each_heads_ema_step_equals_timms_model_ema_update():
    from timm.utils import ModelEmaV3

    specs = head_specs(["linear", "attention_pooling"], [0.1, 1.0])
    trainer = _trainer(specs, iters_per_epoch=1, warmup_epochs=0)
    reference = ModelEmaV3(trainer.bank, decay=0.998)
    for step in range(3):
        trainer.step(*_feats(step), SoftTargetCrossEntropy())
        reference.update(trainer.bank)
    ours, theirs = trainer.ema.module.state_dict(), reference.module.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)   # BN statistics and counters included


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



def test_grid_heads_learn_only_from_kept_samples_and_published_heads_from_all():
    specs = head_specs(["linear", "attention_pooling"], [0.1], published_lr=0.1)
    assert [s.key for s in specs][:2] == ["linear_published", "attention_pooling_published"]
    trainer = _trainer(specs)
    feats, soft = _feats(0)
    keep = torch.tensor([True, False, True, True, False, True, True, True])
    with torch.no_grad():
        logits = copy.deepcopy(trainer.bank).train()(feats)   # the step's own forward (BN on this batch)
    losses = trainer.step(feats, soft, SoftTargetCrossEntropy(), keep)
    loss = SoftTargetCrossEntropy()
    for spec in specs:
        expected = loss(logits[spec.key], soft) if spec.published else loss(logits[spec.key][keep], soft[keep])
        assert losses[spec.key] == pytest.approx(float(expected), rel=1e-5), spec.key


def test_mixup_draws_once_per_group_and_pairs_images_within_it():
    import numpy as np
    from timm.data import Mixup

    from probes.classification.pipeline import GroupedMixup

    np.random.seed(0)
    mix = GroupedMixup(Mixup(mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=10), group=4)
    images = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 3, 2, 2).clone()
    targets = torch.arange(8) % 10
    mixed, soft = mix(images, targets)
    assert mixed.data_ptr() == images.data_ptr()   # mixed in place: no copy of a 1,024-image batch
    values = mixed[:, 0, 0, 0]
    lams = []
    for start in (0, 4):
        group = torch.arange(start, start + 4)
        partner = group.flip(0)
        lam = soft[start, targets[start]].item()   # own class weight = lambda (no smoothing)
        lams.append(lam)
        torch.testing.assert_close(values[group], lam * group.float() + (1 - lam) * partner.float())
    assert lams[0] != pytest.approx(lams[1])   # one draw per group, not one per batch
    held = torch.tensor([False, True, False, False, False, False, False, False])
    assert mix.partners(held).tolist() == [False, True, True, False, False, False, False, False]


def test_the_published_head_and_its_grid_twin_have_their_own_side_file_names():
    from probes.classification.predictions import kept_heads

    specs = head_specs(["linear"], [0.1, 0.5], published_lr=0.1)
    names = kept_heads(specs, [("linear_lr0p1", False)], [("linear_published", False)], last_layer=4)
    assert names == {("linear_published", False): "linear_lr0.1_L4_raw",      # the name old side files used
                     ("linear_lr0p1", False): "linear_lr0.1_L4_raw_grid"}
