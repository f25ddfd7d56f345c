"""End to end on a tiny InternViT and tiny data: rows, one backbone pass, resume, cache, bad input."""
from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import pytest
import torch

from probes.classification import runner
from probes.classification.runner import RESULTS_FILE
from probes.classification.sweep import SweepTrainer
from probes.encoders.internvit import InternViT
from probes.errors import ConfigError, DatasetError
from probes.interrupts import RunInterrupted
from probes.results import CLASSIFICATION_COLUMNS as COLUMNS
from probes.results import TEST_SETS, read_rows


def _rows(cfg):
    return read_rows(Path(cfg.runtime.out) / RESULTS_FILE)


def test_rows_cover_every_head_ema_and_test_set(tiny_cfg):
    cfg = tiny_cfg()
    rows = runner.run_classify(cfg)
    # 2 probes x (the published head's raw weights + 2 grid lrs x (raw, EMA)) x 6 sets
    assert len(rows) == 2 * (1 + 2 * 2) * 6
    assert {r["test_set"] for r in rows} == set(TEST_SETS)
    assert {r["probe"] for r in rows} == {"linear", "attention_pooling"}
    by_set = {r["test_set"]: r["n_images"] for r in rows}
    assert by_set == {"IN-1K": 4, "IN-ReaL": 3, "IN-V2": 4, "IN-A": 4, "IN-R": 4, "IN-Sketch": 4}
    assert len({r["run_id"] for r in rows}) == 1 and {r["layer"] for r in rows} == {4}
    # The published head (lr 0.1, raw weights, last block) carries the recipe's word; the grid says lr-grid.
    published = [r for r in rows if r["head"] == "published"]
    assert len(published) == 2 * 6 and all(r["lr"] == 0.1 and r["ema"] is False for r in published)
    assert all(r["protocol"] == "modified" and "epochs=2" in r["protocol_notes"] for r in published)
    # It trained on the held-out images too: never scored there, never selected there.
    assert all(r["heldout_top1"] is None and not r["selected"] for r in published)
    assert "the published head trains on every image" in published[0]["protocol_notes"]
    grid = [r for r in rows if r["head"] == "grid"]
    assert all(r["protocol"] == "lr-grid" and "lr-grid head" in r["protocol_notes"] for r in grid)
    assert all(r["subset"] is True for r in rows)  # tiny sets: allow_subset is written into every row
    assert all(r["max_over_epochs_top1"] >= r["top1"] for r in rows)
    for probe in ("linear", "attention_pooling"):
        chosen = {(r["lr"], r["ema"]) for r in rows if r["probe"] == probe and r["selected"]}
        assert len(chosen) == 1  # one head per probe type, picked on the held-out split
        best = max(r["heldout_top1"] for r in rows if r["probe"] == probe and r["head"] == "grid")
        assert all(r["heldout_top1"] == best for r in rows if r["probe"] == probe and r["selected"])
    written = _rows(cfg)
    assert len(written) == len(rows)
    with (Path(cfg.runtime.out) / RESULTS_FILE).open() as fh:
        header = next(csv.reader(fh))
    assert list(header) == list(COLUMNS)


def test_side_file_and_epoch_scores_sit_beside_the_rows(tiny_cfg):
    from probes.results import prediction_head_name
    from probes.sidefiles import read_classification_predictions

    cfg = tiny_cfg()
    rows = runner.run_classify(cfg)
    out = Path(cfg.runtime.out)
    sets = read_classification_predictions(out / rows[0]["predictions"])
    assert set(sets) == set(TEST_SETS) | {"heldout"}
    published = {(r["probe"], r["lr"], r["ema"], r["layer"]) for r in rows if r["head"] == "published"}
    for r in rows:
        if r["head"] == "published" or r["selected"]:
            twin = r["head"] == "grid" and (r["probe"], r["lr"], r["ema"], r["layer"]) in published
            name = prediction_head_name(r["probe"], r["lr"], r["ema"], r["layer"], grid_twin=twin)
            assert sets[r["test_set"]].top1(name) == pytest.approx(r["top1"], abs=1e-3), (name, r["test_set"])
    epochs = list(csv.DictReader(open(out / "epochs" / f"{rows[0]['run_id']}.csv")))
    assert {e["epoch"] for e in epochs} == {"1", "2"}   # every test set scored after every epoch
    final = {(e["probe"], e["head"], float(e["lr"]), e["ema"], e["test_set"]): float(e["top1"])
             for e in epochs if e["epoch"] == "2"}
    for r in rows:
        key = (r["probe"], r["head"], r["lr"], str(r["ema"]), r["test_set"])
        assert final[key] == pytest.approx(r["top1"], abs=1e-3)


def test_a_finished_run_is_refused_resumed_or_overwritten(tiny_cfg, monkeypatch):
    cfg = tiny_cfg(probe__lrs=[0.1], probe__probes=["linear"], train__epochs=1)
    first = runner.run_classify(cfg)
    with monkeypatch.context() as patched:   # refused before any weight is loaded
        patched.setattr(runner, "load_probe_encoder", lambda *a, **k: pytest.fail("the encoder was loaded"))
        with pytest.raises(ConfigError, match=f"run {first[0]['run_id']} is already finished.*--overwrite"):
            runner.run_classify(cfg)
        assert runner.run_classify(tiny_cfg(probe__lrs=[0.1], probe__probes=["linear"], train__epochs=1,
                                            runtime__resume=True)) == []
    again = runner.run_classify(tiny_cfg(probe__lrs=[0.1], probe__probes=["linear"], train__epochs=1,
                                         runtime__overwrite=True))
    assert len(_rows(cfg)) == len(first) == len(again)   # replaced, not appended


def test_one_backbone_pass_feeds_all_heads(tiny_cfg, count_backbone):
    runner.run_classify(tiny_cfg(probe__lrs=[0.1]))
    one_head_pair = dict(count_backbone)
    count_backbone.update(n=0, images=0)
    runner.run_classify(tiny_cfg(probe__lrs=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]))
    assert count_backbone == one_head_pair  # 16 heads cost the backbone exactly what 2 did
    count_backbone.update(n=0, images=0)
    runner.run_classify(tiny_cfg(probe__lrs=[0.1], probe__probes=["linear"]))
    assert count_backbone == one_head_pair
    # 19 train images (the 4 held-out ones feed the published heads), batch 8, drop_last: 2 steps x 2 epochs;
    # after each epoch: held-out + 5 image sets (val serves IN-1K and IN-ReaL) in one batch each.
    assert one_head_pair["n"] == 2 * 2 + 2 * (1 + 5)


def test_the_checkpoint_is_looked_up_once_per_run(tiny_cfg, monkeypatch):
    """The plan finds the weight files once; describing, fingerprinting and loading all use that one lookup."""
    import probes.encoders.checkpoint as checkpoint

    calls = []
    real = checkpoint.resolve_checkpoint
    monkeypatch.setattr(checkpoint, "resolve_checkpoint", lambda *a, **k: calls.append(a) or real(*a, **k))
    runner.run_classify(tiny_cfg(probe__lrs=[0.1], train__epochs=1))
    assert len(calls) == 1


def test_resume_after_a_kill_ends_with_the_same_numbers(tiny_cfg, tmp_path, monkeypatch):
    common = dict(train__epochs=3, train__batch_size=4, probe__lrs=[0.1, 1.0])
    reference = runner.run_classify(tiny_cfg(runtime__out=str(tmp_path / "ref"), **common))
    checkpoint = f"checkpoints/{reference[0]['run_id']}.pth"
    ref_state = torch.load(tmp_path / "ref" / checkpoint, weights_only=False)

    real_step = SweepTrainer.step
    calls = {"n": 0}

    def dying_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 6:  # 19 images, batch 4: 4 steps per epoch: killed in the middle of epoch 2
            raise KeyboardInterrupt
        return real_step(self, *a, **k)

    monkeypatch.setattr(SweepTrainer, "step", dying_step)
    out = tmp_path / "killed"
    with pytest.raises(RunInterrupted, match=r"interrupted \(SIGINT\); epoch 1 of 3 is saved in ") as stopped:
        runner.run_classify(tiny_cfg(runtime__out=str(out), **common))
    assert stopped.value.checkpoint == out / checkpoint and stopped.value.exit_code == 130
    assert not (out / RESULTS_FILE).exists()
    saved = torch.load(out / checkpoint, weights_only=False)
    assert saved["epoch"] == 1
    resumed_steps = {"n": 0}

    def counting_step(self, *a, **k):
        resumed_steps["n"] += 1
        return real_step(self, *a, **k)

    monkeypatch.setattr(SweepTrainer, "step", counting_step)
    resumed = runner.run_classify(tiny_cfg(runtime__out=str(out), runtime__resume=True, **common))
    assert resumed_steps["n"] == 8  # epochs 2 and 3 only: it continued, it did not start over
    final = torch.load(out / checkpoint, weights_only=False)
    for part in ("bank", "ema"):
        for key, value in ref_state["trainer"][part].items():
            torch.testing.assert_close(final["trainer"][part][key], value, rtol=0, atol=0)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "date"} for r in rows]  # noqa: E731
    assert strip(resumed) == strip(reference)


def test_other_settings_are_another_run_with_its_own_checkpoint(tiny_cfg):
    one = runner.run_classify(tiny_cfg(probe__lrs=[0.1], train__epochs=1))
    two = runner.run_classify(tiny_cfg(probe__lrs=[0.1], train__epochs=1, runtime__resume=True,
                                       train__smoothing=0.2))
    assert one[0]["run_id"] != two[0]["run_id"] and two   # resumed nothing: trained from scratch
    out = Path(tiny_cfg().runtime.out)
    assert {p.stem for p in (out / "checkpoints").glob("*.pth")} == {one[0]["run_id"], two[0]["run_id"]}


def test_cached_run_rows_baselines_and_reuse(tiny_cfg, tmp_path, count_backbone):
    cfg = tiny_cfg(cache__dir=str(tmp_path / "cache"))
    rows = runner.run_classify(cfg)
    assert count_backbone["n"] > 0
    assert all(r["protocol"] == "cached" and "no augmentation" in r["protocol_notes"] for r in rows)
    assert {r["probe"] for r in rows} == {"linear", "attention_pooling", "knn", "logreg"}
    assert len([r for r in rows if r["probe"] == "knn"]) == 6
    store = next((tmp_path / "cache").iterdir())
    tokens = store / "train" / "tokens.npy"
    import numpy as np
    arr = np.load(tokens, mmap_mode="r")
    assert arr.dtype == np.int16 and arr.shape[1:] == (17, 48)  # bf16 bit patterns, all tokens
    assert np.load(store / "train" / "pooled.npy", mmap_mode="r").shape[1] == 96

    count_backbone.update(n=0, images=0)
    again = runner.run_classify(tiny_cfg(cache__dir=str(tmp_path / "cache"), runtime__overwrite=True))
    assert count_backbone["n"] == 0  # heads trained and scored without the backbone
    strip = lambda rs: [{k: v for k, v in r.items() if k != "date"} for r in rs]  # noqa: E731
    assert strip(again) == strip(rows)


def test_cached_heads_and_baselines_learn_the_tiny_classes(tiny_cfg, tmp_path):
    cfg = tiny_cfg(cache__dir=str(tmp_path / "cache"), cache__epochs=40, cache__batch_size=4,
                   probe__lrs=[1.0], probe__probes=["linear"], cache__store=["pooled"])
    rows = runner.run_classify(cfg)
    best = {r["probe"]: r["heldout_top1"] for r in rows if r["selected"]}
    # 4 classes out of 1000 outputs: chance is far below these.
    assert best["linear"] >= 50 and best["knn"] >= 50 and best["logreg"] >= 50
    in1k = [r["top1"] for r in rows if r["probe"] == "logreg" and r["test_set"] == "IN-1K"]
    assert in1k[0] >= 50


def test_cached_attention_pooling_needs_tokens(tiny_cfg, tmp_path):
    from probes.errors import ConfigError

    with pytest.raises(ConfigError, match="tokens"):
        runner.run_classify(tiny_cfg(cache__dir=str(tmp_path / "c"), cache__store=["pooled"]))


def test_partial_data_without_allow_subset_is_an_error(tiny_cfg):
    with pytest.raises(DatasetError, match=r"train at .* partial: 19 images in 4 classes instead of 1281167"):
        runner.run_classify(tiny_cfg(data__allow_subset=False))


def test_corrupt_test_image_stops_or_is_skipped_and_counted(tiny_cfg, data_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    bad = next((root / "sketch").iterdir()) / "broken.JPEG"
    bad.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="broken.JPEG"):
        runner.run_classify(tiny_cfg(data__root=str(root), probe__lrs=[0.1]))
    rows = runner.run_classify(tiny_cfg(data__root=str(root), probe__lrs=[0.1], data__on_corrupt="skip"))
    sketch = [r for r in rows if r["test_set"] == "IN-Sketch"]
    assert all(r["n_skipped"] == 1 and r["n_images"] == 4 for r in sketch)
    assert all(r["n_skipped"] == 0 for r in rows if r["test_set"] != "IN-Sketch")


def test_corrupt_training_image_is_counted_and_logged_once(tiny_cfg, data_root, tmp_path, caplog):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    bad = next((root / "train").iterdir()) / "broken.JPEG"
    bad.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        rows = runner.run_classify(tiny_cfg(data__root=str(root), probe__lrs=[0.1], data__on_corrupt="skip",
                                            train__epochs=2))
    assert rows and all(r["n_skipped_train"] == 1 and r["n_skipped"] == 0 for r in rows)
    left_out = [r.getMessage() for r in caplog.records if "left out: cannot decode image" in r.getMessage()]
    assert len(left_out) == 1 and "broken.JPEG" in left_out[0]   # two epochs read it: one line
    assert any("left out unreadable files: train 1" in r.getMessage() for r in caplog.records)
    written = read_rows(tmp_path / "out" / RESULTS_FILE)
    assert {row["n_skipped_train"] for row in written} == {"1"}


def test_corrupt_training_image_is_counted_in_a_cached_run(tiny_cfg, data_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    (next((root / "train").iterdir()) / "broken.JPEG").write_bytes(b"garbage")
    rows = runner.run_classify(tiny_cfg(data__root=str(root), probe__lrs=[0.1], data__on_corrupt="skip",
                                        cache__dir=str(tmp_path / "cache"), cache__store=["pooled"],
                                        probe__probes=["linear"], cache__knn=False, cache__logreg=False))
    assert rows and all(r["n_skipped_train"] == 1 and r["n_skipped"] == 0 for r in rows)


def test_missing_test_set_is_skipped(tiny_cfg, data_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_root, root, ignore=shutil.ignore_patterns("imagenet-r"))
    rows = runner.run_classify(tiny_cfg(data__root=str(root), probe__lrs=[0.1]))
    assert {r["test_set"] for r in rows} == set(TEST_SETS) - {"IN-R"}


def test_cache_of_a_train_subset_says_so(tiny_cfg, tmp_path):
    rows = runner.run_classify(tiny_cfg(cache__dir=str(tmp_path / "cache"), cache__train_per_class=2,
                                        probe__lrs=[0.1], cache__knn=False, cache__logreg=False))
    assert all("cache.train_per_class=2" in r["protocol_notes"] for r in rows)
    store = next((tmp_path / "cache").iterdir()) / "train"
    import numpy as np
    assert np.load(store / "valid.npy").sum() == 4 * 2  # 4 classes x 2 images


def test_published_protocol_is_named_only_when_the_recipe_is_kept():
    from probes.classification.config import load_config
    from probes.classification.plan import plan_classify

    def plan(**options):
        return plan_classify(load_config("internvit_6b_224px", {"runtime.device": "cuda", **options})).protocol

    assert plan().protocol == "published"
    changed = plan(**{"train.epochs": 3})
    assert changed.protocol == "modified" and "train.epochs=3 (published: 10)" in changed.notes
    bf16 = plan(**{"train.precision": "bf16"})
    assert bf16.protocol == "modified" and "train.precision='bf16' (published: 'fp16')" in bf16.notes
    assert plan(**{"cache.dir": "/c"}).protocol == "cached"
    demo = plan(**{"train.epochs": 3, "runtime.protocol_label": "demo"})
    assert demo.protocol == "demo" and demo.notes.startswith("demo run (modified recipe otherwise)")


def test_any_timm_model_without_class_token_can_be_probed(tiny_cfg):
    rows = runner.run_classify(tiny_cfg(encoder__source="timm:resnet18", probe__lrs=[0.1],
                                        data__test_sets=["IN-A"]))
    assert {r["encoder_version"] for r in rows} == {"timm:resnet18"}
    assert {r["probe"] for r in rows} == {"linear", "attention_pooling"}


def test_an_fp16_checkpoint_is_never_cast_to_bf16(tmp_path):
    from probes.encoders.resolved import resolve_encoder
    from probes.testing.checkpoints import random_internvit, save_hf_folder, tiny_config

    cfg = tiny_config("300m")
    weights = random_internvit(cfg, 0).state_dict()
    half = save_hf_folder({k: v.half() for k, v in weights.items()}, cfg, tmp_path / "half")
    full = save_hf_folder(weights, cfg, tmp_path / "full")
    gpu = torch.device("cuda")
    half, full = resolve_encoder(str(half)), resolve_encoder(str(full))
    assert runner.storage_dtype(None, "bf16", gpu, half) == "float32"     # bf16 would round fp16 values
    assert runner.storage_dtype(None, "bf16", gpu, full) == "bfloat16"
    assert runner.storage_dtype(None, "fp16", gpu, half) == "float32"     # the official: fp32 under fp16 autocast
    assert runner.storage_dtype(None, "bf16", torch.device("cpu"), full) == "float32"
    assert runner.storage_dtype("bfloat16", "bf16", gpu, half) == "bfloat16"   # encoder.dtype in the config wins


def test_per_layer_heads_ride_on_the_same_backbone_pass(tiny_cfg, monkeypatch, tmp_path):
    calls = {"n": 0}
    for name in ("forward_features", "forward_intermediates"):
        real = getattr(InternViT, name)

        def counting(self, *a, _real=real, **k):
            calls["n"] += 1
            return _real(self, *a, **k)

        monkeypatch.setattr(InternViT, name, counting)
    runner.run_classify(tiny_cfg(probe__lrs=[0.1], train__epochs=1))
    without = calls["n"]
    calls["n"] = 0
    rows = runner.run_classify(tiny_cfg(probe__lrs=[0.1], train__epochs=1, probe__layers=[1, 2],
                                        runtime__out=str(tmp_path / "layers")))
    assert calls["n"] == without   # one backbone pass per batch feeds the extra blocks' heads too
    assert {r["layer"] for r in rows} == {1, 2, 4}
    for layer in (1, 2):
        extra = [r for r in rows if r["layer"] == layer]
        assert {r["probe"] for r in extra} == {"linear"} and {r["head"] for r in extra} == {"grid"}
        assert len({r["test_set"] for r in extra if r["selected"]}) == len(TEST_SETS)   # chosen per block
    assert {r["layer"] for r in rows if r["head"] == "published"} == {4}


def test_non_finite_features_stop_the_run_naming_the_block(tiny_cfg, tiny_encoder, monkeypatch):
    from probes import load_encoder
    from probes.errors import TrainingDivergedError

    broken = load_encoder(str(tiny_encoder))
    with torch.no_grad():
        broken.blocks[2].mlp.fc2.bias.fill_(float("inf"))   # e.g. an fp16 overflow inside block 2
    monkeypatch.setattr(runner, "load_probe_encoder", lambda *a, **k: broken)
    cfg = tiny_cfg(probe__lrs=[0.1], train__epochs=1)
    with pytest.raises(TrainingDivergedError, match=r"non-finite values from encoder block 2 .*bf16 or fp32"):
        runner.run_classify(cfg)
    assert not (Path(cfg.runtime.out) / RESULTS_FILE).exists()


def test_logs_off_a_terminal_are_plain_lines_with_loss_lr_eta_and_throughput(tiny_cfg, caplog, capsys):
    import logging

    caplog.set_level(logging.INFO, logger="probes.progress")
    runner.run_classify(tiny_cfg(probe__lrs=[0.1], runtime__progress=True, runtime__log_interval_s=0.0))
    lines = [r.getMessage() for r in caplog.records if r.name == "probes.progress"]
    train = [line for line in lines if line.startswith("Epoch(train) [2/2] [2/2]")]
    assert train and all(k in train[-1] for k in ("lr: ", "eta: ", "time: ", "img/s: ", "loss: "))
    assert any(line.startswith("Eval(IN-A)") for line in lines)
    assert "\r" not in capsys.readouterr().err   # no carriage-return progress bars in a log file


def test_two_runs_into_one_folder_at_once_both_finish(tiny_encoder, data_root, tmp_path):
    import subprocess
    import sys

    from probes.testing.checkpoints import write_tiny_hf_encoder

    other = write_tiny_hf_encoder(tmp_path / "other" / "tiny300m", style="300m", seed=1)   # same folder name
    out = tmp_path / "shared"
    runs = [subprocess.Popen([sys.executable, "-m", "probes.cli", "classify", "--encoder", str(enc), "--data",
                              str(data_root), "--config", "tiny_demo", "--out", str(out), "--lrs", "0.1",
                              "--probes", "linear", "--epochs", "1"], stderr=subprocess.PIPE, text=True)
            for enc in (tiny_encoder, other)]
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    rows = read_rows(out / RESULTS_FILE)
    assert len({r["run_id"] for r in rows}) == 2 and len(rows) == 2 * 3 * 6   # published + grid raw, EMA
    assert len(list((out / "checkpoints").glob("*.pth"))) == 2   # never one shared checkpoint path


def test_a_patch_16_timm_model_is_probed_at_a_multiple_of_its_patch(tiny_cfg):
    rows = runner.run_classify(tiny_cfg(encoder__source="timm:vit_tiny_patch16_224", image_size=64,
                                        probe__lrs=[0.1], probe__probes=["linear"], data__test_sets=["IN-V2"],
                                        train__epochs=1))
    assert {r["encoder_version"] for r in rows} == {"timm:vit_tiny_patch16_224"}
    assert {r["image_size"] for r in rows} == {64} and {r["layer"] for r in rows} == {12}


def test_a_timm_model_is_normalised_with_its_own_mean_and_std(capsys):
    import json

    from probes.cli import main

    assert main(["classify", "--encoder", "timm:vit_base_patch16_siglip_224", "--print-config", "json"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["protocol"] == "random-weights"   # an untagged timm model has seeded random weights
    assert resolved["preprocessing"]["mean"] == [0.5, 0.5, 0.5] and resolved["preprocessing"]["std"] == [0.5] * 3
    assert resolved["encoder"]["patch_size"] == 16
