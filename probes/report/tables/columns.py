"""The column vocabulary of the report's tables: interval, significance, p-value and note columns.

Intervals travel as companion columns beside the value they belong to (`render.formats` folds them into
the value's cell): ``X ci_low`` / ``X ci_high`` for a wide table's column ``X``, plain ``ci_low`` /
``ci_high`` after the value of a long table; ``X significant`` marks ``X``.
"""
from __future__ import annotations

from typing import Sequence, Tuple

CI_LOW, CI_HIGH, SIGNIFICANT, P_VALUE, NOTE = "ci_low", "ci_high", "significant", "p_value", "note"
P_ADJUSTED = "p_adjusted"  # the p-value adjusted over its comparison's cells (Holm)
INTERVAL_COVERS = "interval_covers"  # what a row's intervals resample: test images, and training seeds or not


def ci_columns(column: str) -> Tuple[str, str]:
    """The interval columns of a wide table's value column: ('X ci_low', 'X ci_high')."""
    return f"{column} {CI_LOW}", f"{column} {CI_HIGH}"


def interval_columns(columns: Sequence[str]) -> list[str]:
    """Every value column's (ci_low, ci_high) pair, in order."""
    return [name for column in columns for name in ci_columns(column)]
