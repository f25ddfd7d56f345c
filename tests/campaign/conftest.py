"""Two tiny encoders and a tiny ImageNet root in the real layouts, written once per session."""
from __future__ import annotations

from pathlib import Path

import pytest

from probes.testing.checkpoints import write_tiny_hf_encoder
from probes.testing.imagenet_data import shared_a_r_classes, write_imagenet_root


@pytest.fixture(scope="session")
def tiny_encoders(tmp_path_factory) -> list[Path]:
    """Two tiny 300M-style InternViTs (width 48, 4 blocks, 4 heads, 56 px, patch 14) with different weights."""
    folder = tmp_path_factory.mktemp("encoders")
    return [write_tiny_hf_encoder(folder / name, style="300m", seed=seed) for seed, name in enumerate(("encA", "encB"))]


@pytest.fixture(scope="session")
def imagenet_root(tmp_path_factory) -> Path:
    """Every set, four classes, four train images per class."""
    root = tmp_path_factory.mktemp("imagenet")
    write_imagenet_root(root, shared_a_r_classes(4), train_per_class=4)
    return root
