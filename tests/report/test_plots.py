"""Plots stay readable with many encoders: legends off the axes, missing cells marked, size grows."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.path import Path as MplPath

from probes.report.render import plots
from probes.report.tables.columns import ci_columns
from probes.report.tables.layouts import DELTA, SET_COLUMNS
from probes.report.build import build_report
from probes.results import CLASSIFICATION_COLUMNS, DATASETS, MODES, SEGMENTATION_COLUMNS

from .test_report import ATTN, LINEAR, V224, cls_rows, seg_row, write_csv


def _results(folder, n_encoders):
    """n encoders with both probes and all six segmentation cells; encoder 0 is a published version (for the
    scatter), encoder 3 lacks attention pooling and IN-A, encoder 4 scores 0.0 on IN-1K (a zero, not a gap)."""
    cls, seg = [], []
    for i in range(n_encoders):
        name = V224 if i == 0 else f"timm:vit_model_{i}"
        linear = {s: v - i for s, v in LINEAR.items() if not (i == 3 and s == "IN-A")}
        if i == 4:
            linear["IN-1K"] = 0.0
        common = dict(run_id=f"run{i}", date="2026-11-01", head="published")
        cls += cls_rows(name, name, 224, "linear", linear, **common)
        if i != 3:
            cls += cls_rows(name, name, 224, "attention_pooling", ATTN, **common)
        seg += [seg_row(name, d, m, 30.0 + i + 5 * k, encoder=name, run_id=f"seg{i}{d}{m}")
                for k, (d, m) in enumerate((d, m) for d in DATASETS for m in MODES)]
    write_csv(folder / "classification_results.csv", CLASSIFICATION_COLUMNS, cls)
    write_csv(folder / "segmentation.csv", SEGMENTATION_COLUMNS, seg)
    return folder


def _figures(folder, n_encoders):
    """Build (and write) the whole report, then re-open its figures from the report's own tables."""
    report = build_report(_results(folder / "results", n_encoders), folder / "report")
    assert len(report.plots) == 2 * 4  # every plot written, as PNG and SVG
    return plots.figures(report.frames["table14_classification"], report.frames["table15_segmentation"],
                         report.frames["measured_vs_published"])


@pytest.fixture(scope="module")
def ten(tmp_path_factory):
    figures = _figures(tmp_path_factory.mktemp("ten"), 10)
    yield figures
    for figure in figures.values():
        plt.close(figure)


def test_every_plot_of_ten_encoders_keeps_its_legend_off_every_axes(ten):
    assert set(ten) == {"classification_top1_by_version", "classification_delta_by_version",
                        "segmentation_miou_by_version", "measured_vs_published"}
    checked = 0
    for name, figure in ten.items():
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        legends = [*figure.legends, *(ax.get_legend() for ax in figure.axes if ax.get_legend() is not None)]
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in figure.axes:
                assert not box.overlaps(ax.get_window_extent(renderer)), f"{name}: legend over an axes"
            checked += 1
    assert checked >= 3  # top-1, mIoU and the scatter have legends; the Δ plot names encoders on its axis


def test_missing_cells_are_marked_and_a_zero_is_labelled(ten):
    texts = [t.get_text() for ax in ten["classification_top1_by_version"].axes for t in ax.texts]
    assert "n/a" in texts  # encoder 3 has no IN-A, and no attention-pooling row at all
    assert "0.0" in texts  # encoder 4's IN-1K is a bar of height zero, labelled
    delta_texts = [t.get_text() for ax in ten["classification_delta_by_version"].axes for t in ax.texts]
    assert "n/a" in delta_texts  # encoder 3 has no Δ


def test_figures_grow_with_the_number_of_encoders(tmp_path, ten):
    two = _figures(tmp_path, 2)
    for name in ("classification_top1_by_version", "segmentation_miou_by_version"):
        assert ten[name].get_figwidth() > two[name].get_figwidth()
    for figure in two.values():
        plt.close(figure)


def _changes(k, settings=("linear", "attention pooling"), sets=("IN-1K",)):
    """A class-changes table with k gains and k losses per panel, the longest ImageNet-style names."""
    rows = []
    for setting in settings:
        for name in sets:
            for direction, sign in (("gain", 1), ("loss", -1)):
                for rank in range(1, k + 1):
                    rows.append(dict(setting=setting, set=name, direction=direction, rank=rank, class_index=rank,
                                     class_name=f"German short-haired pointer variant {rank}", a=50.0,
                                     b=50.0 + sign * (20 - rank), change=sign * (20.0 - rank), n=50))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("sets", [("IN-1K",), ("ADE20K", "COCO-Stuff")])
def test_class_change_plot_keeps_every_class_name_and_the_title_inside_the_figure(sets):
    title = "InternViT-6B-448px-V2_5 (run 2) − InternViT-6B-448px-V1-5 @224: largest per-class changes (segmentation)"
    figure = plots.class_changes(_changes(15, sets=sets), title)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    whole = figure.bbox

    def inside(text):
        box = text.get_window_extent(renderer)
        return whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1

    assert inside(figure._suptitle)
    names = 0
    for ax in figure.axes:
        for label in ax.get_yticklabels():
            box = label.get_window_extent(renderer)
            assert inside(label), label.get_text()
            for other in figure.axes:
                if other is not ax:
                    assert not box.overlaps(other.get_window_extent(renderer)), label.get_text()
            names += 1
    assert names == 2 * len(sets) * 30  # every class of every panel is named
    plt.close(figure)


def test_class_change_plot_grows_with_k():
    small, large = plots.class_changes(_changes(3), "t"), plots.class_changes(_changes(20), "t")
    assert large.get_figheight() > 2 * small.get_figheight()
    for figure in (small, large):
        plt.close(figure)


def _wide_intervals(n_encoders: int = 4) -> pd.DataFrame:
    """Table 14 rows with wide intervals, some excluding their value (above and below), and Δ of both signs."""
    rows = []
    for i in range(n_encoders):
        for probe in ("linear", "attention pooling"):
            row = {"encoder": f"encoder {i}", "probe": probe}
            for j, column in enumerate([*SET_COLUMNS, DELTA]):
                value = (3.0 - 2.5 * i) if column == DELTA else 55.0 + 4 * ((i + j) % 3)
                half = 6.0 + 4 * ((i + j) % 2)
                shift = (0.0, 1.5 * half, -1.5 * half)[(i + j) % 3]   # the interval beside, above or below
                low, high = ci_columns(column)
                row.update({column: value, low: value + shift - half, high: value + shift + half})
            rows.append(row)
    return pd.DataFrame(rows)


def _error_bar_strokes(ax) -> list[tuple[np.ndarray, float]]:
    """Every error-bar stroke of an axes in display coordinates, with its line width in pixels: the vertical
    lines (a LineCollection) and the caps (markers '_' of a Line2D, drawn markersize wide)."""
    px = ax.figure.dpi / 72
    strokes = []
    for collection in ax.collections:
        if isinstance(collection, LineCollection):
            width = max(collection.get_linewidths()) * px
            strokes += [(ax.transData.transform(np.asarray(s)), width) for s in collection.get_segments()]
    for line in ax.lines:
        if line.get_marker() == "_":
            half = line.get_markersize() * px / 2
            for x, y in ax.transData.transform(np.c_[line.get_xdata(), line.get_ydata()]):
                strokes.append((np.array([[x - half, y], [x + half, y]]), line.get_markeredgewidth() * px))
    return strokes


@pytest.mark.parametrize("name", ["top1_by_version", "delta_by_version"])
def test_value_labels_never_touch_an_error_bar(name):
    figure = getattr(plots, name)(_wide_intervals())
    figure.set_dpi(120)   # the saved PNG's resolution
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    labels = 0
    for ax in figure.axes:
        strokes = _error_bar_strokes(ax)
        assert strokes, "no error bars drawn"
        for text in ax.texts:
            if text.get_text() == plots.MISSING_MARK:
                continue
            box = text.get_window_extent(renderer)
            for points, width in strokes:
                assert not MplPath(points).intersects_bbox(box.padded(width / 2), filled=False), \
                    f"{name}: label {text.get_text()} crosses an error bar"
            labels += 1
    assert labels >= (4 if name == "delta_by_version" else 2 * 4 * len(SET_COLUMNS))
    plt.close(figure)


def test_an_error_bar_spans_its_interval_even_when_the_value_lies_outside_it():
    figure = plots.delta_by_version(_wide_intervals())
    ax = figure.axes[0]
    spans = sorted(tuple(np.round(sorted(np.asarray(s)[:, 1]), 6)) for c in ax.collections
                   if isinstance(c, LineCollection) for s in c.get_segments())
    table = _wide_intervals()
    table = table[table["probe"] == "attention pooling"]
    low, high = ci_columns(DELTA)
    assert spans == sorted(tuple(np.round(b, 6)) for b in zip(table[low], table[high]))
    plt.close(figure)
