"""One plan per segmentation run: its protocol words, run id and printed config come from what runs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from probes.errors import ConfigError
from probes.protocol import NOT_NUMBER_SHAPING, _matches, flatten
from probes.testing.perturb import perturbed
from probes.segmentation import precision
from probes.segmentation.runner import SegmentOptions, _prepare_runtime, plan_segmentation

V15 = "InternViT-6B-448px-V1-5"


@pytest.fixture(scope="module", autouse=True)
def mmseg_registered() -> None:
    _prepare_runtime(SegmentOptions(encoder=V15, dataset="ade20k", mode="head"), require_device=False)


def plan(encoder: str = V15, mode: str = "head", dataset: str = "ade20k", **kw: Any):
    """A plan for a CUDA run (the recipe's device) without data or weights."""
    kw.setdefault("device", "cuda")
    return plan_segmentation(SegmentOptions(encoder=encoder, dataset=dataset, mode=mode, **kw), check_data=False)


def test_released_recipe_is_published_and_names_its_source() -> None:
    for encoder in (V15, "InternViT-6B-224px"):
        words = plan(encoder, mode="linear").protocol
        assert words.protocol == "published", words.notes
        assert words.notes.startswith("released recipe OpenGVLab/InternVL-MMDetSeg mmsegmentation/configs/")


@pytest.mark.parametrize("mode", ["head", "full"])
def test_head_and_full_tuning_on_a_gpu_run_the_released_precision(mode: str) -> None:
    default = plan(mode=mode)
    assert default.protocol.protocol == "published", default.protocol.notes
    assert default.arrangement == "released" and default.precision == "bf16"
    assert plan(mode=mode, cfg_options={"precision": "released"}).run_id == default.run_id
    old = plan(mode=mode, cfg_options={"precision": "autocast-fp32-weights"})
    assert old.protocol.protocol == "modified" and old.run_id != default.run_id
    assert f"effective.weights={precision.WEIGHTS['autocast-fp32-weights'][mode]!r} (published: " \
           f"{precision.WEIGHTS['released'][mode]!r})" in old.protocol.notes
    # FSDP cannot hold bf16 neck weights beside fp32 heads in its root unit: the old path, named.
    sharded = plan(mode=mode, strategy="fsdp")
    assert sharded.arrangement == "autocast-fp32-weights" and "effective.weights=" in sharded.protocol.notes
    with pytest.raises(ConfigError, match="precision='released' does not combine with --strategy fsdp"):
        plan(mode=mode, strategy="fsdp", cfg_options={"precision": "released"})


def test_partitioning_the_masters_is_no_other_run_and_only_for_the_released_update() -> None:
    from probes.segmentation.runner import _configure_device

    default = plan(mode="full")
    replicated = plan(mode="full", cfg_options={"optim_wrapper.partition": False})
    assert replicated.run_id == default.run_id and replicated.protocol == default.protocol   # same numbers
    _configure_device(replicated.cfg, "cuda", "full", replicated.arrangement)
    assert replicated.cfg.optim_wrapper.type == "ReleasedPrecisionOptimWrapper"
    fp32 = plan(mode="full", device="cpu", cfg_options={"optim_wrapper.partition": False})
    with pytest.raises(ConfigError, match="optim_wrapper.partition is an option of the released"):
        _configure_device(fp32.cfg, "cpu", "full", fp32.arrangement)


def test_precision_on_a_cpu_is_fp32_unless_asked() -> None:
    cpu = plan(mode="full", device="cpu")
    assert cpu.arrangement == "fp32" and cpu.precision == "fp32"
    asked = plan(mode="full", device="cpu", cfg_options={"precision": "released"})
    assert asked.arrangement == "released" and "effective.weights" not in asked.protocol.notes
    with pytest.raises(ConfigError, match="precision='bf16' is not one of released, autocast-fp32-weights, fp32"):
        plan(cfg_options={"precision": "bf16"})


def test_released_precision_sets_up_bf16_weights_and_the_master_weight_update() -> None:
    from probes.segmentation.runner import _configure_device

    for mode, bf16_weights in (("linear", None), ("head", True), ("full", True)):
        cfg = plan(mode=mode, device="cpu", cfg_options={"precision": "released"}).cfg
        _configure_device(cfg, "cpu", mode, "released")
        assert cfg.model.get("bf16_weights") is bf16_weights
        assert cfg.model.backbone.get("dtype") == (None if mode == "full" else "bfloat16")
        assert cfg.optim_wrapper.type == ("ReleasedPrecisionOptimWrapper" if bf16_weights else "OptimWrapper")
    cfg = plan(mode="full", cfg_options={"optim_wrapper.type": "AmpOptimWrapper"}).cfg
    with pytest.raises(ConfigError, match="AmpOptimWrapper' does not combine with precision='released'"):
        _configure_device(cfg, "cpu", "full", "released")


def test_every_cli_change_is_modified_and_named() -> None:
    base = plan()
    short = plan(iters=100)
    assert short.protocol.protocol == "modified" and "train_cfg.max_iters=100 (published: 80000)" in \
        short.protocol.notes
    assert short.run_id != base.run_id
    small = plan(batch_size=8)
    assert "train_dataloader.batch_size=8 (published: 16)" in small.protocol.notes
    cpu = plan(device="cpu")
    assert cpu.protocol.protocol == "modified" and "effective.precision='fp32' (published: 'bf16')" in \
        cpu.protocol.notes


def test_validation_cadence_changes_the_run_and_its_words() -> None:
    base, every = plan(), plan(cfg_options={"train_cfg.val_interval": 2000})
    assert every.protocol.protocol == "modified" and "train_cfg.val_interval=2000" in every.protocol.notes
    assert every.run_id != base.run_id   # `best_mIoU` is chosen among the validations run


def test_user_hooks_are_added_after_the_suites_own() -> None:
    base = plan()
    ema = plan(cfg_options={"custom_hooks": [{"type": "EMAHook"}]})
    suite = [h["type"] for h in base.cfg.custom_hooks]
    assert [h["type"] for h in ema.cfg.custom_hooks] == [*suite, "EMAHook"]
    assert {"ProbeCheckpointHook", "EvaluationHistoryHook", "NonFiniteLossHook"} <= set(suite)
    assert ema.protocol.protocol == "modified" and "EMAHook" in ema.protocol.notes
    assert ema.run_id != base.run_id
    from probes.testing.interrupt import KillAfterIterHook

    assert KillAfterIterHook.shapes_numbers is False   # a hook whose class says it only stops the run
    kill = plan(cfg_options={"custom_hooks": [{"type": "KillAfterIterHook", "at": 2}]})
    assert kill.protocol == base.protocol and kill.run_id == base.run_id


def test_exempting_embeddings_from_decay_is_a_change() -> None:
    words = plan(cfg_options={"optim_wrapper.paramwise_cfg.exempt_embeddings_from_decay": True}).protocol
    assert words.protocol == "modified" and "exempt_embeddings_from_decay=True" in words.notes


def test_generic_config_says_no_recipe_was_released() -> None:
    words = plan("timm:vit_base_patch16_224.augreg_in21k", mode="linear").protocol   # tagged: real weights
    assert "no recipe was released" in words.notes
    assert "crop 512: the recipe's 504 at the nearest multiple of patch 16" in words.notes
    assert words.protocol == "published"


def test_demo_label_replaces_the_word_and_says_what_it_would_be() -> None:
    words = plan(iters=10, protocol_label="demo").protocol
    assert words.protocol == "demo" and words.notes.startswith("demo run (modified recipe otherwise)")


def test_random_weights_are_never_published_nor_named_as_the_version() -> None:
    real, random = plan(), plan(f"random:{V15}")
    assert random.protocol.protocol == "random-weights"
    assert random.run_id.startswith("random-") and random.run_id != real.run_id
    assert random.as_dict()["encoder"]["random_weights"] is True
    untagged = plan("timm:vit_tiny_patch16_224")
    assert untagged.protocol.protocol == "random-weights" and untagged.run_id.startswith("random-")


def test_an_override_of_a_template_is_an_error_naming_what_runs() -> None:
    with pytest.raises(ConfigError, match=r"train_pipeline.*train_dataloader\.dataset\.pipeline"):
        plan(cfg_options={"train_pipeline.0.type": "LoadImageFromFile"})
    with pytest.raises(ConfigError, match=r"crop_size.*--crop-size"):
        plan(cfg_options={"crop_size": (448, 448)})


def test_a_value_set_from_the_encoder_cannot_be_overridden() -> None:
    with pytest.raises(ConfigError, match=r"size_divisor=16 is set from the encoder \(patch 14\) to 14"):
        plan(cfg_options={"val_dataloader.dataset.pipeline.2.size_divisor": 16})
    with pytest.raises(ConfigError, match=r"model\.neck\.embed_dim=1024 does not match the encoder's width"):
        plan(cfg_options={"model.neck.embed_dim": 1024})


def test_an_argument_a_module_does_not_take_is_named_before_the_run() -> None:
    with pytest.raises(ConfigError, match=r"ProbeEncoder takes no argument 'embed_dim' \(it takes .*out_indices"):
        plan(cfg_options={"model.backbone.embed_dim": 1024})
    with pytest.raises(ConfigError, match=r"UPerHead takes no argument 'chanels'"):
        plan(cfg_options={"model.decode_head.chanels": 8})


@pytest.mark.parametrize("encoder, dataset, mode", [(V15, "ade20k", "head"), ("InternViT-6B-448px-V2_5",
                                                                               "coco-stuff", "full"),
                                                    ("InternViT-6B-224px", "ade20k", "linear")])
def test_every_key_of_the_published_plan_is_a_named_change_a_non_shaping_key_or_an_error(
        encoder: str, dataset: str, mode: str) -> None:
    # Walk every leaf of the shipped config as the run resolves it, change it, and read what the plan says.
    base = plan(encoder, mode, dataset)
    keys = {k: v for k, v in flatten(base.cfg.to_dict()).items() if not isinstance(v, dict)}
    assert len(keys) > 50
    silent = []
    for key, value in keys.items():
        try:
            changed = plan(encoder, mode, dataset, cfg_options={key: perturbed(value)})
        except ConfigError as error:   # a one-line error naming the key (or the flag the key is set by)
            message = str(error)
            assert "\n" not in message and (key in message or key.rpartition(".")[2].replace("_", "-") in message
                                             or key.rpartition(".")[2] in message), (key, message)
            continue
        if _matches(key, NOT_NUMBER_SHAPING):
            assert changed.protocol == base.protocol, key
            continue
        if not (changed.protocol.protocol == "modified" and f"{key}=" in changed.protocol.notes
                and changed.run_id != base.run_id):
            silent.append((key, changed.protocol.protocol, changed.protocol.notes[-200:]))
    assert not silent, silent


def test_print_config_json_is_the_plan_the_run_writes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from probes.cli import main
    from probes.testing.checkpoints import write_preprocessor_config, write_tiny_hf_encoder
    from .conftest import TINY_OPTIONS, write_ade20k

    encoder = write_tiny_hf_encoder(tmp_path / "ckpt" / "mine", style="6b", seed=3)
    write_preprocessor_config(encoder, 56)
    data = write_ade20k(tmp_path / "data", n_train=2, n_val=1)
    args = ["segment", "--encoder", str(encoder), "--dataset", "ade20k", "--data", str(data), "--mode", "head",
            "--iters", "1", "--batch-size", "2", "--crop-size", "56", "--device", "cpu", "--workers", "0",
            "--out", str(tmp_path / "out"), "--allow-subset",
            "--cfg-options", *[f"{k}={v}" for k, v in TINY_OPTIONS.items()]]
    assert main([*args, "--print-config", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    written = json.loads((tmp_path / "out" / printed["run_id"] / "plan.json").read_text())
    assert printed == written
    assert printed["encoder"]["fingerprint"] and printed["precision"] == "fp32"


def test_set_by_names_every_key_the_flags_options_and_encoder_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from probes.segmentation.runner import print_config

    monkeypatch.setenv("WORLD_SIZE", "2")
    opts = dict(crop_size=448, iters=100, batch_size=8, workers=0, strategy="ddp", launcher="pytorch",
                cfg_options={"model.decode_head.channels": 16})
    run = plan(**opts)
    by = run.set_by
    assert by["model.test_cfg.crop_size"] == by["train_dataloader.dataset.pipeline.4.crop_size"] == "--crop-size"
    assert by["train_cfg.max_iters"] == by["param_scheduler.1.end"] == "--iters"
    assert by["val_dataloader.num_workers"] == "--workers" and by["strategy"] == "--strategy"
    assert by["model.decode_head.num_classes"] == "--dataset" and by["model.decode_head.channels"] == "--cfg-options"
    assert by["model.data_preprocessor.mean"] == by["val_dataloader.dataset.pipeline.2.size_divisor"] == "encoder"
    assert by["train_dataloader.batch_size"] == "total batch / 2 processes (--launcher)"
    assert run.cfg.train_dataloader.batch_size == 4
    leaves = flatten(run.cfg.to_dict())
    assert all(key in leaves or any(leaf.startswith(key + ".") for leaf in leaves) for key in by)
    # Not set by anything of the command: the file's own values.
    assert "train_cfg.val_interval" not in by and "optim_wrapper.optimizer.lr" not in by
    assert plan(V15).set_by.get("model.test_cfg.crop_size") is None              # patch 14: the file's crop
    assert plan("timm:vit_tiny_patch16_224").set_by["model.test_cfg.crop_size"] == "encoder (patch 16)"
    printed = print_config(SegmentOptions(encoder=V15, dataset="ade20k", mode="head", device="cuda", **opts), "json")
    assert json.loads(printed)["set_by"] == by
    text = print_config(SegmentOptions(encoder=V15, dataset="ade20k", mode="head", device="cuda", **opts))
    assert text.rstrip().endswith("})") and "\nset_by = dict({" in text and "'--crop-size'" in text.split("set_by")[-1]


def test_two_checkpoints_in_one_folder_are_two_runs(tmp_path: Path) -> None:
    from probes.testing.checkpoints import write_tiny_hf_encoder

    folder = tmp_path / "ckpt"
    write_tiny_hf_encoder(folder, style="6b", seed=0)
    first = plan(str(folder), device="cpu", crop_size=56)
    write_tiny_hf_encoder(folder, style="6b", seed=1)   # retrained in place
    second = plan(str(folder), device="cpu", crop_size=56)
    assert first.run_id != second.run_id


def test_the_same_run_spelled_three_ways_has_one_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from probes.testing.checkpoints import write_tiny_hf_encoder
    from .conftest import write_ade20k

    monkeypatch.chdir(tmp_path)
    write_tiny_hf_encoder(tmp_path / "ckpt" / "a", style="6b", seed=0)
    write_ade20k(tmp_path / "data", n_train=2, n_val=1)
    ids = {plan_segmentation(SegmentOptions(encoder=enc, dataset="ade20k", mode="linear", data=Path(data),
                                            device="cpu", crop_size=56, allow_subset=True)).run_id
           for enc in ("ckpt/a", "./ckpt/a", str(tmp_path / "ckpt" / "a"))
           for data in ("data", str(tmp_path / "data"))}
    assert len(ids) == 1


def test_the_deepspeed_strategy_is_refused_in_one_line_saying_why() -> None:
    with pytest.raises(ConfigError, match=r"^--strategy deepspeed does not run .*: precision='released' \(the "
                                          r"GPU default\), alone or with --strategy ddp / --launcher$"):
        plan(mode="full", strategy="deepspeed")


def test_a_short_run_checkpoints_at_least_every_tenth_of_it() -> None:
    assert plan().cfg.default_hooks.checkpoint.interval == 1000           # the recipe's, 1.25% of 80k
    assert plan(iters=100).cfg.default_hooks.checkpoint.interval == 10    # a kill keeps 90% of the work
    assert plan(iters=5).cfg.default_hooks.checkpoint.interval == 1
