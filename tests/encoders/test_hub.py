"""Hugging Face hub ids resolve through the local hub cache; nothing here touches the network."""
from __future__ import annotations

import shutil

import pytest
import torch

from probes import load_encoder
from probes.encoders import describe_source
from probes.encoders.versions import VERSIONS
from probes.errors import EncoderSourceError
from probes.testing.checkpoints import (random_internvit, save_chat_folder, save_hf_folder, tiny_config,
                                        write_hub_cache)

TINY_VERSION = "InternViT-Tiny-Test"  # put in the version table, so OpenGVLab/InternViT-Tiny-Test is "published"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder


@pytest.fixture()
def tiny(tmp_path):
    cfg = tiny_config("6b")
    model = random_internvit(cfg, seed=11)
    return cfg, model, save_hf_folder(model.state_dict(), cfg, tmp_path / "src", shards=2)


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_hub_id_loads_from_the_cache(cache, tiny):
    _, model, folder = tiny
    write_hub_cache(cache, "someone/my-encoder", folder)
    encoder = load_encoder("someone/my-encoder")
    assert _same_weights(encoder, model)
    assert (encoder.name, encoder.version, encoder.source) == ("someone/my-encoder", "custom", "someone/my-encoder")


def test_a_revision_picks_that_snapshot(cache, tiny, tmp_path):
    cfg, model, folder = tiny
    old = write_hub_cache(cache, "someone/my-encoder", folder, commit="a" * 40)
    newer = random_internvit(cfg, seed=12)
    write_hub_cache(cache, "someone/my-encoder", save_hf_folder(newer.state_dict(), cfg, tmp_path / "new"),
                    commit="b" * 40)  # refs/main now points here
    assert _same_weights(load_encoder("someone/my-encoder"), newer)
    assert _same_weights(load_encoder("someone/my-encoder", revision=old), model)
    assert _same_weights(load_encoder(f"someone/my-encoder@{old}"), model)


def test_a_published_repo_id_is_named_by_its_version(cache, tiny, monkeypatch):
    cfg, _, folder = tiny
    monkeypatch.setitem(VERSIONS, TINY_VERSION, cfg)
    write_hub_cache(cache, f"OpenGVLab/{TINY_VERSION}", folder)
    encoder = load_encoder(f"OpenGVLab/{TINY_VERSION}")
    assert encoder.version == encoder.name == TINY_VERSION
    info = describe_source(f"OpenGVLab/{TINY_VERSION}")
    assert (info.version, info.config_version, info.embed_dim) == (TINY_VERSION, TINY_VERSION, 48)


def test_a_chat_repo_needs_only_its_vision_shards(cache, tmp_path):
    """An index lists LLM-only shards too; those need not be in the cache."""
    cfg = tiny_config("300m")
    model = random_internvit(cfg, seed=13)
    folder = save_chat_folder(model.state_dict(), cfg, tmp_path / "chat", shards=2)
    llm_only = folder / "model-00003-of-00003.safetensors"
    assert b"vision_model" not in llm_only.read_bytes()[:4096]
    llm_only.unlink()
    write_hub_cache(cache, "someone/chat", folder)
    assert _same_weights(load_encoder("someone/chat"), model)


def test_offline_and_not_cached_is_one_line_with_the_download_command(cache):
    with pytest.raises(EncoderSourceError) as err:
        load_encoder("OpenGVLab/InternViT-300M-448px-V2_5")
    message = str(err.value)
    assert "\n" not in message
    assert "OpenGVLab/InternViT-300M-448px-V2_5 is not in the Hugging Face cache" in message
    assert str(cache) in message and "`hf download OpenGVLab/InternViT-300M-448px-V2_5`" in message


def test_offline_with_a_partial_cache_names_the_missing_shard(cache, tiny):
    _, _, folder = tiny
    (folder / "model-00002-of-00002.safetensors").unlink()
    write_hub_cache(cache, "someone/my-encoder", folder)
    with pytest.raises(EncoderSourceError, match="model-00002-of-00002.safetensors missing"):
        load_encoder("someone/my-encoder")


def test_a_local_folder_wins_over_a_hub_id(cache, tiny, tmp_path, monkeypatch):
    _, model, folder = tiny
    local = tmp_path / "someone" / "my-encoder"
    shutil.copytree(folder, local)
    monkeypatch.chdir(tmp_path)
    encoder = load_encoder("someone/my-encoder")  # nothing in the hub cache: it must be the folder
    assert _same_weights(encoder, model) and encoder.source == "someone/my-encoder"


def test_online_fetches_exactly_the_indexed_encoder_shards(cache, tmp_path, monkeypatch):
    """With downloads allowed, only config, preprocessing, the index and the shards holding the encoder come."""
    import huggingface_hub

    cfg = tiny_config("6b")
    model = random_internvit(cfg, seed=14)
    remote = save_chat_folder(model.state_dict(), cfg, tmp_path / "remote", shards=2)  # + one LLM-only shard
    (remote / "README.md").write_text("not needed")
    fetched = []

    def fake_download(repo_id, filename, revision=None, cache_dir=None, **_):
        fetched.append(filename)
        commit = write_hub_cache(cache_dir, repo_id, remote, commit="c" * 40, names=[filename])
        return str(huggingface_hub.try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=commit))

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id, revision=None: sorted(
        p.name for p in remote.iterdir()))
    encoder = load_encoder("someone/remote-chat")
    assert sorted(fetched) == ["config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                               "model.safetensors.index.json", "preprocessor_config.json"]
    assert _same_weights(encoder, model)
