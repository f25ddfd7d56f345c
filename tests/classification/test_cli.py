"""`probes classify`: flags map onto config keys; bad input is one line and exit code 2."""
from __future__ import annotations

from probes.cli import build_parser, main
from probes.classification.commands import overrides_from_args
from probes.classification.runner import RESULTS_FILE
from probes.results import read_rows


def test_flags_become_config_overrides():
    args = build_parser().parse_args(
        ["classify", "--encoder", "timm:vit_tiny_patch16_224", "--data", "/d", "--epochs", "3",
         "--batch-size", "64", "--image-size", "112", "--probes", "linear,attn", "--lrs", "0.1", "0.2",
         "--device", "cpu", "--workers", "2", "--allow-subset", "--cache", "/c", "--resume",
         "--out", "/o", "--precision", "bf16", "--layers", "1,3", "--cfg-options", "train.seed=3"])
    got = overrides_from_args(args)
    assert got["encoder.source"] == "timm:vit_tiny_patch16_224" and got["data.root"] == "/d"
    assert got["train.epochs"] == 3 and got["cache.epochs"] == 3 and got["train.batch_size"] == 64
    assert got["image_size"] == 112 and got["probe.probes"] == ["linear", "attn"]
    assert got["probe.lrs"] == [0.1, 0.2] and got["data.allow_subset"] is True
    assert got["cache.dir"] == "/c" and got["runtime.resume"] is True and got["train.seed"] == 3
    assert got["train.precision"] == "bf16" and got["probe.layers"] == [1, 3]


def test_cuda_on_a_cpu_machine_is_a_clear_error(tiny_encoder, data_root, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["classify", "--encoder", str(tiny_encoder), "--data", str(data_root),
                 "--config", "tiny_demo", "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no CUDA GPU" in err[0]


def test_partial_set_message_and_exit_code(tiny_encoder, data_root, tmp_path, capsys):
    code = main(["classify", "--encoder", str(tiny_encoder), "--data", str(data_root),
                 "--out", str(tmp_path), "--device", "cpu", "--workers", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "train at" in err[0] and "partial" in err[0] and "--allow-subset" in err[0]


def test_a_tiny_run_through_the_command(tiny_encoder, data_root, tmp_path):
    code = main(["classify", "--encoder", str(tiny_encoder), "--data", str(data_root), "--config",
                 "tiny_demo", "--out", str(tmp_path), "--probes", "attn", "--lrs", "0.5",
                 "--epochs", "1", "--cfg-options", "data.test_sets=['IN-A','IN-R']"])
    assert code == 0
    rows = read_rows(tmp_path / RESULTS_FILE)
    assert {r["test_set"] for r in rows} == {"IN-A", "IN-R"}
    assert {r["probe"] for r in rows} == {"attention_pooling"} and {r["epochs"] for r in rows} == {"1"}


def _options(parser):
    """(command, option, help text as printed) of every option of every subcommand."""
    import argparse

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, child in sub.choices.items():
        formatter = child._get_formatter()
        for action in child._actions:
            if action.option_strings and action.help != argparse.SUPPRESS:
                yield command, action, formatter._expand_help(action) if action.help else ""


def test_every_option_of_every_command_shows_its_default():
    import argparse

    switches = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction)
    missing = [f"{command} {action.option_strings[0]}" for command, action, text in _options(build_parser())
               if not isinstance(action, switches) and not action.required and "default" not in text]
    assert missing == []


def test_defaults_in_classify_help_are_the_recipes():
    from probes.classification.config import load_config

    cfg = load_config(None, pick_published=False)
    helps = {action.option_strings[0]: text for command, action, text in _options(build_parser())
             if command == "classify"}
    assert f"published {cfg.train.epochs})" in helps["--epochs"]
    assert f"published {cfg.train.batch_size})" in helps["--batch-size"]
    assert f"else {cfg.image.size})" in helps["--image-size"]
    assert f"default: {cfg.runtime.out})" in helps["--out"]
    assert f"default: {cfg.train.precision}," in helps["--precision"]
    assert " ".join(f"{lr:g}" if lr != int(lr) else f"{lr:.1f}" for lr in cfg.probe.lrs) in helps["--lrs"]


def test_inspect_and_prepare_describe_themselves(capsys):
    import pytest

    for command in ("inspect", "prepare", "check-data", "classes"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert len(text.split("\n\n")[1].split()) > 12, command   # a description paragraph after the usage


def test_workers_default_to_the_cores_available(monkeypatch):
    import torch

    from probes.classification.config import load_config
    from probes.classification.pipeline import data_loader
    from probes import runtime

    assert load_config(None, pick_published=False).data.workers is None
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert runtime.default_workers() == 8
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert runtime.default_workers() == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert runtime.default_workers() == 1
    loader = data_loader(list(range(4)), 2, None, False, None, workers=None, device=torch.device("cpu"))
    assert loader.num_workers == 1
