"""parse_source: what each spelling of an encoder source means, decided in one place."""
from __future__ import annotations

from pathlib import Path

import pytest

from probes.encoders import EncoderSource, parse_source
from probes.errors import EncoderSourceError


def test_an_existing_folder_is_a_path(tmp_path):
    src = parse_source(str(tmp_path))
    assert (src.kind, src.path, src.version) == ("path", tmp_path, None)


def test_a_path_takes_the_version_argument(tmp_path):
    src = parse_source(tmp_path / "w.pth", version="internvit-6b-224px")
    assert (src.kind, src.version) == ("path", "InternViT-6B-224px")


def test_version_equals_path():
    src = parse_source("InternViT-6B-224px=/ckpt/intern_vit_6b_224px.pth")
    assert (src.kind, src.version, src.path) == ("version", "InternViT-6B-224px", Path("/ckpt/intern_vit_6b_224px.pth"))


def test_a_bare_version_with_weights():
    src = parse_source("InternViT-6B-448px-V1.5", weights="/ckpt/v15")
    assert (src.kind, src.version, src.path) == ("version", "InternViT-6B-448px-V1-5", Path("/ckpt/v15"))


@pytest.mark.parametrize("text, name, tag", [
    ("timm:vit_base_patch16_clip_224.openai", "vit_base_patch16_clip_224", "openai"),
    ("timm:vit_large_patch14_dinov2", "vit_large_patch14_dinov2", None),
])
def test_timm_names_and_tags(text, name, tag):
    src = parse_source(text, weights="/w.safetensors")
    assert (src.kind, src.timm_name, src.timm_tag, src.weights) == ("timm", name, tag, Path("/w.safetensors"))
    assert src.timm_model == text[len("timm:"):]


def test_random_version():
    src = parse_source("random:InternViT-6B-224px")
    assert (src.kind, src.version) == ("random", "InternViT-6B-224px")


def test_a_hub_id_and_its_revision():
    src = parse_source("someone/my-encoder", revision="v2")
    assert (src.kind, src.repo_id, src.revision, src.version) == ("hub", "someone/my-encoder", "v2", None)
    assert parse_source("someone/my-encoder@abc123").revision == "abc123"


def test_a_published_repo_id_maps_to_its_version():
    src = parse_source("OpenGVLab/InternViT-300M-448px-V2_5")
    assert (src.kind, src.version) == ("hub", "InternViT-300M-448px-V2_5")


def test_a_local_path_wins_over_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "OpenGVLab" / "InternViT-300M-448px").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert parse_source("OpenGVLab/InternViT-300M-448px").kind == "path"


def test_a_missing_path_that_is_no_hub_id_stays_a_path():
    """The loader then says it does not exist (an absolute or ./ path is never a repo id)."""
    assert parse_source("/data/nowhere/ckpt").kind == "path"
    assert parse_source("./ckpt/mine").kind == "path"


def test_a_version_argument_that_contradicts_the_source_is_refused():
    with pytest.raises(EncoderSourceError, match="contradicts"):
        parse_source("OpenGVLab/InternViT-6B-448px-V2_5", version="InternViT-6B-448px-V1-0")
    with pytest.raises(EncoderSourceError, match="contradicts"):
        parse_source("InternViT-6B-224px=/w.pth", version="InternViT-300M-448px")


@pytest.mark.parametrize("text, kwargs", [
    ("InternViT-6B-224px=/w.pth", {"weights": "/other"}),
    ("someone/my-encoder", {"weights": "/w"}),
    ("random:InternViT-6B-224px", {"weights": "/w"}),
    ("InternViT-6B-224px=/w.pth", {"revision": "main"}),
])
def test_arguments_that_do_not_apply_are_refused(text, kwargs):
    with pytest.raises(EncoderSourceError, match="was given with the encoder source"):
        parse_source(text, **kwargs)


def test_a_parsed_source_passes_through():
    src = EncoderSource("random", "random:InternViT-6B-224px", version="InternViT-6B-224px")
    assert parse_source(src) is src


@pytest.mark.parametrize("text", ["ckpt/mine/x", "org/name.safetensors", "a/b/c", "~/ckpt", "../ckpt/x"])
def test_text_spelled_as_a_path_is_never_a_hub_id(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_source(text).kind == "path"


def test_a_hub_id_whose_first_folder_exists_here_is_a_path(tmp_path, monkeypatch):
    """`ckpt/myvit-x` with `ckpt/` present is a mistyped path, not a repo named ckpt/myvit-x."""
    (tmp_path / "ckpt" / "myvit").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert parse_source("ckpt/myvit-x").kind == "path"
    assert parse_source("someone/myvit-x").kind == "hub"
    assert parse_source("someone/myvit-x@refs/pr/1").kind == "hub"


def test_a_home_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "enc").mkdir()
    assert parse_source("~/enc").path == tmp_path / "enc"
