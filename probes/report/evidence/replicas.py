"""Segmentation runs that repeat one configuration with another `randomness.seed`: training replicas.

A `probes segment` run writes its plan beside its rows (`OUT/<run_id>/plan.json`). Two runs are replicas
of one configuration when their plans agree on every value that shapes a number (`protocol.number_shaping`
of the resolved config, the encoder's weights, the data, device, precision, crop, schedule and batch)
except `randomness.seed`. A run without a plan file, or without a side file, is never combined. The
report then resamples a Table 15 cell over its images and its replicas together (`evidence.resample.miou_samples`).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import pandas as pd

from probes.protocol import number_shaping
from probes.report.evidence.per_image import Cell, side_file_of

SEED_KEY = "randomness.seed"
# What a segmentation plan states beside its config that shapes the numbers (run_id and the protocol words
# follow from these, and the words name the seed).
_PLAN_FACTS = ("dataset", "data_root", "device", "precision", "total_batch", "crop", "iters")


def plan_path(csv_file: str, run_id: str) -> Path:
    """Where a segmentation run's plan sits: `<the CSV's folder>/<run_id>/plan.json`."""
    return Path(csv_file).parent / run_id / "plan.json"


def configuration(plan: Mapping[str, Any]) -> Tuple[str, Any]:
    """(the configuration a plan runs, as text, seed left out; its seed)."""
    values = number_shaping(plan.get("config", {}))
    seed = values.pop(SEED_KEY, None)
    encoder = plan.get("encoder", {})
    key = {"config": values, "weights": encoder.get("fingerprint") or encoder.get("source"),
           **{k: plan.get(k) for k in _PLAN_FACTS}}
    return json.dumps(key, sort_keys=True, default=str), seed


def _read_plan(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def seed_replicas(runs: pd.DataFrame) -> Dict[str, Tuple[Path, ...]]:
    """{run: side files of the runs repeating its configuration with other seeds} (one per seed, by seed)."""
    if runs.empty:
        return {}
    found: Dict[str, Dict[Any, Tuple[str, Path]]] = {}   # configuration -> {seed: (run, side file)}
    for run, run_id, file, predictions in zip(runs["run"], runs["run_id"], runs["file"], runs["predictions"]):
        side = side_file_of(file, predictions)
        plan = _read_plan(plan_path(file, run_id)) if run_id and side is not None else None
        if plan is None:
            continue
        key, seed = configuration(plan)
        found.setdefault(key, {})[json.dumps(seed)] = (run, side)   # a later row of one seed wins
    out: Dict[str, Tuple[Path, ...]] = {}
    for seeds in found.values():
        if len(seeds) < 2:
            continue
        for run, _ in seeds.values():
            out[run] = tuple(side for seed, (other, side) in sorted(seeds.items()) if other != run)
    return out


def with_replicas(cells: Mapping[str, Cell], replicas: Mapping[str, Tuple[Path, ...]]) -> Dict[str, Cell]:
    """The segmentation cells with each one's seed replicas attached (cells without a side file keep none)."""
    return {run: replace(cell, replicas=replicas.get(run, ())) if cell.side_file is not None else cell
            for run, cell in cells.items()}
