"""Figures (PNG + SVG) readable without the tables: titles, axis labels with units, legends."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from probes.report.tables import DELTA  # noqa: E402
from probes.results import DATASETS, MODES, TEST_SETS  # noqa: E402


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    fig.tight_layout()
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def _grouped_bars(ax, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, groups)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def top1_by_version(t14: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Per-set top-1 of every encoder, one panel per probe."""
    probes = [p for p in ("linear", "attention pooling") if p in set(t14["probe"])]
    fig, axes = plt.subplots(1, len(probes), figsize=(7 * len(probes), 4.2), squeeze=False)
    sets = [*TEST_SETS, "avg"]
    for ax, probe in zip(axes[0], probes):
        rows = t14[t14["probe"] == probe]
        _grouped_bars(ax, sets, {r["encoder"]: [r[s] for s in sets] for _, r in rows.iterrows()}, "top-1 accuracy (%)")
        ax.set_title(f"{probe} probe: top-1 per test set")
        ax.set_xlabel("test set")
        ax.legend(fontsize=7)
    return _save(fig, out_dir, "classification_top1_by_version")


def delta_by_version(t14: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Δ = attention-pooling average − linear average, per encoder."""
    rows = t14[t14["probe"] == "attention pooling"]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(rows) + 2), 4))
    ax.bar(rows["encoder"], rows[DELTA], color="tab:purple")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title("Δ = attention pooling avg − linear avg (top-1)")
    ax.set_xlabel("encoder")
    ax.set_ylabel("Δ top-1 (percentage points)")
    ax.tick_params(axis="x", rotation=20, labelsize=8)
    return _save(fig, out_dir, "classification_delta_by_version")


def miou_by_version(t15: pd.DataFrame, out_dir: Path) -> list[Path]:
    """mIoU by mode, one panel per dataset, one bar per encoder."""
    fig, axes = plt.subplots(1, len(DATASETS), figsize=(6 * len(DATASETS), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], DATASETS):
        series = {r["encoder"]: [r[f"{dataset} {m}"] for m in MODES] for _, r in t15.iterrows()}
        _grouped_bars(ax, ["linear probing", "head tuning", "full tuning"], series, "mIoU (%)")
        ax.set_title(f"{dataset}: mIoU by mode")
        ax.set_xlabel("mode")
        ax.legend(fontsize=7)
    return _save(fig, out_dir, "segmentation_miou_by_version")


def measured_vs_published(pairs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Scatter of measured against published values, with the identity line."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    # Differences (Δ, Δ1, Δ2) live on another scale than accuracies: only absolute values are plotted.
    points = pairs.dropna(subset=["published", "measured"])
    points = points[~points["column"].astype(str).str.startswith("Δ")]
    for task, group in points.groupby("task"):
        ax.scatter(group["published"], group["measured"], label=task, alpha=0.8)
    values = pd.concat([points["published"], points["measured"]]) if len(points) else pd.Series([0.0, 100.0])
    low, high = float(values.min()) - 2, float(values.max()) + 2
    ax.plot([low, high], [low, high], color="gray", linestyle="--", label="measured = published")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_title("Measured vs published")
    ax.set_xlabel("published (top-1 % or mIoU %)")
    ax.set_ylabel("measured (top-1 % or mIoU %)")
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "measured_vs_published")
