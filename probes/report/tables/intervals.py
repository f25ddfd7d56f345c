"""Put 95% bootstrap intervals on the report's tables: Table 14 / baselines, Table 15, the per-layer table.

Every measured cell is resampled over its images; an average over sets and Δ come from the same
resamples (`Samples` arithmetic), so they are as paired as the cells they are built from:

* Table 14: avg = per-resample mean of the six sets (IN-1K and IN-ReaL from one resample of the val
  images they share, see `evidence.per_image.image_pool`); Δ = attention-pooling avg − linear avg of the run
  (both heads scored the same images, so the pair shares every resample);
* Table 15: per mode, the mean of ADE20K and COCO-Stuff (independent sets); Δ1 / Δ2 = head / full
  avg − linear avg, paired through the datasets' shared images (runs of one dataset that scored
  other images are resampled independently, see `evidence.per_image.resample_key`).
"""
from __future__ import annotations

from typing import Dict, Hashable, Mapping, Optional, Sequence, Tuple

import pandas as pd

from probes.report.evidence.per_image import Cell, side_file_of
from probes.report.evidence.resample import Estimate, difference, mean
from probes.report.stats import covers, interval
from probes.report.tables.columns import INTERVAL_COVERS, NOTE, ci_columns, interval_columns
from probes.report.tables.layouts import DELTA, DELTA1, DELTA2, t15_column
from probes.results import DATASETS, MODES, TEST_SETS, set_average

CellKey = Tuple[str, str, str]  # (run, probe, test set)
PER_LAYER_SETS = [*TEST_SETS, "avg"]
PER_LAYER_COLUMNS = ["encoder", "run", "layer", "num_layers", "depth", *PER_LAYER_SETS, NOTE, INTERVAL_COVERS,
                     *interval_columns(PER_LAYER_SETS)]


def fill(frame: pd.DataFrame, estimates: Sequence[Mapping[str, Optional[Estimate]]], note_column: str = "note",
         level: float = 0.95) -> pd.DataFrame:
    """Write each row's intervals into its `X ci_low` / `X ci_high` columns, its notes into `note`, and what
    its intervals resample into `interval_covers` ('' for a row without one).

    ``estimates[i]`` maps value columns of row i to their estimates; a column whose row value is
    missing gets no interval and no note.
    """
    frame = frame.copy()
    notes, covered = [], []
    for position, (index, row_estimates) in enumerate(zip(frame.index, estimates)):
        said: list[str] = []
        models: Dict[str, int] = {}
        shown = False
        for column, estimate in row_estimates.items():
            if estimate is None or pd.isna(frame.at[index, column]):
                continue
            if isinstance(estimate, str):
                if estimate not in said:
                    said.append(estimate)
                continue
            low, high = ci_columns(column)
            frame.at[index, low], frame.at[index, high] = interval(estimate, level)
            models.update(estimate.models)
            shown = True
        notes.append("; ".join(said))
        covered.append(covers(models) if shown else "")
    if len(frame):
        frame[note_column] = notes
        frame[INTERVAL_COVERS] = covered
    return frame


def classification_cells(cells: pd.DataFrame) -> Dict[CellKey, Cell]:
    """{(run, probe, test set): Cell} of every head a classification table shows."""
    return {(run, probe, test_set): Cell(side_file_of(file, predictions), test_set, float(top1), head)
            for run, probe, test_set, file, predictions, top1, head in zip(
                cells["run"], cells["probe"], cells["test_set"], cells["file"], cells["predictions"],
                cells["top1"], cells["prediction_head"])}


def segmentation_cells(runs: pd.DataFrame, metric_column: str) -> Dict[str, Cell]:
    """{run: Cell} of every segmentation run; a side file holds the final evaluation only."""
    note = "" if metric_column == "mIoU" else "the side file holds the final evaluation: no interval for best_mIoU"
    return {run: Cell(side_file_of(file, predictions) if not note else None, dataset, float(value), note=note)
            for run, file, predictions, dataset, value in zip(
                runs["run"], runs["file"], runs["predictions"], runs["dataset"], runs["value"])}


def with_classification_intervals(runs: pd.DataFrame, estimates: Mapping[CellKey, Estimate]) -> pd.DataFrame:
    """Table 14 (or baseline) runs with every set's, the average's and Δ's interval filled in."""
    def per_set(run: str, probe: str) -> Dict[str, Optional[Estimate]]:
        return {s: estimates.get((run, probe, s)) for s in TEST_SETS}

    rows = []
    for run, probe in zip(runs["run_key"], runs["probe_key"]):
        mine = per_set(run, probe)
        row = dict(mine, avg=mean(list(mine.values())))
        if probe == "attention_pooling":
            row[DELTA] = difference(row["avg"], mean(list(per_set(run, "linear").values())))
        rows.append(row)
    return fill(runs, rows)


def with_segmentation_intervals(t15: pd.DataFrame, runs: pd.DataFrame, estimates: Mapping[str, Estimate]
                                ) -> pd.DataFrame:
    """Table 15 with every cell's, each mode's average's and Δ1 / Δ2's interval filled in."""
    shown = runs[runs["default"].astype(bool)] if len(runs) else runs
    rows = []
    for group in t15["encoder"]:
        mine = shown[shown["group"] == group]
        run_of = {(d, m): run for d, m, run in zip(mine["dataset"], mine["mode"], mine["run"])}
        row: Dict[str, Optional[Estimate]] = {}
        for mode in MODES:
            cells = [estimates.get(run_of.get((d, mode))) for d in DATASETS]
            row.update({t15_column(d, mode): c for d, c in zip(DATASETS, cells)})
            row[t15_column("avg", mode)] = mean(cells)
        row[DELTA1] = difference(row[t15_column("avg", "head")], row[t15_column("avg", "linear")])
        row[DELTA2] = difference(row[t15_column("avg", "full")], row[t15_column("avg", "linear")])
        rows.append(row)
    return fill(t15, rows)


LayerKey = Tuple[str, str, float, str]  # ("layer", run, layer, test set)


def layer_cells_to_request(layers: pd.DataFrame) -> Dict[LayerKey, Cell]:
    """{("layer", run, layer, test set): Cell} of the per-layer heads."""
    return {("layer", run, layer, test_set): Cell(side_file_of(file, predictions), test_set, float(top1), head)
            for run, layer, test_set, file, predictions, top1, head in zip(
                layers["run"], layers["layer"], layers["test_set"], layers["file"], layers["predictions"],
                layers["top1"], layers["prediction_head"])}


def per_layer_table(layers: pd.DataFrame, labels: Mapping[str, str], estimates: Mapping[Hashable, Estimate]
                    ) -> pd.DataFrame:
    """One row per run and probed block: top-1 per set and their average, with intervals.

    `depth` = layer / num_layers (the run's last block = 1.0), for encoders of different depths.
    """
    if layers.empty:
        return pd.DataFrame(columns=PER_LAYER_COLUMNS)
    rows, row_estimates = [], []
    for (run, layer), group in layers.groupby(["run", "layer"], sort=False):
        values = group.set_index("test_set")["top1"].astype(float)
        first = group.iloc[0]
        row = {"encoder": labels.get(run, first["group"]), "run": first["run_name"], "layer": int(layer),
               "num_layers": int(group["num_layers"].iloc[0]), "depth": layer / group["num_layers"].iloc[0],
               **{s: values.get(s, float("nan")) for s in TEST_SETS}}
        row["avg"] = set_average(row)
        cells = {s: estimates.get(("layer", run, layer, s)) for s in TEST_SETS}
        rows.append(row)
        row_estimates.append(dict(cells, avg=mean(list(cells.values()))))
    table = pd.DataFrame(rows).assign(**{NOTE: "", INTERVAL_COVERS: "",
                                         **{c: float("nan") for c in interval_columns(PER_LAYER_SETS)}})
    table = fill(table, row_estimates)
    table = table.sort_values(["encoder", "layer"], kind="stable").reset_index(drop=True)
    return table[PER_LAYER_COLUMNS]
