"""Tiny encoders and tiny data roots in the real ImageNet layouts, written once per test session."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from probes.classification.config import ClassifyConfig, load_config
from probes.encoders.internvit import InternViT
from probes.testing.imagenet_data import shared_a_r_classes, write_imagenet_root
from probes.testing.checkpoints import write_tiny_hf_encoder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A tiny random InternViT (300M style: hidden 48, 4 blocks, 4 heads, 56px, patch 14)."""
    return write_tiny_hf_encoder(tmp_path_factory.mktemp("enc") / "tiny300m", style="300m", seed=0)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """Every set, four classes shared by IN-A and IN-R, with the file quirks of the real sets."""
    root = tmp_path_factory.mktemp("imagenet")
    write_imagenet_root(root, shared_a_r_classes(4), train_per_class=4)
    return root


@pytest.fixture
def tiny_cfg(tiny_encoder, data_root, tmp_path):
    """A factory: the tiny demo config on the session data, results under this test's tmp_path."""
    def make(**overrides: Any) -> ClassifyConfig:
        options = {"encoder.source": str(tiny_encoder), "data.root": str(data_root),
                   "runtime.out": str(tmp_path / "out")}
        options.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_config("tiny_demo", options)
    return make


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors gain nothing from a second thread, and on a shared 2-core machine an OpenMP
    barrier waiting for a descheduled thread can make a small op 100x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def count_backbone(monkeypatch):
    """Count the frozen encoder's forward passes (each call is one batch through the backbone)."""
    calls = {"n": 0, "images": 0}
    real = InternViT.forward_features

    def counting(self, x, *a, **k):
        calls["n"] += 1
        calls["images"] += x.shape[0]
        return real(self, x, *a, **k)

    monkeypatch.setattr(InternViT, "forward_features", counting)
    return calls
