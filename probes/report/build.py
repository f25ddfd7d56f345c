"""Assemble the whole report: read results, build tables, write files and plots, and an index."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
from matplotlib.figure import Figure

from probes.errors import ConfigError
from probes.io import write_text_atomic
from probes.report.evidence.measured import Skipped, load_results
from probes.report.evidence.per_image import SideFiles
from probes.report.evidence.replicas import seed_replicas, with_replicas
from probes.report.evidence.resample import Resampler, accuracy_samples, miou_samples
from probes.report.render import plots
from probes.report.render.formats import NO_RESULTS, to_markdown, write_table
from probes.report.stats import Bootstrap, Comparison
from probes.report.tables.class_change_tables import classification_changes, segmentation_changes, table_name
from probes.report.tables.columns import INTERVAL_COVERS
from probes.report.tables.intervals import (classification_cells, layer_cells_to_request, per_layer_table,
                                            segmentation_cells, with_classification_intervals,
                                            with_segmentation_intervals)
from probes.report.tables.layouts import (PAIR_COLUMNS, baseline_runs, baselines, classification_rows,
                                          classification_runs, classification_vs_published, compare_versions,
                                          comparison_display, comparison_names, difference_column, known_names,
                                          segmentation_rows, segmentation_runs, segmentation_vs_published, table14,
                                          table15, table15_other_runs, version_differences)
from probes.report.tables.published import load_published, published_table14, published_table15
from probes.report.tables.runs import head_cells, identify_classification_runs, identify_segmentation_runs, layer_cells
from probes.report.tables.version_tables import compare_names

DEMO_NOTE = ("**These are demo numbers** (tiny encoders trained for seconds, probed briefly on tiny data made "
             "from scikit-learn's bundled digits and photos): they exercise the real pipeline and are not "
             "comparable to the published ones.")
# --segmentation-metric: which result column Table 15 shows, and how the report names it.
SEGMENTATION_METRICS = {"final": ("mIoU", "final mIoU"), "best": ("best_mIoU", "best mIoU")}

TABLE14_NOTE = (
    "Each row is **one run's published head** (base lr 0.1 per 512 images, raw weights, final epoch: the head "
    "comparable with the paper) for one probe; Δ = attention-pooling avg − linear avg of the same run. `head` says "
    "which head a row shows: `selected` marks a run without a published head (older results, cached runs), whose "
    "row shows the head selected on the held-out split of train instead; `single`, a run that trained one head "
    "only. Rows of different runs are never combined: when runs share an encoder label, the latest complete run "
    "(both probes on all six sets) is shown here and the others under *Other runs*; a run missing a set shows — "
    "for it and no average.")
SEGMENTATION_NOTES = {
    "final": "Metric: **final evaluation** (`mIoU` after the last iteration; `--segmentation-metric best` shows the "
             "best evaluation over training instead).",
    "best": "Metric: **best evaluation over training** (`best_mIoU`): the best of the periodic evaluations on the "
            "validation set, which is also the test set, so this is test-set selection; runs that did not record "
            "it show —. (`--segmentation-metric final` shows the final evaluation.)",
}
TABLE15_NOTE = ("Each cell is one run: per encoder × dataset × mode, the latest run with a result (older runs are "
                "listed under *Other runs*). Averages are over ADE20K and COCO-Stuff; Δ1 = head tuning − linear "
                "probing, Δ2 = full tuning − linear probing, on the averages.")
PAIRS_NOTE = (
    "Only the rows Tables 14 and 15 show are compared. Classification: `measured` is the head Table 14 shows (see "
    "`head`), `measured_selected` the head selected on the held-out split of train, `max_over_epochs`¹ the shown "
    "head's best epoch. Segmentation: the metric named in `head`; per-dataset cells, averages and Δ1/Δ2, the "
    "published averages and deltas as the paper printed them (two printed deltas differ by 0.1 from its rounded "
    "cells), the measured ones computed from our own cells.\n\n"
    "Which number meets which: the paper's Table 15 cells come from runs that evaluated every 1,000 iterations and "
    "kept the best checkpoint (`save_best`), i.e. the best evaluation over training, picked on the validation set "
    "that is also the test set. With the default `final mIoU` a pair is our final evaluation against their best "
    "one (ours is not selected on the test set, theirs is); `--segmentation-metric best` compares like with like. "
    "Classification: `measured` is the final epoch, `max_over_epochs` the figure the official loop logs.\n\n"
    "¹ `max_over_epochs`: the highest per-epoch top-1 on the test set itself, as the official training loop logs "
    "it. That is **test-set selection** (an optimistic number), shown only to compare with logs of that loop.")


NO_PUBLISHED_COUNTERPART = (
    "_(results, but none with a published counterpart: the paper reports the published InternViT versions only, "
    "classification at each version's own input size)_")
COMPARISON_NOTE_OFF = ("B − A of the values the tables show; intervals, p-values and significance marks are off "
                       "(`--bootstrap 0`).")


@dataclass
class Report:
    """What was written, the headline table for the terminal, the skipped rows, and the tables themselves."""

    index: Path
    headline: str
    tables: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    interval_seconds: float = 0.0  # reading side files, resampling, comparing, per-class changes
    side_file_reads: int = 0       # side files read from disk (each at most once)


def _flag_note(frames: Sequence[pd.DataFrame]) -> str:
    flagged = sorted({p for f in frames if "protocol" in f for p in f["protocol"].dropna() if p})
    if not flagged:
        return ""
    return ("Rows with a non-empty `protocol` were not produced by the published recipe on whole test sets "
            f"({', '.join(flagged)}); compare them with published numbers with care.")


def _rows(n: int, noun: str = "row") -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _skipped_section(skipped: Sequence[Skipped]) -> list[str]:
    if not skipped:
        return ["## Skipped rows", "", "None: every row of every result CSV was read.", ""]
    return ["## Skipped rows", "",
            f"{_rows(len(skipped))} skipped (not in any table; `probes report --strict` fails on them):", "",
            *(f"- `{s}`" for s in skipped), ""]


def skipped_summary(skipped: Sequence[Skipped]) -> str:
    """The terminal's lines about skipped rows ('' when none)."""
    if not skipped:
        return ""
    return "\n".join([f"skipped {_rows(len(skipped), 'malformed result row')} (not in the report):",
                      *(f"  {s}" for s in skipped)])


SEEDS_ONLY_TEST = ("Every interval here covers **test sampling only** (which test images were drawn), not the "
                   "training randomness of the {what}: {how}")
SEEDS_SOME = ("`interval_covers` says what each row's intervals resample. `test images + training seeds (K=…)`: the "
              "{what} were trained K times with different seeds ({how}), and each resample draws the images with "
              "replacement *and* one of the K replicas (the same replica for every set a model scored), so the "
              "interval covers both sources; the value stays the row's own run (replica 0). `test images`: "
              "**test sampling only**, not training randomness.")
SEED_SOURCES = {
    "classification": ("probe heads", "no run here has training replicas (`probes classify --seeds K` trains K "
                                      "per head on one backbone pass)",
                       "`probes classify --seeds K`: other initialisation, and data order when cached"),
    "segmentation": ("runs", "no run here is repeated with another `randomness.seed` (rows of such repeats, with "
                             "their plans, are combined as training replicas)",
                     "runs of one configuration that differ only in `randomness.seed`"),
}


def _intervals_note(bootstrap: Optional[Bootstrap], task: str = "classification",
                    covered: Sequence[str] = ()) -> str:
    if bootstrap is None:
        return "Intervals are off (`--bootstrap 0`)."
    what, none, how = SEED_SOURCES[task]
    seeds = (SEEDS_SOME.format(what=what, how=how) if any("training seeds" in c for c in covered)
             else SEEDS_ONLY_TEST.format(what=what, how=none) + ".")
    return (f"**±** is half the width of the 95% percentile-bootstrap interval over images ({bootstrap.n_resamples} "
            f"resamples, seed {bootstrap.seed}; written `[low, high]` where the interval is lopsided); averages and "
            "Δ are resampled with their cells. The resampling unit is the image: IN-1K and IN-ReaL score the same "
            "validation images, so one resample of those images drives both (ReaL over the images it labels). "
            f"{seeds} A value without an interval has no per-image predictions (its `note` says why). The CSV "
            "tables hold the bounds as `X ci_low` / `X ci_high`.")


def _covered(*frames: pd.DataFrame) -> list[str]:
    """Every `interval_covers` text the frames hold."""
    return [c for f in frames if INTERVAL_COVERS in f for c in f[INTERVAL_COVERS].dropna() if c]


COMPARISON_NOTE = (
    "B − A on the images both scored, with its paired-bootstrap 95% interval (both resampled with the same "
    "images) and a two-sided p-value (`p_value`). The heads of Table 14 and the cells of Table 15; an encoder "
    "label stands for the run its table shows. **Multiplicity:** each B − A column is one family, every cell, "
    "average, Δ, Δ1 and Δ2 of it that has a p-value ({families}); `p_adjusted` is its p-value adjusted by Holm's "
    "step-down method over that family, and a trailing `*` marks p_adjusted < 0.05 (the family-wise error of the "
    "marks is at most 5%). The intervals are per cell, not adjusted: an interval that excludes 0 without a `*` is "
    "a difference that does not survive the adjustment. `version_differences` lists the same in long form "
    "(`difference, ci_low, ci_high, p_value, p_adjusted, significant`). `interval_covers` says what a row's "
    "paired intervals and p-values resample: `test images` is test sampling only; with training replicas "
    "(`training seeds (K=…)`) each resample also draws one replica of each model, and the p-value then tests the "
    "mean difference over replicas (the shown difference stays replica 0's).")
FLOOR_NOTE = (
    " With {resamples} resamples the smallest p-value is 1/{r1} and Holm multiplies it by up to {m}: no cell of "
    "{which} can reach p_adjusted < 0.05 (use `--bootstrap {need}` or more).")


def _comparison_note(found: dict, names: Sequence[str], bootstrap: Optional[Bootstrap]) -> str:
    """The comparison's note with each family's size, and a warning where the resamples are too few to mark."""
    sizes = {other: sum(1 for (o, _), c in found.items() if o == other and isinstance(c, Comparison))
             for other in names[1:]}
    families = ", ".join(f"{difference_column(names[0], o)}: {m} cell{'' if m == 1 else 's'}" for o, m in sizes.items())
    note = COMPARISON_NOTE.format(families=families)
    if bootstrap is not None:
        # Holm's first step compares m * p_min with 0.05; p_min = 1 / (R + 1).
        short = [o for o, m in sizes.items() if m and m / (bootstrap.n_resamples + 1) >= 0.05]
        if short:
            m = max(sizes[o] for o in short)
            note += FLOOR_NOTE.format(resamples=bootstrap.n_resamples, r1=bootstrap.n_resamples + 1, m=m,
                                      which=", ".join(difference_column(names[0], o) for o in short),
                                      need=int(m / 0.05))
    return note


CLASS_CHANGES_NOTE = (
    "The classes with the largest gains and losses of {b} against {a} (top {k} each): classification per probe "
    "and test set (per true class top-1; IN-ReaL left out, its images carry label sets), segmentation per mode "
    "and dataset (per-class IoU). A class rests on few images (50 per class on IN-1K): a single class's change "
    "says where to look, not that it is real.")
COLUMN_DIGITS = {"depth": 2}  # relative depth reads in hundredths; every other number in tenths
PER_LAYER_NOTE = (
    "The held-out-selected linear head on each block a run probed (block counted from 1; `depth` = block / the "
    "run's last block), with 95% bootstrap intervals where side files exist.")


def _class_changes(names: Sequence[str], runs14: pd.DataFrame, seg_runs: pd.DataFrame, cells: dict,
                   segmentation: dict, side_files: SideFiles, k: int
                   ) -> tuple[dict[str, pd.DataFrame], dict[str, Figure], list[str], list[str]]:
    """(tables, figures, report lines, notes) of per-class changes for every other name against the first."""
    base, frames, figures, lines, notes = names[0], {}, {}, [], []
    for other in names[1:]:
        found = {"classification": classification_changes(classification_rows(runs14, base),
                                                          classification_rows(runs14, other), cells, side_files, k),
                 "segmentation": segmentation_changes(segmentation_rows(seg_runs, base),
                                                      segmentation_rows(seg_runs, other), segmentation, side_files, k)}
        for task, (table, missing) in found.items():
            notes += [f"{other} vs {base}, {task} {note}" for note in missing]
            if table.empty:
                continue
            name = table_name(task, base, other)
            frames[name] = table
            # The figure: IN-1K per probe for classification (every set is in the table), every mode x dataset.
            sets = ["IN-1K"] if task == "classification" and "IN-1K" in set(table["set"]) else None
            figures[name] = plots.class_changes(table, f"{other} − {base}: largest per-class changes ({task})", sets)
            lines.append(f"- {task}, {other} − {base}: [`{name}`](tables/{name}.md) "
                         f"([csv](tables/{name}.csv)), plot `plots/{name}.png`")
    return frames, figures, lines, notes


def build_report(results_dir: Path, out_dir: Path, reference_dir: Optional[Path] = None,
                 formats: set[str] = frozenset({"md", "csv"}), compare: Optional[Sequence[str]] = None,
                 segmentation_metric: str = "final", bootstrap: int = 1000, seed: int = 0,
                 top_classes: int = 10, plan: Optional[Path] = None) -> Report:
    """Write every table (md/csv/tex), the plots and `report.md` into `out_dir`.

    ``bootstrap`` resamples per interval (0: no intervals), ``seed`` their seed; ``top_classes`` how many
    classes per direction the per-class changes of an explicit ``compare`` list; ``plan`` a campaign plan
    (default: RESULTS/plan.json when there) whose runs without rows are listed as missing.
    """
    if segmentation_metric not in SEGMENTATION_METRICS:
        raise ConfigError(f"--segmentation-metric {segmentation_metric} is not one of final, best")
    if bootstrap < 0 or seed < 0 or top_classes < 1:
        raise ConfigError(f"--bootstrap {bootstrap} and --seed {seed} must be >= 0 and --top-classes {top_classes} "
                          ">= 1")
    metric_column, metric_name = SEGMENTATION_METRICS[segmentation_metric]
    out_dir = Path(out_dir)
    results = load_results(results_dir, exclude=out_dir)
    pub14, pub15 = load_published(reference_dir)
    boot = Bootstrap(n_resamples=bootstrap, seed=seed) if bootstrap else None
    resampler = Resampler(boot) if boot else None
    side_files = SideFiles()
    started = time.perf_counter()

    identified = identify_classification_runs(results.classification)
    cells, layers = head_cells(identified), layer_cells(identified)
    cell_requests = classification_cells(cells)
    wanted = {**cell_requests, **layer_cells_to_request(layers)}
    estimates = accuracy_samples(wanted, side_files, resampler) if resampler else {}
    runs14 = with_classification_intervals(classification_runs(cells), estimates)
    runs_baselines = with_classification_intervals(baseline_runs(cells), estimates)
    seg_runs = segmentation_runs(identify_segmentation_runs(results.segmentation), metric_column)
    # Only the runs Table 15 shows get intervals (and enter comparisons); older reruns are listed bare.
    seg_requests = segmentation_cells(seg_runs[seg_runs["default"].astype(bool)] if len(seg_runs) else seg_runs,
                                      metric_column)
    # Runs repeating a shown run's configuration with another randomness.seed: its training replicas.
    seg_requests = with_replicas(seg_requests, seed_replicas(seg_runs))
    t15 = with_segmentation_intervals(table15(seg_runs), seg_runs,
                                      miou_samples(seg_requests, side_files, resampler) if resampler else {})
    t14, t14_others = table14(runs14), table14(runs14, default=False)
    t15_others, published15 = table15_other_runs(seg_runs), published_table15(pub15)
    pairs = [frame for frame in (classification_vs_published(runs14, cells, pub14),
                                 segmentation_vs_published(t15, seg_runs, published15, metric_name)) if len(frame)]
    vs_published = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame(columns=PAIR_COLUMNS)
    labels = dict(zip(runs14["run_key"], runs14["encoder"]))
    per_layer = per_layer_table(layers, labels, estimates)

    names = list(compare) if compare else comparison_names(runs14, t15)
    known = known_names(runs14, t15)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"--compare names {', '.join(repeated)} more than once")
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(f"--compare: no results for {', '.join(missing)} (have: {', '.join(known) or 'none'})")
    comparison, differences_long, found = pd.DataFrame(), pd.DataFrame(), {}
    if len(names) >= 2:
        found = (compare_names(names, runs14, seg_runs, cell_requests, seg_requests, side_files, resampler)
                 if resampler else {})
        comparison = compare_versions(runs14, t15, names, found)
        differences_long = version_differences(comparison, names, found,
                                               default_note="" if boot else "intervals are off (--bootstrap 0)")
    change_frames, change_figures, change_lines, change_notes = (
        _class_changes(names, runs14, seg_runs, cell_requests, seg_requests, side_files, top_classes)
        if compare and len(names) >= 2 else ({}, {}, [], []))
    interval_seconds = time.perf_counter() - started

    # A campaign's planned runs without rows stay in the tables as "missing (state)" (probes.campaign).
    from probes.campaign.report_cells import with_planned_cells

    t14, t15, planned_note = with_planned_cells(results_dir, plan, t14, t15)
    frames = {"table14_classification": t14, "table15_segmentation": t15, "measured_vs_published": vs_published,
              "published_table14": published_table14(pub14), "published_table15": published15}
    optional = {"table14_other_runs": t14_others, "table15_other_runs": t15_others,
                "version_comparison": comparison, "version_differences": differences_long,
                "baselines_cached_features": baselines(runs_baselines), "per_layer": per_layer, **change_frames}
    frames.update({name: frame for name, frame in optional.items() if not frame.empty})
    no_pairs = (NO_PUBLISHED_COUNTERPART if vs_published.empty and (len(t14) or len(t15)) else NO_RESULTS)
    report = Report(index=out_dir / "report.md", headline="", skipped=list(results.skipped), frames=frames,
                    interval_seconds=interval_seconds, side_file_reads=side_files.reads)
    # Pages show the compared names as letters (A, B, ...) with their key; the CSV keeps the labels.
    displays: dict[str, tuple[pd.DataFrame, str]] = {}
    if not comparison.empty:
        shown, key = comparison_display(comparison, names)
        displays = {"version_comparison": (shown, key),
                    "version_differences": (differences_long.rename(columns={"difference": "B − A"}), "")}
    for name, frame in frames.items():
        display, key = displays.get(name, (None, ""))
        report.tables += write_table(frame, out_dir / "tables", name, set(formats), column_digits=COLUMN_DIGITS,
                                     empty=no_pairs if name == "measured_vs_published" else NO_RESULTS,
                                     display=display, key=key)
    built = plots.figures(t14, t15, vs_published, f"{metric_name} (%)", per_layer)
    report.plots = plots.save({**built, **change_figures}, out_dir / "plots")

    protocols = set(results.classification["protocol"]) | set(results.segmentation["protocol"])
    demo = "demo" in protocols
    classification_note = _intervals_note(boot, "classification", _covered(t14, runs_baselines, per_layer))
    segmentation_note = _intervals_note(boot, "segmentation", _covered(t15))
    sections = ["# Probe report", ""] + ([DEMO_NOTE, ""] if demo else [])
    note = _flag_note([t14, t15])
    sections += [note, ""] if note else []
    sections += [planned_note, ""] if planned_note else []
    # Both task sections: notes, then Measured, Other runs, Published, in that order.
    sections += ["## Classification (InternVL 2.5 Table 14 layout, top-1 %)", "", TABLE14_NOTE, "",
                 classification_note, "", "### Measured", "", to_markdown(t14)]
    if "table14_other_runs" in frames:
        sections += ["### Other runs", "", to_markdown(t14_others)]
    sections += ["### Published (InternVL 2.5 Table 14)", "", to_markdown(frames["published_table14"])]
    sections += [f"## Segmentation (InternVL 2.5 Table 15 layout, {metric_name} %)", "",
                 SEGMENTATION_NOTES[segmentation_metric], "", TABLE15_NOTE, "", segmentation_note, "",
                 "### Measured", "", to_markdown(t15)]
    if "table15_other_runs" in frames:
        sections += ["### Other runs", "", to_markdown(t15_others)]
    sections += ["### Published (InternVL 2.5 Table 15; averages and deltas as printed)", "", to_markdown(published15)]
    sections += ["## Measured beside published", "", PAIRS_NOTE, "", to_markdown(vs_published, empty=no_pairs)]
    if "per_layer" in frames:
        sections += ["## Linear probe per block (`per_layer`, top-1 %)", "", PER_LAYER_NOTE, "",
                     to_markdown(per_layer, column_digits=COLUMN_DIGITS)]
    if "baselines_cached_features" in frames:
        sections += ["## kNN and logistic-regression baselines (cached features, top-1 %)", "",
                     to_markdown(frames["baselines_cached_features"])]
    if not comparison.empty:
        sections += [f"## Version comparison (differences against {names[0]})", "",
                     _comparison_note(found, names, boot) if boot else COMPARISON_NOTE_OFF, "",
                     to_markdown(*displays["version_comparison"][:1], key=displays["version_comparison"][1])]
    if compare and len(names) >= 2:
        sections += ["## Where they differ (per-class changes)", "",
                     CLASS_CHANGES_NOTE.format(a=names[0], b=", ".join(names[1:]), k=top_classes), ""]
        sections += change_lines or ["No per-class changes: the compared runs have no per-image predictions."]
        sections += [""] + [f"- {n}" for n in change_notes] + ([""] if change_notes else [])
    sections += _skipped_section(results.skipped)
    sections += ["## Plots", ""]
    sections += [f"![{p.stem}](plots/{p.name})" for p in report.plots if p.suffix == ".png"]
    write_text_atomic(report.index, "\n".join(sections) + "\n")
    report.headline = "\n".join(s for s in (DEMO_NOTE if demo else "", to_markdown(t14), to_markdown(t15)) if s)
    return report
