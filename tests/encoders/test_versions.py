"""The seven published versions, built on the meta device at their real size."""
from __future__ import annotations

import pytest
import torch

from probes.encoders import VERSIONS, InternViT
from probes.encoders.source import resolve_version

# architecture.md's parameter counts, in millions, as the model cards round them (V1-0's card repeats
# the 224px figure although its 448px position embedding is 2.5M larger; 45-block cards say 5540 for 5536.5).
PUBLISHED_PARAMS = {
    "InternViT-300M-448px": 304, "InternViT-300M-448px-V2_5": 304, "InternViT-6B-224px": 5903,
    "InternViT-6B-448px-V1-0": 5903, "InternViT-6B-448px-V1-2": 5540, "InternViT-6B-448px-V1-5": 5540,
    "InternViT-6B-448px-V2_5": 5540,
}


@pytest.mark.parametrize("name", sorted(VERSIONS))
def test_parameter_count_matches_the_model_card(name):
    with torch.device("meta"):
        model = InternViT(VERSIONS[name])
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert millions == pytest.approx(PUBLISHED_PARAMS[name], rel=1e-3)


def test_v1_0_probed_at_45_blocks_has_the_v1_2_size():
    with torch.device("meta"):
        v1_0 = InternViT(VERSIONS["InternViT-6B-448px-V1-0"], num_layers=45)
        v1_2 = InternViT(VERSIONS["InternViT-6B-448px-V1-2"])
    assert v1_0.num_layers == v1_2.num_layers == 45
    assert sum(p.numel() for p in v1_0.parameters()) == sum(p.numel() for p in v1_2.parameters())


@pytest.mark.parametrize("alias", ["InternViT-6B-448px-V1.5", "internvit-6b-448px-v1_5", "InternViT-6B-448px-V1-5"])
def test_version_aliases(alias):
    assert resolve_version(alias) == "InternViT-6B-448px-V1-5"
