"""Fixtures shared by every test package."""
from __future__ import annotations

import sys
from typing import Callable, List

import pytest


@pytest.fixture
def count_calls(monkeypatch) -> Callable[[str, str], List[tuple]]:
    """count_calls('probes.encoders.source', 'parse_source') -> the list of (args, kwargs) of every later call.

    The function is replaced in every loaded module that holds it, so a call counts however it was imported.
    """
    def count(module: str, name: str) -> List[tuple]:
        original = getattr(sys.modules[module], name)
        calls: List[tuple] = []

        def counted(*args, **kwargs):
            calls.append((args, kwargs))
            return original(*args, **kwargs)

        for loaded in list(sys.modules.values()):
            if getattr(loaded, "__name__", "").startswith("probes") and getattr(loaded, name, None) is original:
                monkeypatch.setattr(loaded, name, counted)
        return calls
    return count
