"""The report's tables as DataFrames: Table 14 / 15 layouts, published beside measured, comparisons.

Averages are taken only over complete rows: a missing set leaves the average (and any delta built
on it) missing, never a mean of what happens to be there.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from probes.encoders.versions import VERSIONS
from probes.results import BASELINES, DATASETS, MODES, PROBES, TEST_SETS

PROBE_NAMES = {"linear": "linear", "attention_pooling": "attention pooling"}
DELTA = "Δ"


def _order(labels: Sequence[str]) -> list[str]:
    """Published versions first, in release order, then anything else alphabetically."""
    rank = {name: i for i, name in enumerate(VERSIONS)}
    return sorted(set(labels), key=lambda label: (rank.get(label.split(" @")[0], len(rank)), label))


def _protocols(rows: pd.DataFrame, keys: list[str]) -> pd.Series:
    """For each key, '' when every row is standard, else the distinct departures joined."""
    return rows.groupby(keys, sort=False)["flag"].agg(lambda flags: ", ".join(sorted({f for f in flags if f})))


def _per_set(selected: pd.DataFrame, probes: Sequence[str]) -> tuple[pd.DataFrame, pd.Series]:
    """(top-1 per (label, probe) x set with the average, protocol flags) for the given probes."""
    rows = selected[selected["probe"].isin(probes)] if not selected.empty else selected
    if rows.empty:
        return pd.DataFrame(), pd.Series(dtype=str)
    cells = rows.pivot_table(index=["label", "probe"], columns="test_set", values="top1", aggfunc="last")
    cells = cells.reindex(columns=list(TEST_SETS))
    cells["avg"] = cells[list(TEST_SETS)].mean(axis=1, skipna=False)
    return cells, _protocols(rows, ["label", "probe"])


def table14(selected: pd.DataFrame) -> pd.DataFrame:
    """Rows: encoder x probe; columns: the six sets, avg, Δ (attention pooling avg - linear avg)."""
    columns = ["encoder", "probe", *TEST_SETS, "avg", DELTA, "protocol"]
    cells, protocols = _per_set(selected, PROBES)  # kNN / logreg baselines have their own table
    rows = []
    for label in _order(cells.index.get_level_values(0)) if len(cells) else []:
        averages = {p: cells["avg"].get((label, p)) for p in PROBES}
        for probe in PROBES:
            if (label, probe) not in cells.index:
                continue
            row = {"encoder": label, "probe": PROBE_NAMES[probe], **cells.loc[(label, probe)].to_dict()}
            row[DELTA] = (averages["attention_pooling"] - averages["linear"]
                          if probe == "attention_pooling" and None not in averages.values() else float("nan"))
            row["protocol"] = protocols.get((label, probe), "")
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def baselines(selected: pd.DataFrame) -> pd.DataFrame:
    """kNN and logistic-regression rows (cached pooled features), one per encoder and baseline."""
    columns = ["encoder", "baseline", *TEST_SETS, "avg", "protocol"]
    cells, protocols = _per_set(selected, BASELINES)
    rows = [{"encoder": label, "baseline": probe, **cells.loc[(label, probe)].to_dict(),
             "protocol": protocols.get((label, probe), "")}
            for label in (_order(cells.index.get_level_values(0)) if len(cells) else [])
            for probe in BASELINES if (label, probe) in cells.index]
    return pd.DataFrame(rows, columns=columns)


def table15(segmentation: pd.DataFrame) -> pd.DataFrame:
    """Rows: encoders; columns: dataset x mode mIoU, per-mode averages, Δ1 = head - linear, Δ2 = full - linear."""
    cell_names = [f"{d} {m}" for d in DATASETS for m in MODES]
    columns = ["encoder", *cell_names, *(f"avg {m}" for m in MODES), "Δ1", "Δ2", "protocol"]
    if segmentation.empty:
        return pd.DataFrame(columns=columns)
    cells = segmentation.pivot_table(index="label", columns=["dataset", "mode"], values="mIoU", aggfunc="last")
    protocols = _protocols(segmentation, ["label"])
    rows = []
    for label in _order(cells.index):
        row = {"encoder": label}
        for dataset in DATASETS:
            for mode in MODES:
                row[f"{dataset} {mode}"] = cells.get((dataset, mode), pd.Series(dtype=float)).get(label, float("nan"))
        for mode in MODES:
            row[f"avg {mode}"] = pd.Series([row[f"{d} {mode}"] for d in DATASETS]).mean(skipna=False)
        row["Δ1"] = row["avg head"] - row["avg linear"]
        row["Δ2"] = row["avg full"] - row["avg linear"]
        row["protocol"] = protocols.get(label, "")
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def classification_vs_published(table: pd.DataFrame, selected: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Every measured Table 14 cell that has a published value, with the difference."""
    if table.empty:
        return pd.DataFrame(columns=["encoder", "probe", "column", "published", "measured", "difference", "protocol"])
    keys = selected.drop_duplicates("label").set_index("label")[["encoder_version", "image_size"]]
    long = table.melt(id_vars=["encoder", "probe", "protocol"], value_vars=[*TEST_SETS, "avg", DELTA],
                      var_name="column", value_name="measured")
    long = long.join(keys, on="encoder")
    pub = published.assign(
        probe=published["probe"].map({**PROBE_NAMES, "delta": "attention pooling"}),
        column=published["test_set"].where(published["probe"] != "delta", DELTA),
    ).rename(columns={"top1": "published"})[["encoder_version", "image_size", "probe", "column", "published"]]
    merged = long.merge(pub, on=["encoder_version", "image_size", "probe", "column"], how="inner")
    merged = merged[merged["measured"].notna() | merged["column"].isin(TEST_SETS)]
    merged["difference"] = merged["measured"] - merged["published"]
    return merged[["encoder", "probe", "column", "published", "measured", "difference", "protocol"]]


def segmentation_vs_published(table: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Measured per-mode averages and Δ1/Δ2 beside Table 15 (only averages were published)."""
    columns = ["encoder", "column", "published", "measured", "difference", "protocol"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    names = {"linear": "avg linear", "head": "avg head", "full": "avg full", "delta1": "Δ1", "delta2": "Δ2"}
    pub = published.assign(column=published["mode"].map(names)).rename(
        columns={"encoder_version": "encoder", "mIoU": "published"})[["encoder", "column", "published"]]
    long = table.melt(id_vars=["encoder", "protocol"], value_vars=list(names.values()),
                      var_name="column", value_name="measured")
    merged = long.merge(pub, on=["encoder", "column"], how="inner")
    merged["difference"] = merged["measured"] - merged["published"]
    return merged[columns]


def compare_versions(t14: pd.DataFrame, t15: pd.DataFrame, encoders: Sequence[str]) -> pd.DataFrame:
    """Two or more encoders side by side on every probe cell, with differences against the first."""
    base, others = encoders[0], list(encoders[1:])
    rows = []
    for _, r in t14.iterrows():
        rows.extend({"task": "classification", "setting": r["probe"], "column": c, "encoder": r["encoder"],
                     "value": r[c]} for c in (*TEST_SETS, "avg"))
    for _, r in t15.iterrows():
        rows.extend({"task": "segmentation", "setting": c.rsplit(" ", 1)[1], "column": c.rsplit(" ", 1)[0],
                     "encoder": r["encoder"], "value": r[c]}
                    for c in t15.columns if c.startswith(DATASETS) or c.startswith("avg "))
    wide: dict[tuple, dict] = {}
    for row in rows:
        key = (row["task"], row["setting"], row["column"])
        cells = wide.setdefault(key, {"task": key[0], "setting": key[1], "column": key[2]})
        if row["encoder"] in encoders:
            cells[row["encoder"]] = row["value"]
    table = pd.DataFrame(list(wide.values()), columns=["task", "setting", "column", *encoders])
    for other in others:
        table[f"{other} − {base}"] = table[other] - table[base]
    return table
