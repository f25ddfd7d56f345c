"""Figures (PNG + SVG) readable without the tables, with two encoders or twenty.

Legends sit outside the axes (one per figure, to the right), a missing cell is marked 'n/a' where
its bar would stand (a zero is a labelled bar of height zero), value labels are rotated and dropped
only when bars get too thin to hold them, and the width grows with the number of bars.
`figures` builds them (for tests and callers that want the objects), `save` writes and closes them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from probes.io import atomic_path  # noqa: E402
from probes.report.tables import DELTA, SET_COLUMNS, t15_column  # noqa: E402
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


def _grouped_bars(ax, groups: Sequence[str], series: Mapping[str, Sequence[float]], colours: Sequence,
                  ylabel: str, fig_width: float) -> None:
    """One bar per series in each group; NaN drawn as an 'n/a' mark, values written on the bars."""
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(groups))
    values = np.array([[np.nan if v is None else float(v) for v in vals] for vals in series.values()], dtype=float)
    top = np.nanmax(values) if np.isfinite(values).any() else 1.0
    bottom = min(0.0, np.nanmin(values)) if np.isfinite(values).any() else 0.0
    span = max(top - bottom, 1e-9)
    bar_inches = (fig_width - _LEGEND_INCHES - 1.0) * width / max(len(groups), 1)
    labelled = bar_inches >= _MIN_LABEL_INCHES
    fontsize = 7 if n <= 4 else 6
    for i, ((name, _), colour) in enumerate(zip(series.items(), colours)):
        positions = x + (i - (n - 1) / 2) * width
        ax.bar(positions, np.nan_to_num(values[i], nan=0.0), width, label=name, color=colour)
        for pos, value in zip(positions, values[i]):
            if np.isnan(value):  # a hatched empty slot, so a gap never reads as a bar of height zero
                ax.bar(pos, top - bottom, width, bottom=bottom, fill=False, hatch="///", edgecolor="lightgray",
                       linewidth=0)
                ax.text(pos, bottom + 0.02 * span, MISSING_MARK, rotation=90, ha="center", va="bottom",
                        fontsize=fontsize, color="dimgray", fontstyle="italic")
            elif labelled:
                ax.text(pos, max(value, 0.0) + 0.01 * span, f"{value:.1f}", rotation=90, ha="center", va="bottom",
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
        rows = t14[t14["probe"] == probe].set_index("encoder")
        series = {e: [rows.at[e, s] if e in rows.index else np.nan for s in SET_COLUMNS] for e in encoders}
        _grouped_bars(ax, SET_COLUMNS, series, colours, "top-1 accuracy (%)", fig.get_figwidth())
        ax.set_title(f"{probe} probe: top-1 per test set")
        ax.set_xlabel("test set")
    _legend(fig, axes[0])
    return fig


def delta_by_version(t14: pd.DataFrame) -> Figure:
    """Δ = attention-pooling average − linear average, one bar per encoder (named on the axis)."""
    encoders = list(dict.fromkeys(t14["encoder"]))
    deltas = t14[t14["probe"] == "attention pooling"].set_index("encoder")[DELTA]
    values = np.array([deltas.get(e, np.nan) for e in encoders], dtype=float)
    fig, ax = plt.subplots(figsize=(min(_MAX_WIDTH, max(5.0, 0.55 * len(encoders) + 2)), 4.5), layout="constrained")
    x = np.arange(len(encoders))
    ax.bar(x, np.nan_to_num(values, nan=0.0), color="tab:purple")
    span = max(np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0, 1e-9)
    for pos, value in zip(x, values):
        if np.isnan(value):
            ax.bar(pos, span, 0.8, fill=False, hatch="///", edgecolor="lightgray", linewidth=0)
            ax.text(pos, 0.02 * span, MISSING_MARK, ha="center", va="bottom", fontsize=7, color="dimgray",
                    fontstyle="italic")
        else:
            ax.text(pos, value + (0.02 if value >= 0 else -0.02) * span, f"{value:.1f}", ha="center",
                    va="bottom" if value >= 0 else "top", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.margins(y=0.15)
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
        _grouped_bars(ax, [MODE_NAMES[m] for m in MODES], series, colours, metric_label, fig.get_figwidth())
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
    for task, group in points.groupby("task"):
        ax.scatter(group["published"].astype(float), group["measured"].astype(float), label=task, alpha=0.8)
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


def figures(t14: pd.DataFrame, t15: pd.DataFrame, pairs: pd.DataFrame,
            metric_label: str = "mIoU (%)") -> dict[str, Figure]:
    """Every figure the tables can fill, by file name (open: close them, or pass them to `save`)."""
    built: dict[str, Figure] = {}
    if not t14.empty:
        built["classification_top1_by_version"] = top1_by_version(t14)
        built["classification_delta_by_version"] = delta_by_version(t14)
    if not t15.empty:
        built["segmentation_miou_by_version"] = miou_by_version(t15, metric_label)
    if not pairs.dropna(subset=["measured", "published"]).empty:
        built["measured_vs_published"] = measured_vs_published(pairs)
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
