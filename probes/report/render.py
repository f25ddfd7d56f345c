"""Write a table as GitHub Markdown, CSV and LaTeX, with missing cells shown as missing.

Markdown is rendered here because pandas' `to_markdown` needs the optional `tabulate` package
for what is a dozen lines.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

MISSING = "—"


def _cell(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(frame: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub table; numbers with `digits` decimals, missing cells as an em dash."""
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(frame[c]) else "---" for c in frame.columns) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v, digits).replace("|", "\\|") for v in row) + " |")
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
    align = "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns)
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(esc(str(c)) for c in frame.columns) + r" \\",
             r"\midrule"]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(esc(_cell(v, digits).replace(MISSING, "--")) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write a file through a temporary name, so a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_table(frame: pd.DataFrame, out_dir: Path, name: str, formats: set[str], digits: int = 1) -> list[Path]:
    """`name.md` and `name.csv` always, `name.tex` when asked; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    outputs = {"md": lambda: to_markdown(frame, digits), "csv": lambda: frame.to_csv(index=False, na_rep=""),
               "tex": lambda: to_latex(frame, digits)}
    for fmt in ("md", "csv", "tex"):
        if fmt in formats or fmt in ("md", "csv"):
            path = out_dir / f"{name}.{fmt}"
            write_atomically(path, outputs[fmt]())
            written.append(path)
    return written
