"""Every shipped segmentation config and a set of flag combinations plan exactly as recorded in golden/plans.json.

The fixture was written by golden/make_plans.py on the code before segment's typed settings layer: a change
to how a config is filled must leave every plan (config, run id, protocol words, errors) as it was.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).parent / "golden" / "make_plans.py"
_spec = importlib.util.spec_from_file_location("make_plans", _SCRIPT)
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)


@pytest.fixture(scope="module")
def plans() -> dict:
    return golden.all_plans()


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(golden.FIXTURE.read_text())


def test_the_cases_are_those_recorded(recorded: dict) -> None:
    names = [name for name, _ in golden.cases()]
    assert names == list(recorded["hashes"]), "regenerate plans.json only on the code before a refactor"
    assert sum(n.startswith(("own/", "generic/")) for n in names) >= 54   # 42 per-version files + 6 generic x 2


def test_every_plan_is_unchanged(plans: dict, recorded: dict) -> None:
    for name in golden.FULL:   # a readable difference first where the full text is kept
        assert json.loads(plans[name]) == recorded["full"][name], name
    changed = [name for name, text in plans.items() if golden.digest(text) != recorded["hashes"][name]]
    assert not changed, f"plans differ from the golden ones: {changed}"
