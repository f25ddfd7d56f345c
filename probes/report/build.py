"""Assemble the whole report: read results, build tables, write files and plots, and an index."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from probes.errors import ConfigError
from probes.report import plots
from probes.report.measured import latest_segmentation, load_results, selected_heads
from probes.report.published import load_published, published_table14, published_table15
from probes.report.render import to_markdown, write_atomically, write_table
from probes.report.tables import (baselines, classification_vs_published, compare_versions, segmentation_vs_published,
                                  table14, table15)

DEMO_NOTE = ("**These are demo numbers** (tiny encoders trained for seconds, probed briefly on tiny data made "
             "from scikit-learn's bundled digits and photos): they exercise the real pipeline and are not "
             "comparable to the published ones.")


@dataclass
class Report:
    """What was written, and the headline table for the terminal."""

    index: Path
    headline: str
    tables: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


def _flag_note(frames: Sequence[pd.DataFrame]) -> str:
    flagged = sorted({p for f in frames if "protocol" in f for p in f["protocol"].dropna() if p})
    if not flagged:
        return ""
    return ("Rows with a non-empty `protocol` were not produced by the published recipe on whole test sets "
            f"({', '.join(flagged)}); compare them with published numbers with care.")


def build_report(results_dir: Path, out_dir: Path, reference_dir: Optional[Path] = None,
                 formats: set[str] = frozenset({"md", "csv"}), compare: Optional[Sequence[str]] = None) -> Report:
    """Write every table (md/csv/tex), the plots and `report.md` into `out_dir`."""
    out_dir = Path(out_dir)
    classification, segmentation = load_results(results_dir, exclude=out_dir)
    pub14, pub15 = load_published(reference_dir)
    selected = selected_heads(classification)
    t14, t15 = table14(selected), table15(latest_segmentation(segmentation))
    vs_published = pd.concat([
        classification_vs_published(t14, selected, pub14).assign(task="classification"),
        segmentation_vs_published(t15, pub15).assign(task="segmentation", probe="")], ignore_index=True)
    vs_published = vs_published[["task", "encoder", "probe", "column", "published", "measured", "difference", "protocol"]]
    encoders = list(dict.fromkeys([*t14["encoder"], *t15["encoder"]]))
    chosen = list(compare) if compare else encoders
    missing = [e for e in chosen if e not in encoders]
    if missing:
        raise ConfigError(f"--compare: no results for {', '.join(missing)} (have: {', '.join(encoders) or 'none'})")
    comparison = compare_versions(t14, t15, chosen) if len(chosen) >= 2 else pd.DataFrame()

    tables_dir, plots_dir = out_dir / "tables", out_dir / "plots"
    report = Report(index=out_dir / "report.md", headline="")
    named = {"table14_classification": t14, "table15_segmentation": t15, "measured_vs_published": vs_published,
             "published_table14": published_table14(pub14), "published_table15": published_table15(pub15)}
    if not comparison.empty:
        named["version_comparison"] = comparison
    baseline_table = baselines(selected)
    if not baseline_table.empty:
        named["baselines_cached_features"] = baseline_table
    for name, frame in named.items():
        report.tables += write_table(frame, tables_dir, name, set(formats))
    if not t14.empty:
        report.plots += plots.top1_by_version(t14, plots_dir) + plots.delta_by_version(t14, plots_dir)
    if not t15.empty:
        report.plots += plots.miou_by_version(t15, plots_dir)
    if not vs_published.dropna(subset=["measured", "published"]).empty:
        report.plots += plots.measured_vs_published(vs_published, plots_dir)

    protocols = set(classification.get("protocol", [])) | set(segmentation.get("protocol", []))
    sections = ["# Probe report", ""]
    if "demo" in protocols:
        sections += [DEMO_NOTE, ""]
    note = _flag_note([t14, t15])
    if note:
        sections += [note, ""]
    sections += ["## Classification (InternVL 2.5 Table 14 layout, top-1 %)", "",
                 "Each row is the head selected on the held-out split of train; Δ = attention-pooling avg − linear avg.",
                 "", to_markdown(t14),
                 "## Segmentation (InternVL 2.5 Table 15 layout, mIoU %)", "",
                 "Δ1 = head tuning − linear probing, Δ2 = full tuning − linear probing (averages over the two datasets).",
                 "", to_markdown(t15),
                 "## Measured beside published", "", to_markdown(vs_published), ]
    if not baseline_table.empty:
        sections += ["## kNN and logistic-regression baselines (cached features, top-1 %)", "",
                     to_markdown(baseline_table)]
    if not comparison.empty:
        sections += [f"## Version comparison (differences against {chosen[0]})", "", to_markdown(comparison)]
    sections += ["## Published tables", "", to_markdown(named["published_table14"]),
                 to_markdown(named["published_table15"]), "## Plots", ""]
    sections += [f"![{p.stem}](plots/{p.name})" for p in report.plots if p.suffix == ".png"]
    write_atomically(report.index, "\n".join(sections) + "\n")
    report.headline = "\n".join(s for s in (DEMO_NOTE if "demo" in protocols else "", to_markdown(t14), to_markdown(t15)) if s)
    return report
