"""Configs are data: one per published version, every key overridable, typos rejected."""
from __future__ import annotations

import pytest

from probes.classification.config import BASE_CONFIG, load_config
from probes.config_files import config_dir, parse_cfg_options
from probes.errors import ConfigError

CONFIG_DIR = config_dir("classification")

PUBLISHED = {
    "internvit_300m_448px": ("InternViT-300M-448px", 448, None),
    "internvit_300m_448px_v2_5": ("InternViT-300M-448px-V2_5", 448, None),
    "internvit_6b_224px": ("InternViT-6B-224px", 224, None),
    "internvit_6b_224px_at_448": ("InternViT-6B-224px", 448, None),
    "internvit_6b_448px_v1_0": ("InternViT-6B-448px-V1-0", 448, 45),
    "internvit_6b_448px_v1_2": ("InternViT-6B-448px-V1-2", 448, None),
    "internvit_6b_448px_v1_5": ("InternViT-6B-448px-V1-5", 448, None),
    "internvit_6b_448px_v2_5": ("InternViT-6B-448px-V2_5", 448, None),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_version_configs_keep_the_published_recipe(name):
    from probes.encoders import VERSIONS

    cfg = load_config(name)
    version, size, layers = PUBLISHED[name]
    assert cfg.encoder.version == version and version in VERSIONS
    assert cfg.image.size == size and cfg.encoder.num_layers == layers
    t = cfg.train
    assert (t.epochs, t.batch_size, t.momentum, t.nesterov, t.weight_decay) == (10, 1024, 0.9, True, 0.0)
    assert (t.clip_grad, t.ema_decay, t.mixup, t.cutmix, t.smoothing) == (5.0, 0.998, 0.8, 1.0, 0.1)
    assert t.warmup_epochs == 1 and t.lr_batch_ref == 512 and t.precision == "fp16"
    assert cfg.probe.published_lr == 0.1 and cfg.probe.head_lrs[0] == 0.1


def test_every_config_file_is_covered():
    names = {p.stem for p in CONFIG_DIR.glob("*.py")}
    assert names == set(PUBLISHED) | {"tiny_demo"}


def test_overrides_apply_in_order_and_parse_types():
    cfg = load_config("internvit_6b_224px", parse_cfg_options(
        ["train.epochs=3", "probe.lrs=[0.1,0.2]", "data.paths.IN-A=/x/ina", "encoder.num_layers=None",
         "data.allow_subset=true", "runtime.out=results/here"]))
    assert cfg.train.epochs == 3 and cfg.probe.lrs == (0.1, 0.2)
    assert cfg.data.paths["IN-A"] == "/x/ina" and cfg.data.paths["IN-R"] == "imagenet-r"
    assert cfg.encoder.num_layers is None and cfg.data.allow_subset is True
    assert cfg.runtime.out == "results/here"


def test_both_commands_read_cfg_options_alike():
    # One parser for every command (mmengine's DictAction): `None` is None, `none` stays a string.
    assert parse_cfg_options(["a=None", "b=none", "c=[1,2]", "d=cuda", "e=true"]) == \
        {"a": None, "b": "none", "c": [1, 2], "d": "cuda", "e": True}
    # Modules as config files write them, which DictAction cannot read.
    assert parse_cfg_options(["custom_hooks=[dict(type='EMAHook', momentum=1e-4)]", "x=1"]) == \
        {"custom_hooks": [{"type": "EMAHook", "momentum": 1e-4}], "x": 1}
    assert parse_cfg_options(["m=dict(a=(1, 2), b=[dict(c=None)])"]) == {"m": {"a": (1, 2), "b": [{"c": None}]}}
    with pytest.raises(ConfigError, match=r"^--cfg-options m: cannot read .*dict\(key=value, \.\.\.\) only"):
        parse_cfg_options(["m=dict(type=os.system('x'))"])


def test_unknown_key_on_the_command_line_names_it_and_the_fix():
    with pytest.raises(ConfigError, match=r"'train\.epoch'.*did you mean 'train\.epochs'"):
        load_config(None, {"train.epoch": 3})


def test_unknown_key_in_a_config_file_names_the_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(f"_base_ = ['{BASE_CONFIG}']\ntrain = dict(epoch=3)\n")
    with pytest.raises(ConfigError, match=r"'train\.epoch' in .*mine\.py"):
        load_config(str(path))


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="on_corrupt"):
        load_config(None, {"data.on_corrupt": "ignore"})
    with pytest.raises(ConfigError, match="probe.probes"):
        load_config(None, {"probe.probes": ["mlp"]})
    with pytest.raises(ConfigError, match="num_classes"):
        load_config(None, {"probe.num_classes": 10})
    with pytest.raises(ConfigError, match="train.precision"):
        load_config(None, {"train.precision": "fp8"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("no_such_config")
    with pytest.raises(ConfigError, match="key=value"):
        parse_cfg_options(["train.epochs"])


def test_print_config_resolves_a_published_version_without_weights(capsys):
    from probes.cli import main

    import json

    assert main(["classify", "--config", "internvit_6b_448px_v1_0", "--device", "cuda", "--print-config",
                 "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["config"]["encoder"]["num_layers"] == 45 and plan["config"]["image"]["size"] == 448
    assert plan["encoder"]["blocks_used"] == 45
    assert plan["encoder"]["blocks_in_checkpoint"] == 48
    assert plan["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert plan["protocol"] == "published" and plan["device"] == "cuda" and plan["precision"] == "fp16"
    assert "linear_lr0p1" in plan["heads"]
    # The same plan made for a CPU says what the CPU changes: it computes in fp32, not the recipe's fp16.
    assert main(["classify", "--config", "internvit_6b_448px_v1_0", "--device", "cpu", "--print-config",
                 "json"]) == 0
    cpu = json.loads(capsys.readouterr().out)
    assert cpu["protocol"] == "modified" and "effective.precision='fp32' (published: 'fp16')" in cpu["protocol_notes"]
