"""Which rows form one run, how runs are labelled, which run a table shows, and which head it scores.

A run is one `probes classify` or `probes segment` invocation. Rows of different runs are never
combined: a Table 14 row is one run's head for one probe, a Table 15 cell is one run. When several
runs share an encoder, the label says what differs: ` @448` for the input size (a size other than a
known version's native one, or sizes that differ between runs of one encoder), ` (run 2)` for a
rerun, numbered by date with the oldest as run 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from probes.encoders.versions import VERSIONS
from probes.results import PUBLISHED_HEAD, RANDOM_WEIGHTS_PROTOCOL, STANDARD_PROTOCOL, prediction_head_name

_TRUE = {"true", "1", "yes"}
# Which head a classification cell scores (the `head` column of Table 14).
HEAD_PUBLISHED = "published"   # the run's published head (lr 0.1 per 512, raw weights, final epoch)
HEAD_SELECTED = "selected"     # no published head: the head chosen on the held-out split of train
HEAD_SINGLE = "single"         # no published head, nothing marked selected, and only one head was trained


def encoder_base(row: Mapping) -> str:
    """An encoder's name in tables: its version, or for a user's own checkpoint its folder (or file) name."""
    version = str(row.get("encoder_version") or "")
    return version if version and version != "custom" else Path(str(row.get("encoder") or "")).name


def _random_weights_named(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of seeded random weights under `random:VERSION`, even those written before rows said so.

    A random-weights row then never sits under a version's name nor meets its published cells.
    """
    if not len(rows):
        return rows
    version = rows["encoder_version"].fillna("").astype(str)
    unnamed = (rows["protocol"] == RANDOM_WEIGHTS_PROTOCOL) & ~version.str.startswith(("random:", "timm:"))
    return rows.assign(encoder_version=version.where(~unnamed, "random:" + version))


def protocol_flag(row: Mapping) -> str:
    """'' for a row produced by the published protocol on whole test sets, else what differed."""
    subset = str(row.get("subset") or "").strip().lower() not in ("", "false", "0", "none", "no", "nan")
    parts = [] if row.get("protocol") == STANDARD_PROTOCOL else [str(row.get("protocol"))]
    return "+".join(parts + (["subset"] if subset else []))


def _size_text(size: float) -> str:
    return "" if pd.isna(size) else str(int(size))


def _size_suffixes(frame: pd.DataFrame, bases: pd.Series, size_column: str, native: bool) -> pd.Series:
    """' @SIZE' where the size is not a known version's native one, or where one encoder's runs differ in it."""
    differs = frame.groupby(bases)[size_column].transform("nunique") > 1
    suffixes = []
    for (_, row), base_differs in zip(frame.iterrows(), differs):
        size, version = row[size_column], row["encoder_version"]
        known = VERSIONS[version].image_size if native and version in VERSIONS else None
        show = not pd.isna(size) and (int(size) != known if known is not None else bool(base_differs))
        suffixes.append(f" @{_size_text(size)}" if show else "")
    return pd.Series(suffixes, index=frame.index, dtype=str)


def identify_classification_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """Add `run` (a unique key), `run_name` (run_id, or the date of an old run), `group` and `flag` to each row.

    Rows name their run (`run_id`). Older rows without one: a run is (file, encoder, version, size, date).
    A run_id written by two invocations (one cell twice, at two dates) is split by date, never merged.
    """
    rows = _random_weights_named(rows.copy())
    ids = rows["run_id"]
    fallback = ("old:" + rows["file"] + "|" + rows["encoder"] + "|" + rows["encoder_version"] + "|"
                + rows["image_size"].map(_size_text) + "|" + rows["date"])
    rows["run"] = ("id:" + ids).where(ids != "", fallback)
    cell = ["run", "probe", "layer", "head", "lr", "ema", "test_set"]
    repeated = rows[rows.duplicated(cell, keep=False)]
    for run in repeated["run"].unique():
        if rows.loc[rows["run"] == run, "date"].nunique() > 1:
            mask = rows["run"] == run
            rows.loc[mask, "run"] = run + "@" + rows.loc[mask, "date"]
    rows["run_name"] = ids.where(ids != "", rows["date"])
    bases = rows.apply(encoder_base, axis=1) if len(rows) else pd.Series(dtype=str)
    rows["group"] = bases + _size_suffixes(rows, bases, "image_size", native=True) if len(rows) else ""
    rows["flag"] = [protocol_flag(r) for r in rows.to_dict("records")] if len(rows) else ""
    return rows


def identify_segmentation_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """Add `run`, `run_name`, `group` and `flag`: every segmentation row is one run (encoder, dataset, mode).

    The size suffix is the crop, shown only where one encoder's runs differ in it.
    """
    rows = _random_weights_named(rows.copy())
    rows["run"] = rows["file"] + ":" + rows["line"].astype(str)
    rows["run_name"] = rows["run_id"].where(rows["run_id"] != "", rows["date"])
    bases = rows.apply(encoder_base, axis=1) if len(rows) else pd.Series(dtype=str)
    rows["group"] = bases + _size_suffixes(rows, bases, "crop_size", native=False) if len(rows) else ""
    rows["flag"] = [protocol_flag(r) for r in rows.to_dict("records")] if len(rows) else ""
    return rows


def number_runs(runs: pd.DataFrame, within: Sequence[str]) -> pd.Series:
    """Each run's label: its group alone, or 'group (run k)' when several runs share `within` (k by date)."""
    ordered = runs.sort_values(["date", "order"], kind="stable")
    number = ordered.groupby(list(within), sort=False).cumcount() + 1
    count = ordered.groupby(list(within), sort=False)["run"].transform("size")
    labels = ordered["group"].where(count == 1, ordered["group"] + " (run " + number.astype(str) + ")")
    return labels.reindex(runs.index)


def pick_defaults(runs: pd.DataFrame, within: Sequence[str]) -> pd.Series:
    """True for the run a table shows per `within` key: the latest complete run, else the latest."""
    ordered = runs.sort_values(["complete", "date", "order"], kind="stable")
    latest = ordered.groupby(list(within), sort=False).tail(1).index
    return pd.Series(runs.index.isin(latest), index=runs.index)


# A cell keeps its run's side file (`predictions`, relative to `file`'s folder) and its head's name in
# that file (`prediction_head`) for per-cell statistics.
CELL_COLUMNS = ["run", "probe", "test_set", "top1", "selected_top1", "max_over_epochs_top1", "head_used", "flag",
                "protocol_notes",
                "run_name", "group", "encoder_version", "image_size", "date", "order", "file", "predictions",
                "layer", "prediction_head"]
LAYER_COLUMNS = ["run", "run_name", "group", "layer", "num_layers", "test_set", "top1", "file", "predictions",
                 "prediction_head"]


def _head_names(rows: pd.DataFrame, published: pd.DataFrame) -> list[str]:
    """Side-file names of `rows`; a grid row with the published head's lr, weights and block is its twin."""
    def key(frame: pd.DataFrame) -> list[tuple]:
        return list(zip(frame["run"], frame["probe"], *(frame[c].astype(str) for c in ("lr", "ema", "layer"))))

    twins = set(key(published[published["head"] == PUBLISHED_HEAD]))
    return [prediction_head_name(p, lr, ema, layer, grid_twin=head != PUBLISHED_HEAD and k in twins)
            for p, lr, ema, layer, head, k in zip(rows["probe"], rows["lr"], rows["ema"], rows["layer"],
                                                  rows["head"], key(rows))]


def head_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, probe, test set): the head a table scores, beside the held-out-selected head's top-1.

    The published head when the run has one, else the selected one (flagged in `head_used`). Only the
    last block a probe reads counts: a per-layer sweep's other layers are for another plot.
    """
    if rows.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    rows = rows.assign(order=range(len(rows)),
                       is_selected=rows["selected"].str.strip().str.lower().isin(_TRUE))
    last = rows.groupby(["run", "probe"])["layer"].transform("max")
    rows = rows[rows["layer"].isna() | (rows["layer"] == last)]
    cells = []
    for _, group in rows.groupby(["run", "probe"], sort=False):
        published, selected = group[group["head"] == PUBLISHED_HEAD], group[group["is_selected"]]
        if not published.empty:
            used, kind = published, HEAD_PUBLISHED
        elif not selected.empty:
            used, kind = selected, HEAD_SELECTED
        elif len(group[["lr", "ema"]].drop_duplicates()) == 1:
            used, kind = group, HEAD_SINGLE
        else:
            continue  # several heads, none published or selected: which one to show is unknown
        used = used.drop_duplicates("test_set", keep="last")
        chosen = selected.drop_duplicates("test_set", keep="last").set_index("test_set")["top1"]
        cells.append(used.assign(head_used=kind, selected_top1=used["test_set"].map(chosen).astype(float),
                                 order=used["order"].min(), prediction_head=_head_names(used, published)))
    return pd.concat(cells)[CELL_COLUMNS] if cells else pd.DataFrame(columns=CELL_COLUMNS)


def layer_cells(rows: pd.DataFrame, probe: str = "linear") -> pd.DataFrame:
    """One row per (run, layer, test set): the held-out-selected `probe` head of every block a run probed.

    For runs with heads on more than one block (a per-layer sweep) only; `num_layers` is the run's
    highest block, the one its standard heads read. A layer without a selected head uses its only
    head when it trained just one, and is left out otherwise.
    """
    rows = rows[(rows["probe"] == probe) & rows["layer"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=LAYER_COLUMNS)
    rows = rows.assign(is_selected=rows["selected"].str.strip().str.lower().isin(_TRUE),
                       num_layers=rows.groupby("run")["layer"].transform("max"))
    rows = rows[rows.groupby("run")["layer"].transform("nunique") > 1]
    cells = []
    for _, group in rows.groupby(["run", "layer"], sort=False):
        selected = group[group["is_selected"]]
        if selected.empty and len(group[["lr", "ema"]].drop_duplicates()) == 1:
            selected = group
        if not selected.empty:
            cells.append(selected.drop_duplicates("test_set", keep="last"))
    if not cells:
        return pd.DataFrame(columns=LAYER_COLUMNS)
    found = pd.concat(cells)
    return found.assign(prediction_head=_head_names(found, rows))[LAYER_COLUMNS].reset_index(drop=True)
