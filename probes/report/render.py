"""Write a table as GitHub Markdown, CSV and LaTeX; every cell is formatted by `format_cell` alone.

Tables reach this module with numbers as numbers (NaN when missing), so what a cell shows (digits,
the missing mark, later an interval beside the value) is decided in one place. Markdown is rendered
here because pandas' `to_markdown` needs the optional `tabulate` package for what is a dozen lines.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from probes.io import write_text_atomic

MISSING = "—"


def format_cell(value, digits: int = 1) -> str:
    """How a table cell reads: numbers with `digits` decimals, missing values as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _numeric(frame: pd.DataFrame, column) -> bool:
    return pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])


def to_markdown(frame: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub table; numbers right-aligned."""
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |",
             "|" + "|".join("---:" if _numeric(frame, c) else "---" for c in frame.columns) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(format_cell(v, digits).replace("|", "\\|") for v in row) + " |")
    if frame.empty:
        lines.append("\n_(no results yet)_")
    return "\n".join(lines) + "\n"


def to_latex(frame: pd.DataFrame, digits: int = 1) -> str:
    """A booktabs tabular; missing cells as '--'."""
    def esc(text: str) -> str:
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                     ("Δ", r"$\Delta$"), ("−", "-"), ("†", r"$^\dagger$")):
            text = text.replace(a, b)
        return text
    align = "".join("r" if _numeric(frame, c) else "l" for c in frame.columns)
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(esc(str(c)) for c in frame.columns) + r" \\",
             r"\midrule"]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(esc(format_cell(v, digits).replace(MISSING, "--")) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, out_dir: Path, name: str, formats: set[str], digits: int = 1) -> list[Path]:
    """`name.md` and `name.csv` always, `name.tex` when asked; returns the paths written."""
    outputs = {"md": lambda: to_markdown(frame, digits), "csv": lambda: frame.to_csv(index=False, na_rep=""),
               "tex": lambda: to_latex(frame, digits)}
    written = []
    for fmt in ("md", "csv", "tex"):
        if fmt in formats or fmt in ("md", "csv"):
            written.append(write_text_atomic(Path(out_dir) / f"{name}.{fmt}", outputs[fmt]()))
    return written
