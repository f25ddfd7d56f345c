"""What names a loaded encoder: `name`, `version` and the weights `fingerprint`; bad weights are refused."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from probes import load_encoder
from probes.encoders.versions import VERSIONS
from probes.errors import CheckpointError
from probes.testing.checkpoints import random_internvit, save_hf_folder, save_internvl_pth, tiny_config


@pytest.fixture()
def folder(tmp_path):
    cfg = tiny_config("300m")
    return save_hf_folder(random_internvit(cfg, seed=21).state_dict(), cfg, tmp_path / "my-finetune", shards=2)


def _poison(shard, key, value):
    state = load_file(str(shard))
    state[key] = state[key].clone()
    state[key].view(-1)[3] = value
    save_file(state, str(shard), metadata={"format": "pt"})


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_nan_or_inf_weight_is_refused_naming_key_and_file(folder, value):
    shard = folder / "model-00002-of-00002.safetensors"
    key = sorted(load_file(str(shard)))[0]
    _poison(shard, key, value)
    with pytest.raises(CheckpointError) as err:
        load_encoder(folder)
    message = str(err.value)
    assert "\n" not in message and str(shard) in message and f"tensor {key} holds NaN or Inf" in message


def test_an_overflow_to_float16_is_refused(folder):
    shard = folder / "model-00001-of-00002.safetensors"
    key = next(k for k in sorted(load_file(str(shard))) if k.endswith("fc1.weight"))
    _poison(shard, key, 1e6)  # fine in float32, beyond float16's 65504
    load_encoder(folder)
    with pytest.raises(CheckpointError, match="overflow when converting to torch.float16"):
        load_encoder(folder, dtype="float16")


def test_a_users_folder_is_named_by_the_folder(folder):
    encoder = load_encoder(folder)
    assert (encoder.name, encoder.version) == ("my-finetune", "custom")


def test_a_folder_whose_config_names_a_repo_is_named_by_it(folder):
    raw = json.loads((folder / "config.json").read_text())
    raw["_name_or_path"] = "someone/their-encoder"
    (folder / "config.json").write_text(json.dumps(raw))
    assert load_encoder(folder).name == "someone/their-encoder"
    raw["_name_or_path"] = "/mnt/cluster/work_dirs/run3"  # a path is not a name
    (folder / "config.json").write_text(json.dumps(raw))
    assert load_encoder(folder).name == "my-finetune"


def test_a_named_version_is_the_name(tmp_path, monkeypatch):
    cfg = tiny_config("6b")
    monkeypatch.setitem(VERSIONS, "InternViT-Tiny-Test", cfg)
    pth = save_internvl_pth(random_internvit(cfg).state_dict(), tmp_path / "ckpt.pth")
    encoder = load_encoder(f"InternViT-Tiny-Test={pth}")
    assert encoder.name == encoder.version == "InternViT-Tiny-Test"


def test_the_fingerprint_follows_the_weights_not_the_folder(folder, tmp_path):
    first = load_encoder(folder).fingerprint
    assert len(first) == 12 and int(first, 16) >= 0
    copy = shutil.copytree(folder, tmp_path / "elsewhere")
    assert load_encoder(copy).fingerprint == first
    _poison(copy / "model-00001-of-00002.safetensors", "embeddings.class_embedding", 0.5)
    assert load_encoder(copy).fingerprint != first


def test_the_fingerprint_of_a_pth_changes_with_its_values(tmp_path, monkeypatch):
    cfg = tiny_config("6b")
    monkeypatch.setitem(VERSIONS, "InternViT-Tiny-Test", cfg)
    a = save_internvl_pth(random_internvit(cfg, seed=1).state_dict(), tmp_path / "a" / "ckpt.pth")
    b = save_internvl_pth(random_internvit(cfg, seed=2).state_dict(), tmp_path / "b" / "ckpt.pth")
    assert a.stat().st_size == b.stat().st_size
    assert load_encoder(f"InternViT-Tiny-Test={a}").fingerprint != load_encoder(f"InternViT-Tiny-Test={b}").fingerprint


def test_random_weights_are_seeded_and_fingerprinted_by_version():
    with torch.device("meta"):  # shape-only use: stays on the meta device
        meta = load_encoder("random:InternViT-6B-448px-V2_5")
    assert next(meta.parameters()).device.type == "meta" and meta.num_layers == 45
    assert (meta.name, meta.version) == ("random:InternViT-6B-448px-V2_5", "InternViT-6B-448px-V2_5")
    assert load_encoder("random:InternViT-300M-448px", num_layers=1).fingerprint != meta.fingerprint
    one = load_encoder("random:InternViT-300M-448px", num_layers=1)
    two = load_encoder("random:InternViT-300M-448px", num_layers=1)
    assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), two.state_dict().values()))
    assert one.fingerprint == two.fingerprint
