"""Every bad input gives one clear line naming the culprit."""
from __future__ import annotations

import json
import os

import pytest
import torch

from probes import load_encoder
from probes.errors import CheckpointError, ConfigError, EncoderSourceError
from probes.testing.checkpoints import random_internvit, save_hf_folder, save_internvl_pth, tiny_config


@pytest.fixture()
def folder(tmp_path):
    cfg = tiny_config("6b")
    return save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "enc", shards=2)


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def test_missing_folder(tmp_path):
    with pytest.raises(EncoderSourceError) as err:
        load_encoder(tmp_path / "nowhere")
    assert "nowhere does not exist" in _one_line(err)


def test_folder_without_config(folder):
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError) as err:
        load_encoder(folder)
    assert "has no config.json" in _one_line(err) and str(folder) in str(err.value)


def test_folder_without_weights(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text(json.dumps(tiny_config("6b").to_hf_dict()))
    with pytest.raises(CheckpointError) as err:
        load_encoder(tmp_path / "empty")
    assert "holds no weights" in _one_line(err)


def test_truncated_shard_is_named(folder):
    shard = folder / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(CheckpointError) as err:
        load_encoder(folder)
    assert "model-00002-of-00002.safetensors is truncated" in _one_line(err)


def test_missing_shard_is_named(folder):
    (folder / "model-00001-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError) as err:
        load_encoder(folder)
    assert "missing: model-00001-of-00002.safetensors" in _one_line(err)


def test_corrupt_header(folder):
    shard = folder / "model-00001-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[8:12] = b"\xff\xfe{{"
    shard.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as err:
        load_encoder(folder)
    assert "model-00001-of-00002.safetensors is corrupt" in _one_line(err)


def test_corrupt_pytorch_bin(tmp_path):
    cfg = tiny_config("300m")
    folder = save_hf_folder(random_internvit(cfg).state_dict(), cfg, tmp_path / "bin", file_format="bin")
    blob = folder / "pytorch_model.bin"
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])
    with pytest.raises(CheckpointError) as err:
        load_encoder(folder)
    assert "pytorch_model.bin is truncated or corrupt" in _one_line(err)


def test_keys_that_do_not_match_are_listed(tmp_path):
    cfg = tiny_config("6b")
    state = random_internvit(cfg).state_dict()
    state["encoder.layers.0.attn.extra.weight"] = torch.zeros(2)
    del state["encoder.layers.1.mlp.fc1.bias"]
    with pytest.raises(CheckpointError) as err:
        load_encoder(save_hf_folder(state, cfg, tmp_path / "bad"))
    message = _one_line(err)
    assert "missing 1 key(s): encoder.layers.1.mlp.fc1.bias" in message
    assert "unexpected 1 key(s): encoder.layers.0.attn.extra.weight" in message


def test_wrong_architecture_for_the_weights(tmp_path):
    """Weights of the 300M style under a 6B-style config: the norm/bias keys do not match."""
    state = random_internvit(tiny_config("300m")).state_dict()
    with pytest.raises(CheckpointError) as err:
        load_encoder(save_hf_folder(state, tiny_config("6b"), tmp_path / "mixed"))
    assert "q_norm.weight" in _one_line(err) and "qkv.bias" in str(err.value)


def test_wrong_shape(tmp_path):
    cfg = tiny_config("6b")
    state = random_internvit(cfg.replace(intermediate_size=96)).state_dict()
    with pytest.raises(CheckpointError) as err:
        load_encoder(save_hf_folder(state, cfg, tmp_path / "shape"))
    assert "wrong shape" in _one_line(err) and "fc1" in str(err.value)


def test_unknown_version():
    with pytest.raises(EncoderSourceError) as err:
        load_encoder("InternViT-6B-448px-V3=/tmp/x")
    assert "unknown InternViT version 'InternViT-6B-448px-V3'" in _one_line(err)


def test_version_without_weights_points_at_the_hub_id():
    with pytest.raises(EncoderSourceError) as err:
        load_encoder("InternViT-300M-448px")
    assert "names an architecture, not weights" in _one_line(err)
    assert "the hub id OpenGVLab/InternViT-300M-448px" in str(err.value)


def test_unknown_timm_name():
    with pytest.raises(EncoderSourceError) as err:
        load_encoder("timm:vit_base_patch16_2244")
    assert "unknown timm model 'vit_base_patch16_2244'" in _one_line(err) and "vit_base_patch16_224" in str(err.value)


def test_pth_without_version(tmp_path):
    pth = save_internvl_pth(random_internvit(tiny_config("6b")).state_dict(), tmp_path / "ckpt.pth")
    with pytest.raises(CheckpointError) as err:
        load_encoder(pth)
    assert "ckpt.pth is an InternVL .pth with no architecture" in _one_line(err)


def test_config_typo_is_named(folder):
    raw = json.loads((folder / "config.json").read_text())
    raw["norm_type"] = "rmsnorm"
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError) as err:
        load_encoder(folder)
    assert "norm_type must be one of" in _one_line(err) and "rmsnorm" in str(err.value)


def test_config_missing_a_field_is_named(folder):
    raw = json.loads((folder / "config.json").read_text())
    del raw["num_attention_heads"]
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError) as err:
        load_encoder(folder)
    assert "config.json lacks the InternViT field(s) num_attention_heads" in _one_line(err)


def test_too_many_layers_asked(folder):
    with pytest.raises(CheckpointError) as err:
        load_encoder(folder, num_layers=9)
    assert "num_layers=9 is outside 1..4" in _one_line(err)


def test_cuda_on_a_cpu_machine(folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same check on a GPU machine
    with pytest.raises(ConfigError) as err:
        load_encoder(folder, device="cuda")
    assert "no CUDA GPU" in _one_line(err)


def test_cli_prints_one_line_and_exits_2(folder, capsys):
    from probes.cli import main

    (folder / "config.json").unlink()
    assert main(["inspect", str(folder), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("probes inspect: error:") and "\n" not in err


def _no_network(monkeypatch):
    """Any hub call or socket connection fails the test."""
    import socket

    import huggingface_hub

    def refuse(*args, **kwargs):
        pytest.fail("a missing local path made a network call")

    for name in ("hf_hub_download", "list_repo_files", "snapshot_download"):
        monkeypatch.setattr(huggingface_hub, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.mark.parametrize("typed", ["ckpt/myvit-x", "./ckpt/myvit-x", "ckpt/myvit-x/model.safetensors"])
def test_a_mistyped_relative_path_fails_at_once_without_the_network(typed, folder, tmp_path, monkeypatch, capsys):
    import time

    from probes.cli import main

    (tmp_path / "ckpt").mkdir()
    folder.rename(tmp_path / "ckpt" / "myvit")
    monkeypatch.chdir(tmp_path)
    _no_network(monkeypatch)
    start = time.perf_counter()
    assert main(["inspect", typed, "--device", "cpu"]) == 2
    assert time.perf_counter() - start < 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{os.path.normpath(typed)} does not exist" in err and "did you mean ckpt/myvit" in err


def test_config_json_is_not_a_weights_file(folder):
    with pytest.raises(CheckpointError) as err:
        load_encoder(folder / "config.json")
    message = _one_line(err)
    assert "config.json is not a weights file" in message and "folder that holds config.json" in message


def test_a_shard_index_stands_for_its_folder(folder):
    assert load_encoder(folder / "model.safetensors.index.json").num_layers == 4
