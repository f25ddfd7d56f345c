"""Write a table as GitHub Markdown, CSV and LaTeX; every cell is formatted by `format_cell` alone.

Tables reach this module with numbers as numbers (NaN when missing), so what a cell shows (digits,
the missing mark, the interval beside the value) is decided in one place. Markdown is rendered here
because pandas' `to_markdown` needs the optional `tabulate` package for what is a dozen lines.

Intervals travel as companion columns, which CSV keeps as they are and Markdown / LaTeX fold into
the value's cell (``86.6 ±0.3``):

* ``X ci_low`` / ``X ci_high`` belong to column ``X`` (wide tables: one pair per value column);
* plain ``ci_low`` / ``ci_high`` belong to the column just before ``ci_low`` (long tables);
* ``X significant`` (or plain ``significant``, with the plain pair) marks ``X`` with `` *``;
* ``p_value`` and ``p_adjusted`` columns read as ``0.012`` / ``<0.001``; a ``note`` or
  ``interval_covers`` column that is empty everywhere is left out of Markdown and LaTeX.

So that a table fits a page, Markdown and LaTeX replace a ``run`` column by a short label (``r1``, ``r2``,
...) and move the run's name with its ``protocol`` / ``protocol_notes`` words into footnotes keyed by that
label (`footnoted`); CSV keeps every word in its column.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional, Tuple

import pandas as pd

from probes.io import write_text_atomic
from probes.report.tables.columns import (CI_HIGH, CI_LOW, INTERVAL_COVERS, NOTE, P_ADJUSTED, P_VALUE, SIGNIFICANT,
                                          ci_columns)

MISSING = "—"
SIGNIFICANT_MARK = "*"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_interval(value: float, low: float, high: float, digits: int = 1) -> str:
    """' ±h' (h = half the interval's width), or ' [low, high]' where the interval is visibly lopsided.

    Percentile intervals of accuracies and mIoU over thousands of images are symmetric to within
    the Monte-Carlo noise of 1,000 resamples, so ± reads best; where the two sides differ by more
    than a third of the half-width and by at least half a shown digit (small sets, scores near 0 or
    100, a value outside its interval) the bounds are written out instead.
    """
    lower, upper = value - low, high - value
    half = (high - low) / 2
    if abs(upper - lower) <= max(0.5 * 10 ** -digits, half / 3):
        return f" ±{half:.{digits}f}"
    return f" [{low:.{digits}f}, {high:.{digits}f}]"


def format_cell(value, digits: int = 1, interval: Optional[Tuple[float, float]] = None,
                significant: bool = False) -> str:
    """How a table cell reads: numbers with `digits` decimals (and ``±h`` when an interval is given,
    `` *`` when marked significant), missing values as an em dash."""
    if _missing(value):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    text = f"{value:.{digits}f}"
    if interval is not None and not any(_missing(v) or math.isinf(v) for v in interval):
        text += format_interval(value, float(interval[0]), float(interval[1]), digits)
    return text + (f" {SIGNIFICANT_MARK}" if significant else "")


def format_p(value) -> str:
    """A p-value: three decimals, '<0.001' below that, an em dash when missing."""
    if _missing(value):
        return MISSING
    return "<0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def _companions(frame: pd.DataFrame) -> tuple[dict, set]:
    """{value column: (low, high, significant or None)} and every companion column (hidden in md/tex)."""
    columns = list(frame.columns)
    found, hidden = {}, set()
    for position, column in enumerate(columns):
        low, high = ci_columns(str(column))
        significant = f"{column} {SIGNIFICANT}"
        if low in columns and high in columns:
            found[column] = (low, high, significant if significant in columns else None)
        elif position + 1 < len(columns) and columns[position + 1] == CI_LOW and CI_HIGH in columns:
            found[column] = (CI_LOW, CI_HIGH, SIGNIFICANT if SIGNIFICANT in columns else None)
    for low, high, significant in found.values():
        hidden |= {low, high} | ({significant} if significant else set())
    for column in columns:
        if str(column) in (NOTE, INTERVAL_COVERS) or str(column).endswith(f" {NOTE}"):
            if all(_missing(v) or str(v) == "" for v in frame[column]):
                hidden.add(column)
    return found, hidden


def _is_p(column) -> bool:
    return any(str(column) == p or str(column).endswith(f" {p}") for p in (P_VALUE, P_ADJUSTED))


def _numeric(frame: pd.DataFrame, column) -> bool:
    return pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])


def _true(value) -> bool:
    return value is True or str(value) in ("True", "true")


def _display(frame: pd.DataFrame, digits: int, column_digits: Optional[Mapping[str, int]] = None
             ) -> tuple[list, list[bool], list[list[str]]]:
    """(headers, right-aligned per column, rows of cell texts) with companions folded into their values."""
    column_digits = column_digits or {}
    found, hidden = _companions(frame)
    shown = [c for c in frame.columns if c not in hidden]
    where = {c: i for i, c in enumerate(frame.columns)}
    rows = []
    for values in frame.itertuples(index=False):  # itertuples keeps each column's type (ints stay ints)
        cells = []
        for column in shown:
            value = values[where[column]]
            if _is_p(column):
                cells.append(format_p(value))
                continue
            interval, significant = None, False
            if column in found:
                low, high, mark = found[column]
                interval = (values[where[low]], values[where[high]])
                significant = mark is not None and _true(values[where[mark]])
            cells.append(format_cell(value, column_digits.get(column, digits), interval, significant))
        rows.append(cells)
    return shown, [_numeric(frame, c) for c in shown], rows


RUN, PROTOCOL, PROTOCOL_NOTES = "run", "protocol", "protocol_notes"


def footnoted(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """(the frame with `run` as a short label and no protocol columns, the footnotes keyed by the labels).

    Rows of one run with the same protocol words share a label. A frame without a `run` column is returned
    as it is, with no footnote.
    """
    if RUN not in frame.columns:
        return frame, []
    words = [c for c in (RUN, PROTOCOL, PROTOCOL_NOTES) if c in frame.columns]
    labels: dict[tuple, str] = {}
    keys = [tuple("" if _missing(v) else str(v) for v in values) for values in frame[words].itertuples(index=False)]
    for key in keys:
        labels.setdefault(key, f"r{len(labels) + 1}")
    notes = []
    for key, label in labels.items():
        found = dict(zip(words, key))
        text = f"{label}: {found[RUN] or '(no run name)'}"
        if PROTOCOL in found:
            text += f"; protocol: {found[PROTOCOL] or 'published (the recipe, whole test sets)'}"
        if found.get(PROTOCOL_NOTES):
            text += f" ({found[PROTOCOL_NOTES]})"
        notes.append(text)
    shown = frame.drop(columns=[c for c in (PROTOCOL, PROTOCOL_NOTES) if c in frame.columns])
    return shown.assign(**{RUN: [labels[k] for k in keys]}), notes


NO_RESULTS = "_(no results yet)_"


def to_markdown(frame: pd.DataFrame, digits: int = 1, column_digits: Optional[Mapping[str, int]] = None,
                empty: str = NO_RESULTS, key: str = "") -> str:
    """A GitHub table; numbers right-aligned, intervals folded into their cells (`column_digits`: exceptions);
    `empty` is the line under the header of a table without rows; run footnotes (`footnoted`) below it and
    `key` (what short column names stand for) above it."""
    frame, notes = footnoted(frame)
    headers, numeric, rows = _display(frame, digits, column_digits)
    lines = ([key, ""] if key else []) + ["| " + " | ".join(str(c) for c in headers) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for cells in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if frame.empty:
        lines.append(f"\n{empty}")
    if notes and not frame.empty:
        lines += ["", *(f"- {n.replace('|', chr(92) + '|')}" for n in notes)]
    return "\n".join(lines) + "\n"


def to_latex(frame: pd.DataFrame, digits: int = 1, column_digits: Optional[Mapping[str, int]] = None,
             key: str = "") -> str:
    """A booktabs tabular; missing cells as '--'; `key` and the run footnotes in small type below it."""
    def esc(text: str) -> str:
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                     ("Δ", r"$\Delta$"), ("−", "-"), ("†", r"$^\dagger$"), ("±", r"$\pm$"), ("<", r"$<$")):
            text = text.replace(a, b)
        return text
    frame, notes = footnoted(frame)
    headers, numeric, rows = _display(frame, digits, column_digits)
    align = "".join("r" if n else "l" for n in numeric)
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(esc(str(c)) for c in headers) + r" \\",
             r"\midrule"]
    for cells in rows:
        lines.append(" & ".join(esc(c.replace(MISSING, "--")) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [r"\par\noindent{\footnotesize " + esc(n) + r"}" for n in ([key] if key else []) + notes]
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, out_dir: Path, name: str, formats: set[str], digits: int = 1,
                column_digits: Optional[Mapping[str, int]] = None, empty: str = NO_RESULTS,
                display: Optional[pd.DataFrame] = None, key: str = "") -> list[Path]:
    """`name.md` and `name.csv` always, `name.tex` when asked; returns the paths written.

    CSV holds `frame`; Markdown and LaTeX show `display` when given (e.g. short column names), with `key`
    (what the short names stand for) above the table.
    """
    shown = frame if display is None else display
    outputs = {"md": lambda: to_markdown(shown, digits, column_digits, empty, key),
               "csv": lambda: frame.to_csv(index=False, na_rep=""),
               "tex": lambda: to_latex(shown, digits, column_digits, key)}
    written = []
    for fmt in ("md", "csv", "tex"):
        if fmt in formats or fmt in ("md", "csv"):
            written.append(write_text_atomic(Path(out_dir) / f"{name}.{fmt}", outputs[fmt]()))
    return written
