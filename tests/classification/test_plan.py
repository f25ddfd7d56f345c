"""One plan per classification run: every key of the recipe either shapes the words and the id, or provably not."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from probes.classification.config import BASE_CONFIG, load_config
from probes.classification.plan import plan_classify
from probes.config_files import load_file
from probes.errors import ConfigError, ProbeError
from probes.protocol import IDENTITY_ONLY, NOT_NUMBER_SHAPING, _matches, flatten
from probes.testing.perturb import perturbed

PUBLISHED = "internvit_6b_448px_v2_5"
# Config keys whose resolved value sits under another name in the plan (the image section).
PLAN_KEY = {"image_size": "image.size", "interpolation": "image.interpolation", "crop_pct": "image.crop_pct"}


@pytest.mark.parametrize("cached", [False, True])
def test_every_key_of_the_recipe_is_named_when_changed_or_provably_shapes_nothing(cached: bool,
                                                                                   tmp_path: Path) -> None:
    base_options = {"runtime.device": "cuda", "data.root": str(tmp_path)}
    if cached:
        base_options["cache.dir"] = str(tmp_path / "cache")
    base = plan_classify(load_config(PUBLISHED, base_options))
    assert base.protocol.protocol == ("cached" if cached else "published"), base.protocol.notes
    keys = [k for k in flatten(load_file(BASE_CONFIG).to_dict()) if k not in base_options]
    assert len(keys) > 60
    wrong = []
    for key in keys:
        value = load_file(BASE_CONFIG).to_dict()
        for part in key.split("."):
            value = value[part]
        try:
            changed = plan_classify(load_config(PUBLISHED, {**base_options, key: perturbed(value)}))
        except ProbeError as error:   # a one-line error naming the key
            message = str(error)
            if "\n" in message or key.rpartition(".")[2] not in message:
                wrong.append((key, "error", message))
            continue
        word, notes, same_id = changed.protocol.protocol, changed.protocol.notes, changed.run_id == base.run_id
        if key == "runtime.protocol_label":
            ok = word == "1" and same_id
        elif _matches(key, NOT_NUMBER_SHAPING) or (key.startswith("cache.") and not cached):
            ok = word == base.protocol.protocol and same_id   # a live run reads no cache key
        elif _matches(key, IDENTITY_ONLY):
            ok = word == base.protocol.protocol and not same_id
        else:
            ok = (word == ("cached" if cached else "modified") and f"{PLAN_KEY.get(key, key)}=" in notes
                  and not same_id)
        if not ok:
            wrong.append((key, word, notes[-160:]))
    assert not wrong, wrong


def test_a_run_with_data_keeps_the_published_word(tmp_path: Path) -> None:
    # Where the data is, and which sets are scored, say which rows exist: never a departure from the recipe.
    plan = plan_classify(load_config(PUBLISHED, {"runtime.device": "cuda", "data.root": str(tmp_path),
                                                 "data.test_sets": ["IN-A"]}))
    assert plan.protocol.protocol == "published", plan.protocol.notes


def test_wrong_types_are_one_line_errors_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^data\.root is 1 \(int\); expected str or None\.$"):
        load_config(PUBLISHED, {"data.root": 1})
    with pytest.raises(ConfigError, match=r"^train\.nesterov is 'yes' \(str\); expected bool\.$"):
        load_config(PUBLISHED, {"train.nesterov": "yes"})
    with pytest.raises(ConfigError, match=r"^train\.momentum is True \(bool\); expected int or float\.$"):
        load_config(PUBLISHED, {"train.momentum": True})


@pytest.mark.parametrize("version, size", [("InternViT-6B-448px-V2_5", 448), ("InternViT-300M-448px", 448),
                                           ("InternViT-300M-448px-V2_5", 448), ("InternViT-6B-224px", 224)])
def test_a_published_version_without_config_gets_its_own_published_config(version: str, size: int,
                                                                          capsys: pytest.CaptureFixture) -> None:
    from probes.cli import main

    assert main(["classify", "--encoder", version, "--device", "cuda", "--print-config", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["preprocessing"]["size"] == size and plan["protocol"] == "published", plan["protocol_notes"]
    assert plan["run_id"].startswith(version)


def test_without_config_the_encoder_is_resolved_once_for_the_pick_and_the_plan(tiny_encoder: Path, count_calls,
                                                                             capsys: pytest.CaptureFixture) -> None:
    """The published config is picked with the encoder the plan then uses: one parse, one checkpoint look-up."""
    from probes.cli import main

    resolved = count_calls("probes.encoders.resolved", "resolve_encoder")
    looked_up = count_calls("probes.encoders.checkpoint", "resolve_checkpoint")
    assert main(["classify", "--encoder", str(tiny_encoder), "--print-config", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["encoder"]["fingerprint"]
    assert (len(resolved), len(looked_up)) == (1, 1)


def test_random_weights_are_never_published(capsys: pytest.CaptureFixture) -> None:
    from probes.cli import main

    version = "InternViT-6B-448px-V1-5"
    assert main(["classify", "--encoder", f"random:{version}", "--device", "cuda", "--print-config", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["protocol"] == "random-weights" and plan["run_id"].startswith(f"random-{version}")
    assert plan["encoder"]["random_weights"] is True


def _cli(*args: str) -> list[str]:
    return ["classify", "--config", "tiny_demo", "--lrs", "0.1", "--probes", "linear", "--epochs", "1", *args]


def test_print_config_json_is_the_plan_the_run_writes(data_root: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    from probes.cli import main
    from probes.testing.checkpoints import write_preprocessor_config, write_tiny_hf_encoder

    encoder = write_tiny_hf_encoder(tmp_path / "mine", style="300m", seed=5)
    write_preprocessor_config(encoder, 56)   # its own processor: resize and crop read from it
    args = _cli("--encoder", str(encoder), "--data", str(data_root), "--out", str(tmp_path / "out"))
    assert main([*args, "--print-config", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    written = json.loads((tmp_path / "out" / "plans" / f"{printed['run_id']}.json").read_text())
    assert printed == written
    assert printed["encoder"]["fingerprint"] and printed["data"]["root"] == str(data_root.resolve())


def test_a_checkpoint_retrained_in_place_is_another_run(tmp_path: Path) -> None:
    from probes.testing.checkpoints import write_tiny_hf_encoder

    def run_id() -> str:
        return plan_classify(load_config("tiny_demo", {"encoder.source": str(tmp_path / "ckpt"),
                                                       "runtime.device": "cpu"})).run_id

    write_tiny_hf_encoder(tmp_path / "ckpt", style="300m", seed=0)
    first = run_id()
    write_tiny_hf_encoder(tmp_path / "ckpt", style="300m", seed=1)
    assert run_id() != first


def test_one_run_spelled_three_ways_is_one_run(tiny_encoder: Path, data_root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from probes.classification import runner

    monkeypatch.chdir(tiny_encoder.parent.parent)
    relative = tiny_encoder.relative_to(tiny_encoder.parent.parent)
    (tmp_path / "data").symlink_to(data_root)   # the same sets through a link

    def cfg(encoder: str, data: str, **more: Any):
        return load_config("tiny_demo", {"encoder.source": encoder, "data.root": data, "probe.lrs": [0.1],
                                         "probe.probes": ["linear"], "train.epochs": 1,
                                         "runtime.out": str(tmp_path / "out"), "runtime.device": "cpu", **more})

    spellings = [(e, d) for e in (str(relative), f"./{relative}", str(tiny_encoder))
                 for d in (str(data_root), str(tmp_path / "data"))]
    assert len({plan_classify(cfg(e, d)).run_id for e, d in spellings}) == 1
    rows = runner.run_classify(cfg(*spellings[0]))
    for encoder, data in spellings[1:]:
        with pytest.raises(ConfigError, match=f"run {rows[0]['run_id']} is already finished"):
            runner.run_classify(cfg(encoder, data))


def test_an_interrupted_run_is_neither_restarted_nor_continued_silently(tiny_encoder: Path, data_root: Path,
                                                                        tmp_path: Path) -> None:
    from probes.classification import runner

    cfg = load_config("tiny_demo", {"encoder.source": str(tiny_encoder), "data.root": str(data_root),
                                    "runtime.out": str(tmp_path), "runtime.device": "cpu"})
    run_id = plan_classify(cfg).run_id
    checkpoint = tmp_path / "checkpoints" / f"{run_id}.pth"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"the state of a killed run")
    with pytest.raises(ConfigError, match=f"run {run_id} was interrupted .*--resume to continue it or "
                                          "--overwrite to start it again"):
        runner.run_classify(cfg)
    assert checkpoint.read_bytes() == b"the state of a killed run"   # nothing lost
