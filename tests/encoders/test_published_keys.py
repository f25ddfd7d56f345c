"""keymaps.py against the key names of the published checkpoints (fixtures/published_keys.json).

The parity tests write checkpoints with our own writers; this test instead starts from the names
the released files use, so a key map that drifted from them together with our writers still fails.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from probes.encoders import VERSIONS, InternViT
from probes.encoders.keymaps import encoder_keys, find_layout

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "published_keys.json").read_text())["layouts"]


def _all_keys(entry: dict) -> list[str]:
    blocks = [entry["block_prefix"].format(i=i) + key for i in range(entry["blocks"]) for key in entry["block_keys"]]
    return entry["other_keys"] + blocks + entry["skipped_keys"]


@pytest.mark.parametrize("layout", sorted(FIXTURE))
def test_every_published_key_maps_and_every_parameter_is_covered(layout):
    entry = FIXTURE[layout]
    keys = _all_keys(entry)
    assert find_layout(keys) == layout
    with torch.device("meta"):
        params = set(InternViT(VERSIONS[entry["version"]]).state_dict())
    targets = encoder_keys(keys, layout)
    assert set(targets) == set(keys) - set(entry["skipped_keys"])  # exactly the non-encoder keys are skipped
    assert {t.name for t in targets.values()} <= params, "a published key maps to no parameter"
    pieces: dict[str, set[int]] = {}
    for target in targets.values():
        pieces.setdefault(target.name, set()).add(target.part)
        assert len(pieces[target.name]) <= target.parts
    assert set(pieces) == params, "a parameter is filled by no published key"
    parts_of = {t.name: t.parts for t in targets.values()}
    assert all(len(parts) == parts_of[name] for name, parts in pieces.items()), "a q/k/v part is missing"
