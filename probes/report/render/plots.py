"""Figures (PNG + SVG) readable without the tables, with two encoders or twenty.

Legends sit outside the axes (one per figure, to the right), a missing cell is marked 'n/a' where
its bar would stand (a zero is a labelled bar of height zero), value labels are rotated and dropped
only when bars get too thin to hold them, and the width grows with the number of bars. A value with
a 95% bootstrap interval (the tables' `X ci_low` / `X ci_high` columns) gets an error bar.
`figures` builds them (for tests and callers that want the objects), `save` writes and closes them.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from probes.io import atomic_path  # noqa: E402
from probes.report.tables.columns import ci_columns  # noqa: E402
from probes.report.tables.layouts import DELTA, SET_COLUMNS, t15_column  # noqa: E402
from probes.results import DATASETS, MODES  # noqa: E402

MODE_NAMES = {"linear": "linear probing", "head": "head tuning", "full": "full tuning"}
_BAR_INCHES = 0.2      # width given to each bar, so labels fit as encoders are added
_LEGEND_INCHES = 2.6   # room for the legend to the right of the axes
_MAX_WIDTH = 40.0      # beyond this, bars get thinner instead of the figure wider
_MIN_LABEL_INCHES = 0.09  # a rotated 6-pt label needs about this much bar width
MISSING_MARK = "n/a"


def _colours(n: int) -> list:
    """Distinct colours for n series (tab10, then tab20, then a sampled continuous map)."""
    if n <= 10:
        return list(plt.get_cmap("tab10").colors[:n])
    if n <= 20:
        return list(plt.get_cmap("tab20").colors[:n])
    return [plt.get_cmap("viridis")(x) for x in np.linspace(0, 1, n)]


def _bar_figure(n_panels: int, n_bars: int) -> tuple[Figure, list]:
    width = min(_MAX_WIDTH, max(7.0, _BAR_INCHES * n_bars / 0.8 + 1.5)) + _LEGEND_INCHES
    height = max(3.8, width / 6)  # very wide figures get taller panels, so they stay viewable
    fig, axes = plt.subplots(n_panels, 1, figsize=(width, height * n_panels), squeeze=False, layout="constrained")
    return fig, list(axes[:, 0])


def _intervals(frame: pd.DataFrame, index, columns: Sequence[str]) -> list[tuple[float, float]]:
    """(low, high) of each column's value in one row (NaN where the table has no interval)."""
    out = []
    for column in columns:
        low, high = ci_columns(column)
        has = index is not None and low in frame.columns and high in frame.columns
        out.append((float(frame.at[index, low]), float(frame.at[index, high])) if has else (np.nan, np.nan))
    return out


def _error_bars(ax, positions, values, bounds, **style) -> None:
    """Error bars spanning exactly (low, high), at the positions where value and bounds are known.

    Drawn about the interval's middle, not the value: a bootstrap interval may exclude its value (small
    sets, scores near 0 or 100), and a bar from the value would then show a range that is not the interval.
    """
    bounds = np.array(bounds, dtype=float).reshape(-1, 2)
    values = np.asarray(values, dtype=float)
    keep = np.isfinite(values) & np.isfinite(bounds).all(axis=1)
    if keep.any():
        low, high = bounds[keep].min(axis=1), bounds[keep].max(axis=1)
        ax.errorbar(np.asarray(positions)[keep], (low + high) / 2, yerr=(high - low) / 2, fmt="none",
                    **{"ecolor": "black", "elinewidth": 0.8, "capsize": 2, **style})


_LABEL_GAP_POINTS = 3.0   # between a value label and the end of its bar or error bar, whatever the axes' size


def _value_label(ax, position: float, anchor: float, text: str, up: bool = True, **style) -> None:
    """A value label starting `_LABEL_GAP_POINTS` above (or below) `anchor`: the far end of bar and interval."""
    ax.annotate(text, (position, anchor), xytext=(0, _LABEL_GAP_POINTS if up else -_LABEL_GAP_POINTS),
                textcoords="offset points", ha="center", va="bottom" if up else "top", **style)


def _far_end(value: float, low: float, high: float, up: bool) -> float:
    """The end of a bar and its interval a label must clear: the highest (or lowest) of the three."""
    known = [v for v in (value, low, high) if np.isfinite(v)]
    return max(known) if up else min(known)


def _grouped_bars(ax, groups: Sequence[str], series: Mapping[str, Sequence[float]], colours: Sequence,
                  ylabel: str, fig_width: float,
                  intervals: Mapping[str, Sequence[tuple[float, float]]] | None = None) -> None:
    """One bar per series in each group; NaN drawn as an 'n/a' mark, values written on the bars (above
    their error bars, where `intervals` gives them)."""
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(groups))
    values = np.array([[np.nan if v is None else float(v) for v in vals] for vals in series.values()], dtype=float)
    bounds = np.array([intervals.get(name, [(np.nan, np.nan)] * len(groups)) if intervals else
                       [(np.nan, np.nan)] * len(groups) for name in series], dtype=float).reshape(n, len(groups), 2)
    shown = np.where(np.isfinite(values)[..., None], bounds, np.nan)
    label_at = np.fmax(values, np.fmax(shown[:, :, 0], shown[:, :, 1]))
    top = np.nanmax(label_at) if np.isfinite(values).any() else 1.0
    lowest = np.fmin(values, np.fmin(shown[:, :, 0], shown[:, :, 1]))
    bottom = min(0.0, np.nanmin(lowest)) if np.isfinite(values).any() else 0.0
    span = max(top - bottom, 1e-9)
    bar_inches = (fig_width - _LEGEND_INCHES - 1.0) * width / max(len(groups), 1)
    labelled = bar_inches >= _MIN_LABEL_INCHES
    fontsize = 7 if n <= 4 else 6
    for i, ((name, _), colour) in enumerate(zip(series.items(), colours)):
        positions = x + (i - (n - 1) / 2) * width
        ax.bar(positions, np.nan_to_num(values[i], nan=0.0), width, label=name, color=colour)
        _error_bars(ax, positions, values[i], bounds[i])
        for pos, value, (low, high) in zip(positions, values[i], bounds[i]):
            if np.isnan(value):  # a hatched empty slot, so a gap never reads as a bar of height zero
                ax.bar(pos, top - bottom, width, bottom=bottom, fill=False, hatch="///", edgecolor="lightgray",
                       linewidth=0)
                ax.text(pos, bottom + 0.02 * span, MISSING_MARK, rotation=90, ha="center", va="bottom",
                        fontsize=fontsize, color="dimgray", fontstyle="italic")
            elif labelled:   # above the bar, its interval and the zero line (bars of negative values hang below)
                _value_label(ax, pos, max(_far_end(value, low, high, up=True), 0.0), f"{value:.1f}", rotation=90,
                             fontsize=fontsize)
    ax.set_ylim(bottom, top + 0.18 * span)  # room for the rotated labels above the tallest bar
    ax.set_xticks(x, groups)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _legend(fig: Figure, ax) -> None:
    """The figure's one legend, outside the axes on the right (constrained layout makes room)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, ncols=1 if len(labels) <= 18 else 2,
               title="encoder", title_fontsize=8)


def top1_by_version(t14: pd.DataFrame) -> Figure:
    """Per-set top-1 of every encoder, one panel per probe, one colour per encoder."""
    probes = [p for p in ("linear", "attention pooling") if p in set(t14["probe"])]
    encoders = list(dict.fromkeys(t14["encoder"]))
    colours = _colours(len(encoders))
    fig, axes = _bar_figure(len(probes), len(SET_COLUMNS) * len(encoders))
    for ax, probe in zip(axes, probes):
        rows = t14[t14["probe"] == probe].drop_duplicates("encoder").set_index("encoder")
        series = {e: [rows.at[e, s] if e in rows.index else np.nan for s in SET_COLUMNS] for e in encoders}
        intervals = {e: _intervals(rows, e if e in rows.index else None, SET_COLUMNS) for e in encoders}
        _grouped_bars(ax, SET_COLUMNS, series, colours, "top-1 accuracy (%)", fig.get_figwidth(), intervals)
        ax.set_title(f"{probe} probe: top-1 per test set")
        ax.set_xlabel("test set")
    _legend(fig, axes[0])
    return fig


def delta_by_version(t14: pd.DataFrame) -> Figure:
    """Δ = attention-pooling average − linear average, one bar per encoder (named on the axis)."""
    encoders = list(dict.fromkeys(t14["encoder"]))
    rows = t14[t14["probe"] == "attention pooling"].drop_duplicates("encoder").set_index("encoder")
    values = np.array([rows.at[e, DELTA] if e in rows.index else np.nan for e in encoders], dtype=float)
    bounds = np.array([_intervals(rows, e if e in rows.index else None, [DELTA])[0] for e in encoders], dtype=float)
    fig, ax = plt.subplots(figsize=(min(_MAX_WIDTH, max(5.0, 0.55 * len(encoders) + 2)), 4.5), layout="constrained")
    x = np.arange(len(encoders))
    ax.bar(x, np.nan_to_num(values, nan=0.0), color="tab:purple")
    _error_bars(ax, x, values, bounds)
    span = max(np.nanmax(np.abs(np.concatenate([values, bounds.ravel()]))) if np.isfinite(values).any() else 1.0,
               1e-9)
    for pos, value, (low, high) in zip(x, values, bounds):
        if np.isnan(value):
            ax.bar(pos, span, 0.8, fill=False, hatch="///", edgecolor="lightgray", linewidth=0)
            ax.text(pos, 0.02 * span, MISSING_MARK, ha="center", va="bottom", fontsize=7, color="dimgray",
                    fontstyle="italic")
        else:
            _value_label(ax, pos, _far_end(value, low, high, up=value >= 0), f"{value:.1f}", up=value >= 0,
                         fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.margins(y=0.2)
    ax.set_xticks(x, encoders, rotation=35, ha="right", fontsize=8)
    ax.set_title("Δ = attention pooling avg − linear avg (top-1)")
    ax.set_xlabel("encoder")
    ax.set_ylabel("Δ top-1 (percentage points)")
    return fig


def miou_by_version(t15: pd.DataFrame, metric_label: str = "mIoU (%)") -> Figure:
    """mIoU by mode, one panel per dataset, one bar per encoder."""
    encoders = list(t15["encoder"])
    colours = _colours(len(encoders))
    fig, axes = _bar_figure(len(DATASETS), len(MODES) * len(encoders))
    rows = t15.set_index("encoder")
    for ax, dataset in zip(axes, DATASETS):
        series = {e: [rows.at[e, t15_column(dataset, m)] for m in MODES] for e in encoders}
        intervals = {e: _intervals(rows, e, [t15_column(dataset, m) for m in MODES]) for e in encoders}
        _grouped_bars(ax, [MODE_NAMES[m] for m in MODES], series, colours, metric_label, fig.get_figwidth(),
                      intervals)
        ax.set_title(f"{dataset}: {metric_label} by mode")
        ax.set_xlabel("mode")
    _legend(fig, axes[0])
    return fig


def measured_vs_published(pairs: pd.DataFrame) -> Figure:
    """Scatter of measured against published values, with the identity line."""
    fig, ax = plt.subplots(figsize=(5.5 + _LEGEND_INCHES, 5.5), layout="constrained")
    # Differences (Δ, Δ1, Δ2) live on another scale than accuracies: only absolute values are plotted.
    points = pairs.dropna(subset=["published", "measured"])
    points = points[~points["column"].astype(str).str.startswith("Δ")]
    low_column, high_column = ci_columns("measured")
    for task, group in points.groupby("task"):
        ax.scatter(group["published"].astype(float), group["measured"].astype(float), label=task, alpha=0.8)
        if low_column in group and high_column in group:
            _error_bars(ax, group["published"].astype(float), group["measured"].astype(float),
                        group[[low_column, high_column]].astype(float).to_numpy(), ecolor="gray", capsize=0)
    values = pd.concat([points["published"], points["measured"]]).astype(float) if len(points) \
        else pd.Series([0.0, 100.0])
    low, high = float(values.min()) - 2, float(values.max()) + 2
    ax.plot([low, high], [low, high], color="gray", linestyle="--", label="measured = published")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_title("Measured vs published")
    ax.set_xlabel("published (top-1 % or mIoU %)")
    ax.set_ylabel("measured (top-1 % or mIoU %)")
    fig.legend(loc="outside right upper", fontsize=8)
    return fig


def per_layer(table: pd.DataFrame) -> Figure:
    """Top-1 of the held-out-selected linear head at every probed block, one line per run (per_layer table).

    x is the block number when every run has the same depth, else the relative depth (block / the
    run's last block), so encoders of 24 and 45 blocks share one axis. Panels: IN-1K, and the average
    over the six sets where some run has it at two or more blocks.
    """
    panels = ["IN-1K"] + (["avg"] if (table.dropna(subset=["avg"]).groupby("encoder").size() > 1).any() else [])
    same_depth = table["num_layers"].nunique() == 1
    x_column, x_label = ("layer", "block (counted from 1)") if same_depth else \
        ("depth", "relative depth (block / the run's last block)")
    encoders = list(dict.fromkeys(table["encoder"]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.0 + _LEGEND_INCHES, 3.8 * len(panels)), squeeze=False,
                             layout="constrained")
    for ax, column in zip(axes[:, 0], panels):
        for encoder, colour in zip(encoders, _colours(len(encoders))):
            rows = table[table["encoder"] == encoder].sort_values("layer")
            x, y = rows[x_column].astype(float).to_numpy(), rows[column].astype(float).to_numpy()
            ax.plot(x, y, marker="o", markersize=4, color=colour, label=encoder)
            low, high = ci_columns(column)
            _error_bars(ax, x, y, rows[[low, high]].astype(float).to_numpy(), ecolor=colour, capsize=3)
        ax.set_title(f"linear probe on each block: top-1 on {column if column != 'avg' else 'the six sets (avg)'}")
        ax.set_xlabel(x_label)
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(alpha=0.3)
    _legend(fig, axes[0, 0])
    return fig


_CHANGE_BAR_INCHES = 0.24  # height per class bar, so names never overlap as k grows
_NAME_CHAR_INCHES = 0.075  # width of one character of an 8-pt class name


def class_changes(table: pd.DataFrame, title: str, sets: Sequence[str] | None = None) -> Figure:
    """Largest per-class gains (right, green) and losses (left, red) of B against A: one panel per setting
    (probe or mode, rows) and set (columns), from a class-changes table; the height grows with k.

    Bars are labelled with the change and A → B; class names sit on the y axis, never clipped (the
    width grows with the longest name).
    """
    shown = table if sets is None else table[table["set"].isin(sets)]
    settings, columns = list(dict.fromkeys(shown["setting"])), list(dict.fromkeys(shown["set"]))
    counts = shown.groupby(["setting", "set"]).size()
    heights = [_CHANGE_BAR_INCHES * max([counts.get((r, c), 0) for c in columns] + [1]) + 1.3 for r in settings]
    longest = max([len(str(n)) for n in shown["class_name"]] + [8])
    width = (3.8 + _NAME_CHAR_INCHES * longest) * max(len(columns), 1)
    fig = plt.figure(figsize=(min(width, _MAX_WIDTH), sum(heights) + 0.7), layout="constrained")
    axes = fig.subplots(max(len(settings), 1), max(len(columns), 1), squeeze=False,
                        gridspec_kw={"height_ratios": heights or [1]})
    for r, setting in enumerate(settings):
        for c, name in enumerate(columns):
            ax = axes[r, c]
            rows = shown[(shown["setting"] == setting) & (shown["set"] == name)]
            ordered = pd.concat([rows[rows["direction"] == "gain"].sort_values("rank"),
                                 rows[rows["direction"] == "loss"].sort_values("rank", ascending=False)])
            if ordered.empty:
                ax.axis("off")
                ax.set_title(f"{setting} · {name}: no class changed", fontsize=9)
                continue
            y = np.arange(len(ordered))
            change = ordered["change"].astype(float).to_numpy()
            ax.barh(y, change, color=np.where(change > 0, "tab:green", "tab:red"), height=0.7)
            reach = max(np.abs(change).max(), 1e-9)
            for pos, (value, a, b) in enumerate(zip(change, ordered["a"], ordered["b"])):
                ax.text(value + (0.02 if value > 0 else -0.02) * reach, pos, f"{value:+.1f} ({a:.0f}→{b:.0f})",
                        va="center", ha="left" if value > 0 else "right", fontsize=7)
            ax.set_xlim(-1.6 * reach if (change < 0).any() else -0.1 * reach,
                        1.6 * reach if (change > 0).any() else 0.1 * reach)
            ax.set_yticks(y, [str(n) for n in ordered["class_name"]], fontsize=8)
            ax.set_ylim(len(ordered) - 0.5, -0.5)  # first row at the top
            ax.axvline(0, color="black", linewidth=0.8)
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(f"{setting} · {name}", fontsize=9)
            ax.set_xlabel("change (points)", fontsize=8)
    # Wrapped to the figure's width (about 11 characters of a 10-pt title per inch), so it is never cut.
    fig.suptitle(textwrap.fill(title, max(20, int(fig.get_figwidth() * 11))), fontsize=10)
    return fig


def figures(t14: pd.DataFrame, t15: pd.DataFrame, pairs: pd.DataFrame,
            metric_label: str = "mIoU (%)", layers: pd.DataFrame | None = None) -> dict[str, Figure]:
    """Every figure the tables can fill, by file name (open: close them, or pass them to `save`)."""
    built: dict[str, Figure] = {}
    if not t14.empty:
        built["classification_top1_by_version"] = top1_by_version(t14)
        built["classification_delta_by_version"] = delta_by_version(t14)
    if not t15.empty:
        built["segmentation_miou_by_version"] = miou_by_version(t15, metric_label)
    if not pairs.dropna(subset=["measured", "published"]).empty:
        built["measured_vs_published"] = measured_vs_published(pairs)
    if layers is not None and not layers.empty:
        built["classification_top1_per_layer"] = per_layer(layers)
    return built


def save(built: Mapping[str, Figure], out_dir: Path) -> list[Path]:
    """Write each figure as PNG and SVG (atomically), close it, and return the paths."""
    out_dir = Path(out_dir)
    paths = []
    for name, fig in built.items():
        for suffix in ("png", "svg"):
            with atomic_path(out_dir / f"{name}.{suffix}") as tmp:
                fig.savefig(tmp, format=suffix, dpi=120)
            paths.append(out_dir / f"{name}.{suffix}")
        plt.close(fig)
    return paths
