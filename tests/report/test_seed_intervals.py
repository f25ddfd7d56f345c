"""Intervals over test images and training seeds together (`probes classify --seeds K`, repeated segmentation runs)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from probes.report.build import build_report
from probes.report.stats import Bootstrap, Samples, StatsError, compare, covers, interval
from probes.results import CLASSIFICATION_COLUMNS, SEGMENTATION_COLUMNS, TEST_SETS

from .synthetic_runs import (both_probes, plant_gain, random_correct, segmentation_counts, write_classification_run,
                             write_segmentation_run)
from .test_report import write_csv

A, B = "InternViT-6B-224px", "InternViT-6B-448px-V2_5"


def _width(samples: Samples) -> float:
    low, high = interval(samples)
    return high - low


# ----------------------------------------------------------------------------- the hierarchical bootstrap
def test_disagreeing_replicas_widen_the_interval_and_identical_ones_change_nothing():
    boot = Bootstrap(n_resamples=1000, seed=0)
    n = 2000
    noisy = {r: random_correct(r, n, accuracy) for r, accuracy in enumerate((0.70, 0.62, 0.78))}
    found = boot.accuracies("set", noisy)
    images_only = found[0]
    seeds = boot.over_replicas("head", [found[r] for r in range(3)])
    assert seeds.point == images_only.point                        # the row's value is replica 0's
    assert seeds.centre == pytest.approx(np.mean([found[r].point for r in range(3)]))
    assert _width(seeds) > 2 * _width(images_only)                 # 8 points between replicas vs ~4 of images
    assert covers(seeds.models) == "test images + training seeds (K=3)"
    assert covers(images_only.models) == "test images"
    same = boot.accuracies("set", {r: noisy[0] for r in range(3)})
    identical = boot.over_replicas("head", [same[r] for r in range(3)])
    np.testing.assert_array_equal(identical.values, images_only.values)   # equal interval, exactly


def test_a_model_draws_the_same_replica_on_every_set_it_scored():
    boot = Bootstrap(n_resamples=400, seed=3)
    n = 50
    # Replica 0 gets every image right, replica 1 none: a resample's value says which replica it drew.
    per_set = [boot.accuracies(key, {0: np.ones(n, bool), 1: np.zeros(n, bool)}) for key in ("x", "y")]
    mixed = [boot.over_replicas("run|head", [s[0], s[1]]) for s in per_set]
    average = Samples.mean(mixed)
    assert set(np.unique(average.values)) == {0.0, 100.0}   # one trained model per resample, never half of each
    assert 0.3 < np.mean(average.values == 100.0) < 0.7
    other = boot.over_replicas("run|other head", [per_set[0][0], per_set[0][1]])
    assert not np.array_equal(other.values, mixed[0].values)  # another model draws its own replicas
    with pytest.raises(StatsError, match="replicas"):
        mixed[0] + boot.over_replicas("run|head", [per_set[1][0], per_set[1][1], per_set[1][0]])


def test_the_p_value_with_replicas_tests_the_mean_over_replicas():
    boot = Bootstrap(n_resamples=1000, seed=0)
    n = 3000
    right = random_correct(1, n, 0.70)
    a = boot.accuracies("s", {0: right})[0]
    # B's replica 0 happens to be 3 points better on the same images; its other replicas are A exactly.
    b_replicas = boot.accuracies("s", {0: plant_gain(right, 0.03), 1: right, 2: right, 3: right})
    lucky = compare(a, b_replicas[0])
    assert lucky.p_value < 0.01 and lucky.covers == "test images"
    honest = compare(boot.over_replicas("a", [a]), boot.over_replicas("b", [b_replicas[r] for r in range(4)]))
    assert honest.difference == lucky.difference                    # the shown difference stays replica 0's
    assert honest.p_value > 0.05 and honest.covers == "test images + training seeds (K=4) for 1 of 2 models"


# ----------------------------------------------------------------------------- the report
def _noisy_replicas(heads: dict, seed: int, spread: float) -> dict:
    """Two more replicas of every head: each image's outcome redrawn with about +-spread accuracy."""
    return {key: [{s: random_correct(seed + 1000 * r + i, len(c), np.mean(c) + sign * spread)
                   for i, (s, c) in enumerate(per_set.items())}
                  for r, sign in ((1, -1), (2, 1))]
            for key, per_set in heads.items()}


def _t14(out) -> pd.DataFrame:
    return pd.read_csv(out / "tables" / "table14_classification.csv", keep_default_na=False)


def test_report_intervals_of_a_noisy_toy_probe_cover_its_seeds(tmp_path):
    heads = both_probes(seed=0, n=1000)
    runs = {"plain": None, "noisy": _noisy_replicas(heads, 5, 0.08),
            "identical": {key: [per_set, per_set] for key, per_set in heads.items()}}
    tables = {}
    for name, replicas in runs.items():
        folder = tmp_path / name
        rows = write_classification_run(folder, name, A, heads, replicas=replicas)
        write_csv(folder / "c.csv", CLASSIFICATION_COLUMNS, rows)
        build_report(folder, folder / "out", bootstrap=400)
        tables[name] = _t14(folder / "out")
    plain, noisy, identical = tables["plain"], tables["noisy"], tables["identical"]
    for column in [*TEST_SETS, "avg"]:
        assert (noisy[column] == plain[column]).all()            # the values are the rows' (replica 0's)
        width = {k: t[f"{column} ci_high"] - t[f"{column} ci_low"] for k, t in tables.items()}
        assert (width["noisy"] > 1.5 * width["plain"]).all(), column
        assert (width["identical"] == width["plain"]).all(), column
    assert set(plain["interval_covers"]) == {"test images"}
    assert set(noisy["interval_covers"]) == set(identical["interval_covers"]) == {"test images + training seeds (K=3)"}
    text = (tmp_path / "plain" / "out" / "report.md").read_text()
    assert "covers **test sampling only**" in text and "--seeds K" in text
    text = (tmp_path / "noisy" / "out" / "report.md").read_text()
    assert "test images + training seeds (K=3)" in text and "one of the K replicas" in text


def test_version_comparison_says_what_its_intervals_cover(tmp_path):
    heads = both_probes(seed=0, n=600)
    folder = tmp_path / "r"
    rows = write_classification_run(folder, "a", A, heads, replicas=_noisy_replicas(heads, 9, 0.05))
    rows += write_classification_run(folder, "b", B, both_probes(seed=50, n=600))
    write_csv(folder / "c.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(folder, tmp_path / "out", compare=[A, B], bootstrap=300)
    long = pd.read_csv(tmp_path / "out" / "tables" / "version_differences.csv", keep_default_na=False)
    assert set(long["interval_covers"]) == {"test images + training seeds (K=3) for 1 of 2 models",
                                            "test images + training seeds (K=3) for 2 of 4 models"}
    wide = pd.read_csv(tmp_path / "out" / "tables" / "version_comparison.csv", keep_default_na=False)
    assert (wide["interval_covers"] != "").all()


def _plan(folder, run_id: str, seed: int, iters: int = 80000) -> None:
    """The plan a segmentation run writes beside its rows (only the parts the report reads)."""
    plan = {"run_id": run_id, "protocol": "published", "protocol_notes": "", "dataset": "ADE20K",
            "data_root": "/data/ade", "device": "cuda", "precision": "bf16", "total_batch": 16, "crop": 504,
            "iters": iters, "encoder": {"source": "/ckpt/x", "fingerprint": "abc"},
            "config": {"randomness": {"seed": seed}, "train_cfg": {"max_iters": iters},
                       "work_dir": f"/out/{run_id}", "train_dataloader": {"num_workers": seed}}}
    (folder / run_id).mkdir(parents=True, exist_ok=True)
    (folder / run_id / "plan.json").write_text(json.dumps(plan))


def test_segmentation_runs_repeated_with_other_seeds_are_combined(tmp_path):
    folder = tmp_path / "r"
    rows = []
    # Three ADE20K linear runs of one configuration (seeds 0, 1, 2), far apart; one with other iters.
    for seed, quality, date in ((1, 0.3, "2026-11-01"), (2, 0.8, "2026-11-02"), (0, 0.55, "2026-11-03")):
        run_id = f"lin-s{seed}"
        rows.append(write_segmentation_run(folder, run_id, A, "ADE20K", "linear",
                                           segmentation_counts(0, quality=quality)) | {"date": date})
        _plan(folder, run_id, seed)
    rows.append(write_segmentation_run(folder, "head", A, "ADE20K", "head", segmentation_counts(1)))
    _plan(folder, "head", 1, iters=100)
    write_csv(folder / "s.csv", SEGMENTATION_COLUMNS, rows)
    build_report(folder, tmp_path / "out", bootstrap=300)
    t15 = pd.read_csv(tmp_path / "out" / "tables" / "table15_segmentation.csv", keep_default_na=False).iloc[0]
    assert t15["interval_covers"] == "test images + training seeds (K=3) for 1 of 2 models"
    alone = tmp_path / "alone"
    write_csv(alone / "s.csv", SEGMENTATION_COLUMNS, [rows[2]])
    (alone / rows[2]["predictions"]).write_bytes((folder / rows[2]["predictions"]).read_bytes())
    build_report(alone, tmp_path / "out_alone", bootstrap=300)
    t15_alone = pd.read_csv(tmp_path / "out_alone" / "tables" / "table15_segmentation.csv",
                            keep_default_na=False).iloc[0]
    assert t15_alone["interval_covers"] == "test images"
    assert t15["ADE20K linear"] == t15_alone["ADE20K linear"]     # the cell shows its own (latest) run
    width = t15["ADE20K linear ci_high"] - t15["ADE20K linear ci_low"]
    assert width > 3 * (t15_alone["ADE20K linear ci_high"] - t15_alone["ADE20K linear ci_low"])
