"""The report's tables as DataFrames: Table 14 / 15 layouts, other runs, published beside measured, comparisons.

Every cell stays a number (NaN when missing) until `render.format_cell` writes it, so a later change
can put an interval beside each cell. Averages are taken only over complete rows: a missing set
leaves the average (and any delta built on it) missing, never a mean of what happens to be there.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from probes.encoders.versions import VERSIONS
from probes.report.runs import number_runs, pick_defaults
from probes.results import BASELINES, DATASETS, MODES, PROBES, TEST_SETS

PROBE_NAMES = {"linear": "linear", "attention_pooling": "attention pooling"}
DELTA, DELTA1, DELTA2 = "Δ", "Δ1", "Δ2"
SET_COLUMNS = [*TEST_SETS, "avg"]
T14_COLUMNS = ["encoder", "probe", *TEST_SETS, "avg", DELTA, "head", "protocol", "run"]
BASELINE_COLUMNS = ["encoder", "baseline", *TEST_SETS, "avg", "protocol", "run"]
# What the all-runs frame keeps beside the shown columns, to find a row's run and published counterpart.
_RUN_KEYS = ["group", "default", "run_key", "probe_key", "encoder_version", "image_size"]
PAIR_COLUMNS = ["task", "encoder", "probe", "column", "published", "measured", "difference", "measured_selected",
                "max_over_epochs", "head", "protocol"]


def t15_column(dataset: str, mode: str) -> str:
    """A Table 15 column name: 'ADE20K linear', 'avg head' (dataset 'avg': the mean of both datasets)."""
    return f"{dataset} {mode}"


# The paper's order: per mode, ADE20K, COCO-Stuff and their average; then the two deltas.
T15_CELLS = [t15_column(d, m) for m in MODES for d in (*DATASETS, "avg")] + [DELTA1, DELTA2]
T15_COLUMNS = ["encoder", *T15_CELLS, "protocol"]
OTHER_SEGMENTATION_COLUMNS = ["encoder", "dataset", "mode", "mIoU", "best_mIoU", "best_iter", "protocol", "run",
                              "date"]


def order_groups(labels: Sequence[str]) -> list[str]:
    """Published versions first, in release order, then anything else alphabetically."""
    rank = {name: i for i, name in enumerate(VERSIONS)}
    return sorted(set(labels), key=lambda label: (rank.get(label.split(" @")[0], len(rank)), label))


def _join_flags(flags: pd.Series) -> str:
    return ", ".join(sorted({f for f in flags if f}))


def per_set(cells: pd.DataFrame, value: str) -> pd.DataFrame:
    """`value` per (run, probe) x test set, with the average over all six and Δ per run."""
    wide = cells.set_index(["run", "probe", "test_set"])[value].astype(float).unstack("test_set")
    wide = wide.reindex(columns=list(TEST_SETS))
    wide["avg"] = wide[list(TEST_SETS)].mean(axis=1, skipna=False)
    averages = wide["avg"]
    delta = [averages.get((run, "attention_pooling"), float("nan")) - averages.get((run, "linear"), float("nan"))
             if probe == "attention_pooling" else float("nan") for run, probe in wide.index]
    wide[DELTA] = delta
    return wide


def classification_runs(cells: pd.DataFrame, probes: Sequence[str] = PROBES) -> pd.DataFrame:
    """Every run x probe (one run's head each), labelled, with `default` marking the run its table shows.

    Per encoder label (`group`), the default is the latest complete run (every probe on all six sets),
    else the latest; runs are numbered within their group only when there are several.
    """
    cells = cells[cells["probe"].isin(probes)]
    if cells.empty:
        return pd.DataFrame(columns=[*T14_COLUMNS, *_RUN_KEYS])
    meta = cells.groupby(["run", "probe"], sort=False).agg(
        head=("head_used", "first"), protocol=("flag", _join_flags), run_name=("run_name", "first"),
        group=("group", "first"), encoder_version=("encoder_version", "first"), image_size=("image_size", "first"))
    table = meta.join(per_set(cells, "top1")).reset_index()
    runs = cells.groupby("run", sort=False).agg(group=("group", "first"), date=("date", "first"),
                                                order=("order", "min"), found=("top1", "count")).reset_index()
    runs["complete"] = runs["found"] == len(probes) * len(TEST_SETS)
    runs["label"], runs["default"] = number_runs(runs, ["group"]), pick_defaults(runs, ["group"])
    table = table.merge(runs[["run", "label", "default", "date", "order"]], on="run")
    rank = {g: i for i, g in enumerate(order_groups(table["group"]))}
    table = table.assign(_rank=table["group"].map(rank), _probe=table["probe"].map(list(probes).index))
    table = table.sort_values(["_rank", "date", "order", "_probe"], kind="stable")
    table = table.rename(columns={"run": "run_key", "probe": "probe_key", "label": "encoder", "run_name": "run"})
    table["probe"] = table["probe_key"].map(lambda p: PROBE_NAMES.get(p, p))
    return table[[*T14_COLUMNS, *_RUN_KEYS]].reset_index(drop=True)


def table14(runs: pd.DataFrame, default: bool = True) -> pd.DataFrame:
    """The Table 14 layout: the default run of each encoder label (or, with default=False, the other runs)."""
    return runs[runs["default"].astype(bool) == default][T14_COLUMNS].reset_index(drop=True)


def baselines(runs: pd.DataFrame) -> pd.DataFrame:
    """kNN and logistic-regression rows (cached pooled features): every run, one row per baseline."""
    return runs.rename(columns={"probe": "baseline"})[BASELINE_COLUMNS].reset_index(drop=True)


def baseline_runs(cells: pd.DataFrame) -> pd.DataFrame:
    """`classification_runs` for the kNN / logistic-regression baselines."""
    return classification_runs(cells, BASELINES)


def classification_vs_published(runs: pd.DataFrame, cells: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Every cell, avg and Δ of the default Table 14 rows that has a published value, with the difference.

    `measured` is the table's head (published, or selected where a run has none); `measured_selected`
    the head chosen on the held-out split; `max_over_epochs` the table's head at its best epoch on the
    test set itself (the official loop's log: test-set selection).
    """
    shown = runs[runs["default"].astype(bool)]
    if shown.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    columns = [*SET_COLUMNS, DELTA]
    long = shown.melt(id_vars=["encoder", "probe", "probe_key", "run_key", "head", "protocol", "encoder_version",
                               "image_size"], value_vars=columns, var_name="column", value_name="measured")
    for value, name in (("selected_top1", "measured_selected"), ("max_over_epochs_top1", "max_over_epochs")):
        other = per_set(cells[cells["run"].isin(shown["run_key"])], value)[columns].stack(future_stack=True)
        other = other.rename(name).rename_axis(["run_key", "probe_key", "column"]).reset_index()
        long = long.merge(other, on=["run_key", "probe_key", "column"], how="left")
    pub = published.assign(
        probe_key=published["probe"].replace({"delta": "attention_pooling"}),
        column=published["test_set"].where(published["probe"] != "delta", DELTA),
    ).rename(columns={"top1": "published"})[["encoder_version", "image_size", "probe_key", "column", "published"]]
    merged = long.merge(pub, on=["encoder_version", "image_size", "probe_key", "column"], how="inner")
    merged["difference"] = merged["measured"] - merged["published"]
    position = {key: i for i, key in enumerate(zip(shown["run_key"], shown["probe_key"]))}
    merged = merged.assign(_row=[position[k] for k in zip(merged["run_key"], merged["probe_key"])],
                           _column=merged["column"].map(columns.index))
    return merged.sort_values(["_row", "_column"]).assign(task="classification")[PAIR_COLUMNS].reset_index(drop=True)


def segmentation_runs(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Every segmentation run with its `value` (the `metric` column), label and whether its cell shows it.

    Per (encoder label, dataset, mode), the cell shows the latest run that has a value, else the latest.
    """
    rows = rows.assign(value=rows[metric].astype(float), order=range(len(rows)))
    rows["complete"] = rows["value"].notna()
    if rows.empty:
        return rows.assign(label="", default=False)
    within = ["group", "dataset", "mode"]
    return rows.assign(label=number_runs(rows, within), default=pick_defaults(rows, within))


def table15(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows: encoder labels; per mode ADE20K, COCO-Stuff, their mean; Δ1 = head − linear, Δ2 = full − linear."""
    shown = runs[runs["default"].astype(bool)] if len(runs) else runs
    rows = []
    for group in order_groups(shown["group"]) if len(shown) else []:
        mine = shown[shown["group"] == group]
        found = {t15_column(d, m): v for d, m, v in zip(mine["dataset"], mine["mode"], mine["value"])}
        row: dict = {"encoder": group}
        for mode in MODES:
            values = [found.get(t15_column(d, mode), float("nan")) for d in DATASETS]
            row.update({t15_column(d, mode): v for d, v in zip(DATASETS, values)})
            row[t15_column("avg", mode)] = pd.Series(values, dtype=float).mean(skipna=False)
        row[DELTA1] = row[t15_column("avg", "head")] - row[t15_column("avg", "linear")]
        row[DELTA2] = row[t15_column("avg", "full")] - row[t15_column("avg", "linear")]
        row["protocol"] = _join_flags(mine["flag"])
        rows.append(row)
    return pd.DataFrame(rows, columns=T15_COLUMNS)


def table15_other_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The segmentation runs no Table 15 cell shows (older reruns, or newer ones without a result)."""
    if runs.empty:
        return pd.DataFrame(columns=OTHER_SEGMENTATION_COLUMNS)
    others = runs[~runs["default"].astype(bool)]
    rank = {g: i for i, g in enumerate(order_groups(others["group"]))}
    others = others.assign(_rank=others["group"].map(rank), _mode=others["mode"].map(list(MODES).index))
    others = others.sort_values(["_rank", "_mode", "dataset", "date", "order"], kind="stable")
    others = others.drop(columns=["encoder", "run", "protocol"]).rename(
        columns={"label": "encoder", "run_name": "run", "flag": "protocol"})
    return others[OTHER_SEGMENTATION_COLUMNS].reset_index(drop=True)


def segmentation_vs_published(table: pd.DataFrame, runs: pd.DataFrame, published: pd.DataFrame,
                              metric_name: str) -> pd.DataFrame:
    """Every Table 15 cell, average and Δ beside the paper's printed value (matched on the encoder version)."""
    if table.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    versions = runs[runs["default"].astype(bool)].groupby("group")["encoder_version"].first()
    long = table.assign(encoder_version=table["encoder"].map(versions)).melt(
        id_vars=["encoder", "encoder_version", "protocol"], value_vars=T15_CELLS, var_name="column",
        value_name="measured")
    pub = published.rename(columns={"encoder": "encoder_version"}).melt(
        id_vars=["encoder_version"], value_vars=T15_CELLS, var_name="column", value_name="published")
    merged = long.merge(pub, on=["encoder_version", "column"], how="inner")
    merged["difference"] = merged["measured"] - merged["published"]
    merged = merged.assign(_row=merged["encoder"].map(list(table["encoder"]).index),
                           _column=merged["column"].map(T15_CELLS.index)).sort_values(["_row", "_column"])
    return merged.reset_index(drop=True).assign(task="segmentation", probe="", measured_selected=float("nan"),
                         max_over_epochs=float("nan"), head=metric_name)[PAIR_COLUMNS]


def comparison_names(runs14: pd.DataFrame, t15: pd.DataFrame) -> list[str]:
    """The default comparison: every encoder label that has a Table 14 row or a Table 15 row."""
    shown = runs14[runs14["default"].astype(bool)]["group"] if len(runs14) else []
    return list(dict.fromkeys([*shown, *t15["encoder"]]))


def known_names(runs14: pd.DataFrame, t15: pd.DataFrame) -> list[str]:
    """Every name `--compare` accepts: run labels, encoder labels (their default run) and Table 15 rows."""
    return list(dict.fromkeys([*runs14["encoder"], *runs14["group"], *t15["encoder"]]))


def compare_versions(runs14: pd.DataFrame, t15: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Two or more runs or encoders side by side on every probe cell, with differences against the first.

    A name is a run label ('X (run 2)'), or an encoder label, which stands for its default run.
    """
    base, others = names[0], list(names[1:])
    # Every possible row, in table order; rows no name fills are dropped at the end.
    keys = [("classification", PROBE_NAMES[p], c) for p in PROBES for c in SET_COLUMNS]
    keys += [("segmentation", m, d) for m in MODES for d in (*DATASETS, "avg")]
    wide = {key: {"task": key[0], "setting": key[1], "column": key[2]} for key in keys}

    def put(task: str, setting: str, column: str, name: str, value: float) -> None:
        if (task, setting, column) in wide:
            wide[(task, setting, column)][name] = value

    for name in names:
        rows = runs14[runs14["encoder"] == name]
        if rows.empty:
            rows = runs14[(runs14["group"] == name) & runs14["default"].astype(bool)]
        for _, row in rows.iterrows():
            for column in SET_COLUMNS:
                put("classification", row["probe"], column, name, row[column])
        for _, row in t15[t15["encoder"] == name].iterrows():
            for mode in MODES:
                for dataset in (*DATASETS, "avg"):
                    put("segmentation", mode, dataset, name, row[t15_column(dataset, mode)])
    table = pd.DataFrame(list(wide.values()), columns=["task", "setting", "column", *names])
    table = table.dropna(subset=list(names), how="all").reset_index(drop=True)
    for other in others:
        table[f"{other} − {base}"] = table[other] - table[base]
    return table
