"""One Table 14 row is one run's head for one probe: runs are labelled, never stitched together."""
from __future__ import annotations

import pandas as pd
import pytest

from probes.cli import main
from probes.report.build import build_report
from probes.results import CLASSIFICATION_COLUMNS, SEGMENTATION_COLUMNS, TEST_SETS

from .test_report import ATTN, LINEAR, V224, V25, cls_rows, seg_row, write_csv

FIRST_THREE = TEST_SETS[:3]


def _run(run_id, date, version=V25, size=448, scores=LINEAR, attn=ATTN, encoder=None, **extra):
    """Both probes of one run, published head only."""
    encoder = encoder or f"/ckpt/{version}"
    common = dict(run_id=run_id, date=date, head="published", **extra)
    return (cls_rows(encoder, version, size, "linear", scores, **common)
            + cls_rows(encoder, version, size, "attention_pooling", attn, **common))


def _table(out, name):
    return pd.read_csv(out / "tables" / f"{name}.csv")


def _plus(scores, delta, only=TEST_SETS):
    return {s: v + delta for s, v in scores.items() if s in only}


def test_a_newer_incomplete_run_is_not_stitched_into_the_complete_one(tmp_path):
    rows = _run("a", "2026-11-01T10:00:00Z")
    rows += _run("b", "2026-11-02T10:00:00Z", scores=_plus(LINEAR, 5, FIRST_THREE), attn=_plus(ATTN, 5, FIRST_THREE))
    write_csv(tmp_path / "r" / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out")
    t14 = _table(tmp_path / "out", "table14_classification")
    linear = t14[t14.probe == "linear"]
    assert list(linear.encoder) == [f"{V25} (run 1)"]  # the latest COMPLETE run is the default
    assert linear.iloc[0][list(TEST_SETS)].tolist() == list(LINEAR.values())
    others = _table(tmp_path / "out", "table14_other_runs")
    newer = others[(others.encoder == f"{V25} (run 2)") & (others.probe == "linear")].iloc[0]
    assert newer["IN-1K"] == 85.0 and pd.isna(newer["IN-A"]) and pd.isna(newer["avg"])  # never borrowed


def test_the_latest_complete_run_is_the_default_and_reruns_are_numbered_by_date(tmp_path):
    # File order is the opposite of date order: numbering follows the dates.
    newer = _run("new", "2026-11-02T10:00:00Z", scores=_plus(LINEAR, 5))
    write_csv(tmp_path / "r" / "a.csv", CLASSIFICATION_COLUMNS, newer)
    write_csv(tmp_path / "r" / "b.csv", CLASSIFICATION_COLUMNS, _run("old", "2026-11-01T10:00:00Z"))
    build_report(tmp_path / "r", tmp_path / "out")
    t14 = _table(tmp_path / "out", "table14_classification")
    assert set(t14.encoder) == {f"{V25} (run 2)"} and set(t14.run) == {"new"}
    assert t14[t14.probe == "linear"].iloc[0]["IN-1K"] == 85.0
    others = _table(tmp_path / "out", "table14_other_runs")
    assert set(others.encoder) == {f"{V25} (run 1)"} and set(others.run) == {"old"}
    assert "Other runs" in (tmp_path / "out" / "report.md").read_text()


def test_image_sizes_label_any_encoder_not_only_known_versions(tmp_path):
    rows = []
    for size in (64, 80, 96):
        rows += _run(f"timm-{size}", "2026-11-01T10:00:00Z", version="timm:vit_tiny_patch16_224", size=size,
                     encoder="timm:vit_tiny_patch16_224", scores=_plus(LINEAR, size / 100))
    write_csv(tmp_path / "r" / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out")
    t14 = _table(tmp_path / "out", "table14_classification")
    linear = t14[t14.probe == "linear"].set_index("encoder")
    assert sorted(linear.index) == [f"timm:vit_tiny_patch16_224 @{s}" for s in (64, 80, 96)]
    assert linear.loc["timm:vit_tiny_patch16_224 @80", "IN-1K"] == pytest.approx(80.8)


def test_a_single_size_of_an_unknown_encoder_needs_no_size_label(tmp_path):
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, _run("x", "2026-11-01", version="custom", size=56,
                                                                     encoder="/enc/tiny-a"))
    build_report(tmp_path / "r", tmp_path / "out")
    assert set(_table(tmp_path / "out", "table14_classification").encoder) == {"tiny-a"}


def test_table14_uses_the_published_head_and_the_comparison_adds_the_selected_one(tmp_path):
    common = dict(run_id="r", date="2026-11-01")
    rows = cls_rows("/ckpt/224", V224, 224, "linear", LINEAR, lr=0.1, selected="false", head="published",
                    max_over=_plus(LINEAR, 0.5), **common)
    rows += cls_rows("/ckpt/224", V224, 224, "linear", _plus(LINEAR, 5), lr=0.2, selected="true", head="grid",
                     **common)
    rows += cls_rows("/ckpt/224", V224, 224, "linear", _plus(LINEAR, 6), lr=0.2, ema="true", selected="false",
                     head="grid", **common)
    write_csv(tmp_path / "r" / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out")
    t14 = _table(tmp_path / "out", "table14_classification").iloc[0]
    assert (t14["IN-1K"], t14["avg"], t14["head"]) == (80.0, 82.5, "published")
    pairs = _table(tmp_path / "out", "measured_vs_published").set_index("column")
    assert pairs.loc["IN-1K", ["published", "measured", "measured_selected", "max_over_epochs"]].tolist() == \
        [88.2, 80.0, 85.0, 80.5]
    assert pairs.loc["avg", ["measured", "measured_selected", "max_over_epochs"]].tolist() == [82.5, 87.5, 83.0]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "published head" in text and "test-set selection" in text


def test_a_run_without_a_published_head_falls_back_to_the_selected_one_and_says_so(tmp_path):
    rows = cls_rows("/ckpt/224", V224, 224, "linear", LINEAR, lr=0.1, selected="true", run_id="r", date="d")
    rows += cls_rows("/ckpt/224", V224, 224, "linear", _plus(LINEAR, 5), lr=0.2, selected="false", run_id="r",
                     date="d")
    write_csv(tmp_path / "r" / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out")
    t14 = _table(tmp_path / "out", "table14_classification").iloc[0]
    assert (t14["IN-1K"], t14["head"]) == (80.0, "selected")


def test_layers_before_the_last_are_left_out_of_table14(tmp_path):
    common = dict(run_id="r", date="d", head="published")
    # The per-layer sweep's rows come after the standard ones in the file.
    rows = cls_rows("/ckpt/224", V224, 224, "linear", LINEAR, layer=24, **common)
    rows += cls_rows("/ckpt/224", V224, 224, "linear", _plus(LINEAR, -50), layer=12, **common)
    write_csv(tmp_path / "r" / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out")
    assert _table(tmp_path / "out", "table14_classification").iloc[0]["IN-1K"] == 80.0


def test_compare_takes_run_labels(tmp_path):
    rows = _run("a", "2026-11-01T10:00:00Z") + _run("b", "2026-11-02T10:00:00Z", scores=_plus(LINEAR, 2))
    write_csv(tmp_path / "r" / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    first, second = f"{V25} (run 1)", f"{V25} (run 2)"
    assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "out"), "--compare", first, second]) == 0
    comparison = _table(tmp_path / "out", "version_comparison")
    row = comparison[(comparison.setting == "linear") & (comparison.column == "IN-1K")].iloc[0]
    assert (row[first], row[second], row[f"{second} − {first}"]) == (80.0, 82.0, 2.0)


def test_each_table15_cell_is_the_latest_complete_run_and_older_runs_are_listed(tmp_path):
    seg = [seg_row(V224, "ADE20K", "linear", 40.0, date="2026-11-01", run_id="s1"),
           seg_row(V224, "ADE20K", "linear", 41.0, date="2026-11-02", run_id="s2"),
           seg_row(V224, "ADE20K", "head", 50.0, date="2026-11-01", run_id="s3"),
           seg_row(V224, "ADE20K", "head", "", date="2026-11-03", run_id="s4")]  # newest, but no result
    write_csv(tmp_path / "r" / "segmentation.csv", SEGMENTATION_COLUMNS, seg)
    build_report(tmp_path / "r", tmp_path / "out")
    t15 = _table(tmp_path / "out", "table15_segmentation").set_index("encoder")
    assert (t15.loc[V224, "ADE20K linear"], t15.loc[V224, "ADE20K head"]) == (41.0, 50.0)
    others = _table(tmp_path / "out", "table15_other_runs")
    assert sorted(zip(others.encoder, others.run)) == [(f"{V224} (run 1)", "s1"), (f"{V224} (run 2)", "s4")]


def test_a_run_id_written_by_two_invocations_is_split_by_date_not_merged(tmp_path):
    # Both calls wrote the same run_id (e.g. a name made of version and size): the repeated cells tell them apart.
    rows = _run("V2_5_448px_live", "2026-11-01T10:00:00Z")
    rows += _run("V2_5_448px_live", "2026-11-02T10:00:00Z", scores=_plus(LINEAR, 5, FIRST_THREE),
                 attn=_plus(ATTN, 5, FIRST_THREE))
    write_csv(tmp_path / "r" / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out")
    shown = _table(tmp_path / "out", "table14_classification")
    linear = shown[shown.probe == "linear"].iloc[0]
    assert linear["encoder"] == f"{V25} (run 1)" and linear[list(TEST_SETS)].tolist() == list(LINEAR.values())
    assert set(_table(tmp_path / "out", "table14_other_runs").encoder) == {f"{V25} (run 2)"}


@pytest.mark.parametrize("version", [V25, f"random:{V25}"])   # rows written before, and after, rows said so
def test_random_weight_rows_never_sit_under_a_version_nor_beside_its_published_cells(version, tmp_path):
    rows = _run("rnd", "2026-11-01T10:00:00Z", version=version, encoder=f"random:{V25}", protocol="random-weights")
    write_csv(tmp_path / "r" / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    seg = [seg_row(version, d, m, 10.0, encoder=f"random:{V25}", protocol="random-weights", run_id=f"s-{d}-{m}")
           for d in ("ADE20K", "COCO-Stuff") for m in ("linear", "head", "full")]
    write_csv(tmp_path / "r" / "segmentation.csv", SEGMENTATION_COLUMNS, seg)
    build_report(tmp_path / "r", tmp_path / "out")
    t14 = _table(tmp_path / "out", "table14_classification")
    assert set(t14.encoder) == {f"random:{V25}"} and set(t14.protocol) == {"random-weights"}
    assert set(_table(tmp_path / "out", "table15_segmentation").encoder) == {f"random:{V25}"}
    pairs_file = tmp_path / "out" / "tables" / "measured_vs_published.csv"
    assert not pairs_file.exists() or pd.read_csv(pairs_file).empty
