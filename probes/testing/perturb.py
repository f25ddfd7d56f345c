"""A changed value of the same kind, for tests that change every key of a recipe in turn."""
from __future__ import annotations

from typing import Any


def perturbed(value: Any) -> Any:
    """`value` changed but of the same type: bools flip, numbers grow, strings get a suffix, lists change item 0."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 1e-3
    if isinstance(value, str):
        return value + "_x"
    if value is None:
        return 1
    if isinstance(value, (list, tuple)) and value:
        return [perturbed(value[0]), *value[1:]]
    return [1]
