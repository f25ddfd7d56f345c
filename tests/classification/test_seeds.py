"""`--seeds K`: K training replicas of every head on one backbone pass; rows score replica 0."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from probes.classification import runner
from probes.classification.cache import CachedSource
from probes.classification.sweep import HeadBank, SweepTrainer, head_specs, replica_feature
from probes.sidefiles import read_classification_predictions


def _numbers(rows):
    return {(r["probe"], r["head"], r["lr"], r["ema"], r["test_set"]): (r["top1"], r["selected"]) for r in rows}


def test_three_seeds_train_three_replicas_per_head_on_one_backbone_pass(tiny_cfg, tmp_path, count_backbone):
    common = dict(probe__lrs=[0.1, 1.0], train__epochs=1)
    one = runner.run_classify(tiny_cfg(runtime__out=str(tmp_path / "one"), **common))
    single = dict(count_backbone)
    count_backbone.update(n=0, images=0)
    three = runner.run_classify(tiny_cfg(runtime__out=str(tmp_path / "three"), train__seeds=3, **common))
    assert count_backbone == single          # 3x the heads, the backbone's cost unchanged
    # The rows are replica 0's: exactly the heads of the 1-seed run, in another run (its id says so).
    assert _numbers(three) == _numbers(one) and len(three) == len(one)
    assert {r["seeds"] for r in three} == {3} and {r["seeds"] for r in one} == {1}
    assert three[0]["run_id"] != one[0]["run_id"]
    assert all("3 training replicas of every head" in r["protocol_notes"] for r in three)
    # The side file holds every replica of each kept head (published and selected), replica 0 under its own name.
    sets = read_classification_predictions(tmp_path / "three" / three[0]["predictions"])
    heads = set(sets["IN-1K"].heads)
    kept = {h for h in heads if "_seed" not in h}
    assert heads == kept | {f"{h}_seed{r}" for h in kept for r in (1, 2)}
    # Replicas start elsewhere: at least one kept head's replicas predict differently from replica 0.
    differs = [not np.array_equal(sets[s].heads[h].top5, sets[s].heads[f"{h}_seed{r}"].top5)
               for s in sets for h in kept for r in (1, 2)]
    assert any(differs)


def test_cached_replicas_read_the_features_in_their_own_order(tiny_cfg, tmp_path):
    from probes.classification.distributed import DistInfo

    class Store:   # rows of a stored split: the feature of row i is i
        valid = np.ones(12, dtype=np.uint8)

        def valid_rows(self):
            return np.arange(12)

        def read(self, rows, pooled, tokens, device):
            return {"pooled": torch.as_tensor(rows, dtype=torch.float32)[:, None]}

    cfg = tiny_cfg(train__seeds=3, cache__batch_size=4)
    train = type("Train", (), {"targets": list(range(12)), "root": "x"})()
    dist = DistInfo(rank=0, world=1, device=torch.device("cpu"))
    source = CachedSource({"train": Store()}, train, cfg.cache, cfg.train, 1000, dist,
                          type("Needs", (), {"pooled": True, "tokens": False})())
    batches = list(source.train_batches(0))
    assert len(batches) == 3
    orders = [torch.cat([b[0][replica_feature("pooled", r)] if r else b[0]["pooled"] for b in batches]).flatten()
              for r in range(3)]
    assert all(sorted(o.tolist()) == list(range(12)) for o in orders)   # each replica sees every row once
    assert len({tuple(o.tolist()) for o in orders}) == 3                # in three different orders
    # Replica 0's order is the 1-seed run's.
    alone = CachedSource({"train": Store()}, train, cfg.cache, tiny_cfg(cache__batch_size=4).train, 1000, dist,
                         type("Needs", (), {"pooled": True, "tokens": False})())
    assert torch.equal(torch.cat([b[0]["pooled"] for b in alone.train_batches(0)]).flatten(), orders[0])
    # Each replica's targets are its own batch's.
    first = batches[0]
    for r in range(3):
        rows = (first[0][replica_feature("pooled", r)] if r else first[0]["pooled"]).flatten().long()
        assert torch.equal(first[1][r].argmax(1), rows)


def test_a_replica_learns_from_its_own_batch():
    specs = head_specs(["linear"], [0.5], seeds=2)
    assert [s.key for s in specs] == ["linear_lr0p5", "linear_lr0p5_seed1"]
    bank = HeadBank(specs, embed_dim=4, num_heads=1, num_prefix_tokens=0, num_classes=3, seed=0)
    trainer = SweepTrainer(bank, total_batch=4, iters_per_epoch=1, epochs=1, warmup_epochs=0)
    x = torch.randn(4, 4)
    targets = torch.eye(3)[[0, 1, 2, 0]]
    logits = bank({"pooled": x, replica_feature("pooled", 1): x.flip(0)})
    assert not torch.allclose(logits["linear_lr0p5"], logits["linear_lr0p5_seed1"])   # other init, other batch
    losses = trainer.step({"pooled": x, replica_feature("pooled", 1): x}, {0: targets, 1: targets.flip(0)},
                          torch.nn.CrossEntropyLoss())
    assert set(losses) == {"linear_lr0p5", "linear_lr0p5_seed1"}
    with pytest.raises(ValueError, match="grid_keep"):
        trainer.step({"pooled": x}, {0: targets, 1: targets}, torch.nn.CrossEntropyLoss(),
                     torch.ones(4, dtype=torch.bool))


def test_seeds_must_be_positive(tiny_cfg):
    from probes.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^train\.seeds must be a positive integer"):
        tiny_cfg(train__seeds=0)


def test_seeds_flag_sets_the_config_key():
    from probes.classification.commands import overrides_from_args
    from probes.cli import build_parser

    args = build_parser().parse_args(["classify", "--seeds", "3"])
    assert overrides_from_args(args)["train.seeds"] == 3


def test_a_cached_run_with_seeds_keeps_replica_0s_rows(tiny_cfg, tmp_path):
    common = dict(cache__dir=str(tmp_path / "cache"), probe__lrs=[0.1], cache__epochs=1, cache__batch_size=4,
                  cache__knn=False, cache__logreg=False)
    one = runner.run_classify(tiny_cfg(runtime__out=str(tmp_path / "one"), **common))
    two = runner.run_classify(tiny_cfg(runtime__out=str(tmp_path / "two"), train__seeds=2, **common))
    assert _numbers(two) == _numbers(one)
    assert "differing in initialisation and data order" in two[0]["protocol_notes"]
    sets = read_classification_predictions(tmp_path / "two" / two[0]["predictions"])
    assert any(h.endswith("_seed1") for h in sets["IN-1K"].heads)


def test_the_plan_decides_the_replicas_and_keeps_the_protocol_word(tmp_path):
    from probes.classification.config import load_config
    from probes.classification.plan import plan_classify

    def plan(**options):
        return plan_classify(load_config("internvit_6b_448px_v2_5", {"runtime.device": "cuda",
                                                                     "data.root": str(tmp_path), **options}))

    one, three = plan(), plan(**{"train.seeds": 3})
    assert three.protocol.protocol == one.protocol.protocol == "published"
    assert three.run_id != one.run_id
    assert len(three.heads) == 3 * len(one.heads) and three.heads[:len(one.heads)] == one.heads
    assert "linear_published_seed2" in three.heads
    assert three.as_dict()["seeds"]["replicas"] == 3 and "3 training replicas" in three.protocol.notes
