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
