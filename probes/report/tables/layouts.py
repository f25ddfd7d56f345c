"""The report's tables as DataFrames: Table 14 / 15 layouts, other runs, published beside measured, comparisons.

Every cell stays a number (NaN when missing) until `render.formats.format_cell` writes it. Each measured value
column X has interval columns `X ci_low` / `X ci_high` (NaN until `tables.intervals` fills them) after
the paper's columns, and a `note` says why a row has none. Averages are taken only over complete rows
(`results.set_average`, the rule the classify terminal summary uses too): a missing set leaves the
average (and any delta built on it) missing, never a mean of what happens to be there.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from probes.encoders.versions import VERSIONS
from probes.report.tables.columns import (CI_HIGH, CI_LOW, INTERVAL_COVERS, NOTE, P_ADJUSTED, P_VALUE, SIGNIFICANT,
                                          ci_columns, interval_columns)
from probes.report.tables.runs import number_runs, pick_defaults
from probes.results import BASELINES, DATASETS, MODES, PROBES, TEST_SETS, set_average

PROBE_NAMES = {"linear": "linear", "attention_pooling": "attention pooling"}
DELTA, DELTA1, DELTA2 = "Δ", "Δ1", "Δ2"
SET_COLUMNS = [*TEST_SETS, "avg"]
T14_VALUES = [*SET_COLUMNS, DELTA]
# `run`, `protocol` and `protocol_notes` stay whole in CSV; Markdown / LaTeX show a short run label and move the
# words into footnotes keyed by it (render.formats.footnoted), so a table fits a page.
T14_COLUMNS = ["encoder", "probe", *T14_VALUES, "head", "protocol", "protocol_notes", "run", NOTE, INTERVAL_COVERS,
               *interval_columns(T14_VALUES)]
BASELINE_COLUMNS = ["encoder", "baseline", *SET_COLUMNS, "protocol", "protocol_notes", "run", NOTE, INTERVAL_COVERS,
                    *interval_columns(SET_COLUMNS)]
# What the all-runs frame keeps beside the shown columns, to find a row's run and published counterpart.
_RUN_KEYS = ["group", "default", "run_key", "probe_key", "encoder_version", "image_size"]
PAIR_COLUMNS = ["task", "encoder", "probe", "column", "published", "measured", "difference", "measured_selected",
                "max_over_epochs", "head", "protocol", INTERVAL_COVERS, *ci_columns("measured")]


def t15_column(dataset: str, mode: str) -> str:
    """A Table 15 column name: 'ADE20K linear', 'avg head' (dataset 'avg': the mean of both datasets)."""
    return f"{dataset} {mode}"


# The paper's order: per mode, ADE20K, COCO-Stuff and their average; then the two deltas.
T15_CELLS = [t15_column(d, m) for m in MODES for d in (*DATASETS, "avg")] + [DELTA1, DELTA2]
T15_COLUMNS = ["encoder", *T15_CELLS, "protocol", "protocol_notes", "run", NOTE, INTERVAL_COVERS,
               *interval_columns(T15_CELLS)]
OTHER_SEGMENTATION_COLUMNS = ["encoder", "dataset", "mode", "mIoU", "best_mIoU", "best_iter", "protocol",
                              "protocol_notes", "run", "date"]


def order_groups(labels: Sequence[str]) -> list[str]:
    """Published versions first, in release order, then anything else alphabetically."""
    rank = {name: i for i, name in enumerate(VERSIONS)}
    return sorted(set(labels), key=lambda label: (rank.get(label.split(" @")[0], len(rank)), label))


def _join_flags(flags: pd.Series) -> str:
    return ", ".join(sorted({f for f in flags if f}))


def _join_notes(notes: pd.Series) -> str:
    """The distinct `protocol_notes` of the rows a table row stands for, in their order."""
    return " | ".join(dict.fromkeys(n for n in notes if n))


def per_set(cells: pd.DataFrame, value: str) -> pd.DataFrame:
    """`value` per (run, probe) x test set, with the average over all six and Δ per run."""
    wide = cells.set_index(["run", "probe", "test_set"])[value].astype(float).unstack("test_set")
    wide = wide.reindex(columns=list(TEST_SETS))
    wide["avg"] = [set_average(dict(zip(TEST_SETS, values))) for values in wide[list(TEST_SETS)].to_numpy()]
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
        head=("head_used", "first"), protocol=("flag", _join_flags), protocol_notes=("protocol_notes", _join_notes),
        run_name=("run_name", "first"),
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
    table[NOTE], table[INTERVAL_COVERS] = "", ""
    table = table.assign(**{c: float("nan") for c in interval_columns(T14_VALUES)})
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
    ids = ["encoder", "probe", "probe_key", "run_key", "head", "protocol", "encoder_version", "image_size",
           INTERVAL_COVERS]
    long = shown.melt(id_vars=ids, value_vars=columns, var_name="column", value_name="measured")
    long = _with_measured_intervals(long, shown, ids, columns)
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


def _with_measured_intervals(long: pd.DataFrame, wide: pd.DataFrame, ids: list[str], columns: list[str]
                             ) -> pd.DataFrame:
    """The long frame with each `measured` value's interval, taken from the wide table's `X ci_*` columns."""
    for bound, name in zip(("ci_low", "ci_high"), ci_columns("measured")):
        values = wide.melt(id_vars=ids, value_vars=[f"{c} {bound}" for c in columns], var_name="column",
                           value_name=name)
        long[name] = values[name].to_numpy()  # melt stacks column by column: rows line up
    return long


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
            row[t15_column("avg", mode)] = set_average(dict(zip(DATASETS, values)), DATASETS)
        row[DELTA1] = row[t15_column("avg", "head")] - row[t15_column("avg", "linear")]
        row[DELTA2] = row[t15_column("avg", "full")] - row[t15_column("avg", "linear")]
        row["protocol"] = _join_flags(mine["flag"])
        row["protocol_notes"] = _join_notes(mine["protocol_notes"])
        # A Table 15 row is up to six runs: each cell's run, in the table's order.
        cells = mine.assign(_cell=[T15_CELLS.index(t15_column(d, m)) for d, m in zip(mine["dataset"], mine["mode"])])
        row["run"] = "; ".join(f"{d} {m}: {name}" for d, m, name in
                               cells.sort_values("_cell")[["dataset", "mode", "run_name"]].itertuples(index=False))
        row[NOTE], row[INTERVAL_COVERS] = "", ""
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
    ids = ["encoder", "encoder_version", "protocol", INTERVAL_COVERS]
    table = table.drop(columns=["protocol_notes", "run"])
    with_version = table.assign(encoder_version=table["encoder"].map(versions))
    long = with_version.melt(id_vars=ids, value_vars=T15_CELLS, var_name="column", value_name="measured")
    long = _with_measured_intervals(long, with_version, ids, T15_CELLS)
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


def classification_rows(runs14: pd.DataFrame, name: str) -> pd.DataFrame:
    """The Table 14 rows a comparison name stands for: a run label's rows, or an encoder label's shown run."""
    rows = runs14[runs14["encoder"] == name]
    if rows.empty:
        rows = runs14[(runs14["group"] == name) & runs14["default"].astype(bool)]
    return rows


def segmentation_rows(runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """The segmentation runs a Table 15 row (encoder label) shows, one per dataset and mode."""
    if runs.empty:
        return runs
    return runs[(runs["group"] == name) & runs["default"].astype(bool)]


# Rows of the comparison: (task, setting, column). Δ sits on the attention-pooling row as in Table 14;
# Δ1 / Δ2 (on the averages of both datasets) on the head / full rows.
COMPARISON_KEYS = ([("classification", PROBE_NAMES[p], c) for p in PROBES for c in SET_COLUMNS]
                   + [("classification", PROBE_NAMES["attention_pooling"], DELTA)]
                   + [("segmentation", m, d) for m in MODES for d in (*DATASETS, "avg")]
                   + [("segmentation", "head", DELTA1), ("segmentation", "full", DELTA2)])
DIFFERENCE_COLUMNS = ["task", "setting", "column", "A", "B", "a", "b", "difference", "ci_low", "ci_high", P_VALUE,
                      P_ADJUSTED, SIGNIFICANT, "n_images", INTERVAL_COVERS, NOTE]


def difference_column(base: str, other: str) -> str:
    """The version comparison's column of other − base."""
    return f"{other} − {base}"


def comparison_display(table: pd.DataFrame, names: Sequence[str]) -> tuple[pd.DataFrame, str]:
    """The comparison as a page shows it: each name a letter (A the base), `B − A` headers, and the key.

    Labels such as 'InternViT-6B-448px-V2_5 (run 2) @224' made every difference header three labels long;
    the CSV keeps them whole.
    """
    letters = {name: chr(ord("A") + i) if i < 26 else f"N{i + 1}" for i, name in enumerate(names)}
    rename = {}
    for name, letter in letters.items():
        rename.update({name: letter, **dict(zip(ci_columns(name), ci_columns(letter)))})
    for other in names[1:]:
        long, short = difference_column(names[0], other), difference_column(letters[names[0]], letters[other])
        for suffix in ("", f" {CI_LOW}", f" {CI_HIGH}", f" {P_VALUE}", f" {P_ADJUSTED}", f" {SIGNIFICANT}"):
            rename[long + suffix] = short + suffix
    return table.rename(columns=rename), "; ".join(f"{letter} = {name}" for name, letter in letters.items())


def _values(runs14: pd.DataFrame, t15: pd.DataFrame, name: str) -> dict:
    """{comparison key: (value, ci_low, ci_high)} of one name, from the Table 14 / 15 frames."""
    found = {}
    for _, row in classification_rows(runs14, name).iterrows():
        for column in (*SET_COLUMNS, DELTA):
            low, high = ci_columns(column)
            found[("classification", row["probe"], column)] = (row[column], row[low], row[high])
    for _, row in t15[t15["encoder"] == name].iterrows():
        for mode in MODES:
            for dataset in (*DATASETS, "avg"):
                column = t15_column(dataset, mode)
                low, high = ci_columns(column)
                found[("segmentation", mode, dataset)] = (row[column], row[low], row[high])
        for delta, mode in ((DELTA1, "head"), (DELTA2, "full")):
            low, high = ci_columns(delta)
            found[("segmentation", mode, delta)] = (row[delta], row[low], row[high])
    return found


def compare_versions(runs14: pd.DataFrame, t15: pd.DataFrame, names: Sequence[str],
                     differences: Mapping | None = None) -> pd.DataFrame:
    """Two or more runs or encoders side by side on every probe cell, with differences against the first.

    A name is a run label ('X (run 2)'), or an encoder label, which stands for its default run. Each
    value keeps its interval (`NAME ci_low` / `NAME ci_high`); each difference column `B − A` gets the
    paired comparison's interval, raw and Holm-adjusted p-value and `significant` (on the adjusted one)
    from ``differences`` ({(other, key): Comparison or note}, see `version_tables.compare_names`).
    """
    base, others = names[0], list(names[1:])
    values = {name: _values(runs14, t15, name) for name in names}
    rows = []
    for key in COMPARISON_KEYS:
        row = {"task": key[0], "setting": key[1], "column": key[2]}
        for name in names:
            value, low, high = values[name].get(key, (float("nan"),) * 3)
            row.update({name: value, f"{name} ci_low": low, f"{name} ci_high": high})
        rows.append(row)
    columns = ["task", "setting", "column", *names]
    table = pd.DataFrame(rows)
    table = table[table[list(names)].notna().any(axis=1)].reset_index(drop=True)
    covered: list[list[str]] = []
    for other in others:
        name = difference_column(base, other)
        table[name] = table[other] - table[base]
        found = [(differences or {}).get((other, key)) for key in zip(table["task"], table["setting"], table["column"])]
        table[f"{name} ci_low"] = [getattr(c, "ci_low", float("nan")) for c in found]
        table[f"{name} ci_high"] = [getattr(c, "ci_high", float("nan")) for c in found]
        table[f"{name} {P_VALUE}"] = [getattr(c, "p_value", float("nan")) for c in found]
        table[f"{name} {P_ADJUSTED}"] = [getattr(c, "p_adjusted", float("nan")) for c in found]
        table[f"{name} {SIGNIFICANT}"] = [getattr(c, "significant", None) for c in found]
        covered.append([getattr(c, "covers", "") for c in found])
        columns += [name, f"{name} {P_VALUE}", f"{name} {P_ADJUSTED}"]
    # What the row's paired intervals resample (one text per distinct answer over the difference columns).
    table[INTERVAL_COVERS] = ["; ".join(dict.fromkeys(c for c in texts if c)) for texts in zip(*covered)] \
        if covered and len(table) else ""
    columns.append(INTERVAL_COVERS)
    columns += [c for name in names for c in ci_columns(name)]
    columns += [c for other in others for c in (*ci_columns(difference_column(base, other)),
                                                f"{difference_column(base, other)} {SIGNIFICANT}")]
    return table[columns]


def version_differences(table: pd.DataFrame, names: Sequence[str], differences: Mapping | None = None,
                        default_note: str = "") -> pd.DataFrame:
    """The comparison in long form: per other name and cell, B − A with its paired interval, raw and
    Holm-adjusted p-value (`significant` read from the adjusted one).

    `a` / `b` / `difference` are the paired comparison's (on the images both scored, `n_images`);
    without side files, the tables' values and their difference, with a `note` instead of an interval.
    """
    base, rows = names[0], []
    for other in names[1:]:
        for _, row in table.iterrows():
            if pd.isna(row[base]) or pd.isna(row[other]):
                continue
            key = (row["task"], row["setting"], row["column"])
            found = (differences or {}).get((other, key))
            line = {"task": key[0], "setting": key[1], "column": key[2], "A": base, "B": other}
            if found is None or isinstance(found, str):
                line.update(a=row[base], b=row[other], difference=row[other] - row[base],
                            note=found or default_note or "no paired comparison")
            else:
                line.update(a=found.a, b=found.b, difference=found.difference, ci_low=found.ci_low,
                            ci_high=found.ci_high, p_value=found.p_value, p_adjusted=found.p_adjusted,
                            significant=found.significant, n_images=found.n, interval_covers=found.covers, note="")
            rows.append(line)
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)
