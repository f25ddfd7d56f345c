"""A malformed row is skipped and named by file:line; it never blocks the rest of the report."""
from __future__ import annotations

import pandas as pd

from probes.cli import main
from probes.report.build import build_report
from probes.report.evidence.measured import load_results
from probes.results import CLASSIFICATION_COLUMNS, SEGMENTATION_COLUMNS

from .test_report import LINEAR, V224, cls_rows, seg_row, write_csv


def _bad_classification_file(folder):
    """Six rows of one run; line 4 has a word for a number, line 6 an unknown set, line 7 an extra field."""
    rows = cls_rows("/ckpt/224", V224, 224, "linear", LINEAR, run_id="r", head="published")
    rows[2]["top1"] = "eighty"
    rows[4]["test_set"] = "IN-9K"
    path = write_csv(folder / "r.csv", CLASSIFICATION_COLUMNS, rows)
    lines = path.read_text().splitlines()
    lines[6] += ",surplus"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_rows_are_skipped_and_named_by_file_and_line(tmp_path):
    path = _bad_classification_file(tmp_path / "r")
    loaded = load_results(tmp_path / "r")
    assert [(s.line, s.reason.split(" ")[0]) for s in loaded.skipped] == [(4, "top1"), (6, "test_set"), (7, "wrong")]
    assert str(loaded.skipped[0]).startswith(f"{path}:4: top1 'eighty' is not a number")
    assert len(loaded.classification) == 3  # the three good rows are kept


def test_the_report_is_written_around_the_skipped_rows(tmp_path):
    _bad_classification_file(tmp_path / "r")
    report = build_report(tmp_path / "r", tmp_path / "out")
    assert len(report.skipped) == 3
    t14 = pd.read_csv(tmp_path / "out" / "tables" / "table14_classification.csv").iloc[0]
    assert t14["IN-1K"] == 80.0 and pd.isna(t14["IN-V2"]) and pd.isna(t14["avg"])
    text = report.index.read_text()
    assert "## Skipped rows" in text and "3 rows skipped" in text and "r.csv:6: test_set 'IN-9K'" in text


def test_a_file_with_an_unknown_column_is_skipped_whole_and_the_others_are_read(tmp_path):
    write_csv(tmp_path / "r" / "a.csv", [*CLASSIFICATION_COLUMNS, "colour"],
              cls_rows("/ckpt/224", V224, 224, "linear", LINEAR, colour="red"))
    write_csv(tmp_path / "r" / "b.csv", SEGMENTATION_COLUMNS,
              [seg_row(V224, "ADE20K", "linear", 40.0), seg_row(V224, "ADE20K", "sideways", 40.0)])
    loaded = load_results(tmp_path / "r")
    assert [str(s) for s in loaded.skipped] == [
        f"{tmp_path / 'r' / 'a.csv'}:1: unknown column(s) colour (whole file skipped)",
        f"{tmp_path / 'r' / 'b.csv'}:3: mode 'sideways' is not one of linear, head, full"]
    assert loaded.classification.empty and len(loaded.segmentation) == 1


def test_skipped_rows_are_printed_and_strict_makes_them_an_error(tmp_path, capsys):
    _bad_classification_file(tmp_path / "r")
    assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "out")]) == 0
    assert "r.csv:4: top1 'eighty'" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "strict"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "3 malformed result rows skipped" in err
    assert (tmp_path / "strict" / "report.md").is_file()  # still written


def test_segmentation_csvs_with_and_without_the_subset_column_are_read(tmp_path):
    from probes.report.tables.runs import identify_segmentation_runs

    old = [c for c in SEGMENTATION_COLUMNS if c != "subset"]
    write_csv(tmp_path / "r" / "old.csv", old, [seg_row(V224, "ADE20K", "linear", 40.0)])
    write_csv(tmp_path / "r" / "new.csv", SEGMENTATION_COLUMNS,
              [seg_row(V224, "ADE20K", "head", 41.0, subset=True)])
    loaded = load_results(tmp_path / "r")
    assert not loaded.skipped and len(loaded.segmentation) == 2
    flags = identify_segmentation_runs(loaded.segmentation).set_index("mode")["flag"]
    assert (flags["linear"], flags["head"]) == ("", "subset")
