"""Classification result rows: one per (encoder, probe, lr, ema, test set), in `classification_results.csv`."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Sequence

from probes import results
from probes.results import CLASSIFICATION_COLUMNS as COLUMNS

RESULTS_FILE = "classification_results.csv"
__all__ = ["COLUMNS", "RESULTS_FILE", "append_rows", "read_rows"]


def append_rows(rows: Sequence[Mapping[str, object]], out_dir: Path) -> Path:
    """Append rows to ``out_dir/classification_results.csv`` atomically."""
    return results.append_rows(Path(out_dir) / RESULTS_FILE, rows, COLUMNS)


def read_rows(out_dir: Path) -> List[Dict[str, str]]:
    """All rows of the results CSV in ``out_dir`` (empty if none)."""
    return results.read_rows(Path(out_dir) / RESULTS_FILE)
