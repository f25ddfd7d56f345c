"""Table 15 per dataset in the paper's column order, the final or best mIoU, and every published cell."""
from __future__ import annotations

import pandas as pd
import pytest

from probes.cli import main
from probes.report.build import build_report
from probes.report.tables.published import load_published
from probes.results import DATASETS, MODES, SEGMENTATION_COLUMNS

from .test_report import V224, V25, results, seg_row, write_csv  # noqa: F401  (fixture)

PAPER_COLUMNS = ["ADE20K linear", "COCO-Stuff linear", "avg linear", "ADE20K head", "COCO-Stuff head", "avg head",
                 "ADE20K full", "COCO-Stuff full", "avg full", "Δ1", "Δ2"]


def _table(out, name):
    return pd.read_csv(out / "tables" / f"{name}.csv")


def test_table15_follows_the_papers_column_order(results, tmp_path):  # noqa: F811
    build_report(results, tmp_path / "out")
    columns = list(_table(tmp_path / "out", "table15_segmentation").columns)
    # The paper's layout first; then the protocol words, the cells' runs, the note, what the intervals cover
    # and every value's interval bounds.
    assert columns[:13] == ["encoder", *PAPER_COLUMNS, "protocol"]
    assert columns[13:] == ["protocol_notes", "run", "note", "interval_covers",
                            *(f"{c} {b}" for c in PAPER_COLUMNS for b in ("ci_low", "ci_high"))]
    assert list(_table(tmp_path / "out", "published_table15").columns) == ["encoder", *PAPER_COLUMNS, "source"]


def test_published_table15_has_every_printed_cell(tmp_path):
    (tmp_path / "empty").mkdir()
    build_report(tmp_path / "empty", tmp_path / "out")
    published = _table(tmp_path / "out", "published_table15").set_index("encoder")
    assert len(published) == 5
    row = published.loc["InternViT-6B-448px-V1-0"]
    assert row[PAPER_COLUMNS].tolist() == [43.6, 38.5, 41.0, 55.4, 49.4, 52.4, 58.1, 51.7, 54.9, 11.3, 13.9]


def test_reference_averages_match_the_cells_and_two_printed_deltas_differ_by_a_tenth():
    _, table15 = load_published()
    wide = table15.pivot_table(index="encoder_version", columns=["dataset", "mode"], values="mIoU")
    for mode in MODES:
        cells = wide[[(d, mode) for d in DATASETS]].mean(axis=1)
        assert ((cells - wide[("avg", mode)]).abs() <= 0.05 + 1e-9).all()
    off = {}
    for delta, mode in (("delta1", "head"), ("delta2", "full")):
        computed = wide[("avg", mode)] - wide[("avg", "linear")]
        for version, gap in (wide[("avg", delta)] - computed).items():
            if abs(gap) > 1e-9:
                off[(version, delta)] = round(gap, 6)
    assert off == {("InternViT-6B-224px", "delta2"): -0.1, ("InternViT-6B-448px-V1-0", "delta1"): -0.1}
    assert set(table15["source"]) == {"InternVL 2.5 Table 15"}


def test_measured_beside_published_compares_cells_averages_and_deltas(results, tmp_path):  # noqa: F811
    build_report(results, tmp_path / "out")
    pairs = _table(tmp_path / "out", "measured_vs_published")
    seg = pairs[(pairs.task == "segmentation") & (pairs.encoder == V224)].set_index("column")
    assert set(seg.index) == set(PAPER_COLUMNS)
    # Measured ADE20K 40/50/60, COCO-Stuff 42/52/62; published as printed (Δ2 10.2, not 55.3 - 45.0).
    assert seg.loc["ADE20K linear", ["published", "measured"]].tolist() == [47.2, 40.0]
    assert seg.loc["avg linear", ["published", "measured"]].tolist() == [45.0, 41.0]
    assert seg.loc["Δ2", ["published", "measured"]].tolist() == [10.2, 20.0]
    assert seg.loc["Δ2", "difference"] == pytest.approx(9.8)


def test_best_metric_uses_best_miou_and_says_so(tmp_path):
    rows = [seg_row(V224, "ADE20K", "linear", 40.0, best_mIoU=42.5, best_iter=3000, run_id="a"),
            seg_row(V224, "COCO-Stuff", "linear", 38.0, run_id="b")]  # no best_mIoU recorded
    write_csv(tmp_path / "r" / "segmentation.csv", SEGMENTATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "best", segmentation_metric="best")
    best = _table(tmp_path / "best", "table15_segmentation").iloc[0]
    assert best["ADE20K linear"] == 42.5 and pd.isna(best["COCO-Stuff linear"]) and pd.isna(best["avg linear"])
    assert "best evaluation over training" in (tmp_path / "best" / "report.md").read_text()
    build_report(tmp_path / "r", tmp_path / "final")
    final = _table(tmp_path / "final", "table15_segmentation").iloc[0]
    assert (final["ADE20K linear"], final["avg linear"]) == (40.0, 39.0)
    assert "final evaluation" in (tmp_path / "final" / "report.md").read_text()


def test_the_cli_takes_the_segmentation_metric(results, tmp_path):  # noqa: F811
    assert main(["report", str(results), "--out", str(tmp_path / "out"), "--segmentation-metric", "best"]) == 0
    t15 = _table(tmp_path / "out", "table15_segmentation").set_index("encoder")
    assert t15.loc[V25, PAPER_COLUMNS].isna().all()  # the fixture's rows have no best_mIoU
