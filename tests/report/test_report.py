"""`probes report` on hand-made result CSVs: every average and delta checked by hand."""
from __future__ import annotations

import csv
import logging
import math

import pandas as pd
import pytest

from probes.cli import main
from probes.report.build import build_report
from probes.report.evidence.measured import load_results
from probes.results import CLASSIFICATION_COLUMNS, SEGMENTATION_COLUMNS, TEST_SETS

V224, V25 = "InternViT-6B-224px", "InternViT-6B-448px-V2_5"
# Selected heads: linear 80,81,...,85 (avg 82.5); attention pooling 86..91 (avg 88.5) -> delta 6.0.
LINEAR = dict(zip(TEST_SETS, [80.0, 81.0, 82.0, 83.0, 84.0, 85.0]))
ATTN = dict(zip(TEST_SETS, [86.0, 87.0, 88.0, 89.0, 90.0, 91.0]))


def cls_rows(encoder, version, size, probe, scores, lr=0.1, selected="true", ema="false", protocol="published",
             date="2026-11-25", max_over=None, **extra):
    """One classification row per test set, in the result CSV's own column names."""
    return [dict(encoder=encoder, encoder_version=version, probe=probe, lr=lr, ema=ema, test_set=s, n_images=10,
                 top1=v, epochs=10, image_size=size, protocol=protocol, protocol_notes="", subset="false",
                 selected=selected, heldout_top1=50.0, n_skipped=0, date=date,
                 **({"max_over_epochs_top1": max_over[s]} if max_over else {}), **extra)
            for s, v in scores.items()]


def seg_row(version, dataset, mode, miou, date="2026-11-25", encoder=None, **extra):
    """One segmentation row (one run)."""
    return {**dict(encoder=encoder or f"/ckpt/{version}", encoder_version=version, dataset=dataset, mode=mode,
                   mIoU=miou, aAcc=80, mAcc=50, n_images=5, iters=80000, crop_size=504, batch_size=16,
                   trainable_params=1, protocol="published", protocol_notes="", config="x.py", date=date), **extra}


def write_csv(path, columns, rows):
    """A result CSV as the runners write it: a header, then one line per row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture()
def results(tmp_path):
    rows = []
    # Two lrs per probe; the held-out split selected lr 0.1 (whose test scores are LOWER than lr 0.2's).
    rows += cls_rows("/ckpt/224", V224, 224, "linear", LINEAR, 0.1, "true")
    rows += cls_rows("/ckpt/224", V224, 224, "linear", {s: v + 5 for s, v in LINEAR.items()}, 0.2, "false")
    rows += cls_rows("/ckpt/224", V224, 224, "attention_pooling", ATTN, 0.1, "true")
    rows += cls_rows("/ckpt/224", V224, 224, "attention_pooling", {s: v + 5 for s, v in ATTN.items()}, 0.2, "false")
    # The same encoder probed at 448, IN-Sketch missing for its linear probe, cached protocol.
    partial = {s: v for s, v in LINEAR.items() if s != "IN-Sketch"}
    rows += cls_rows("/ckpt/224", V224, 448, "linear", partial, 0.1, "true", protocol="cached")
    write_csv(tmp_path / "cls" / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    seg = []
    for version, base in ((V224, 40.0), (V25, 30.0)):
        for d, dataset in enumerate(("ADE20K", "COCO-Stuff")):
            for m, mode in enumerate(("linear", "head", "full")):
                seg.append(seg_row(version, dataset, mode, base + 10 * m + 2 * d))
    seg = [r for r in seg if not (r["encoder_version"] == V25 and r["dataset"] == "COCO-Stuff" and r["mode"] == "full")]
    write_csv(tmp_path / "seg" / "segmentation.csv", SEGMENTATION_COLUMNS, seg)
    return tmp_path


def _md_table(path):
    return pd.read_csv(path)


def test_table14_uses_the_held_out_head_and_computes_avg_and_delta(results, tmp_path):
    build_report(results, tmp_path / "out")
    t14 = _md_table(tmp_path / "out" / "tables" / "table14_classification.csv")
    linear = t14[(t14.encoder == V224) & (t14.probe == "linear")].iloc[0]
    attn = t14[(t14.encoder == V224) & (t14.probe == "attention pooling")].iloc[0]
    assert linear["IN-1K"] == 80.0  # lr 0.1 (selected), not lr 0.2 (best on test: 85.0)
    assert linear["avg"] == pytest.approx(82.5) and attn["avg"] == pytest.approx(88.5)
    assert attn["Δ"] == pytest.approx(6.0) and pd.isna(linear["Δ"])


def test_missing_cells_stay_missing_and_nonstandard_rows_are_flagged(results, tmp_path):
    build_report(results, tmp_path / "out")
    t14 = _md_table(tmp_path / "out" / "tables" / "table14_classification.csv")
    at448 = t14[t14.encoder == f"{V224} @448"].iloc[0]
    assert pd.isna(at448["IN-Sketch"]) and pd.isna(at448["avg"])  # never 0, never a partial mean
    assert at448["protocol"] == "cached"
    md = (tmp_path / "out" / "tables" / "table14_classification.md").read_text()
    assert "| — |" in md or "| — " in md


def test_table15_averages_and_deltas(results, tmp_path):
    build_report(results, tmp_path / "out")
    t15 = _md_table(tmp_path / "out" / "tables" / "table15_segmentation.csv").set_index("encoder")
    row = t15.loc[V224]
    # ADE20K: 40/50/60, COCO-Stuff: 42/52/62 -> avg 41/51/61, delta1 10, delta2 20.
    assert (row["avg linear"], row["avg head"], row["avg full"]) == (41.0, 51.0, 61.0)
    assert (row["Δ1"], row["Δ2"]) == (10.0, 20.0)
    v25 = t15.loc[V25]
    assert pd.isna(v25["COCO-Stuff full"]) and pd.isna(v25["avg full"]) and pd.isna(v25["Δ2"])
    assert v25["Δ1"] == 10.0


def test_measured_beside_published(results, tmp_path):
    build_report(results, tmp_path / "out")
    pairs = _md_table(tmp_path / "out" / "tables" / "measured_vs_published.csv")
    in1k = pairs[(pairs.encoder == V224) & (pairs.probe == "linear") & (pairs.column == "IN-1K")].iloc[0]
    assert (in1k.published, in1k.measured) == (88.2, 80.0)
    assert in1k.difference == pytest.approx(-8.2)
    delta = pairs[(pairs.encoder == V224) & (pairs.column == "Δ")].iloc[0]
    assert delta.published == 3.0 and delta.measured == pytest.approx(6.0)
    seg = pairs[(pairs.task == "segmentation") & (pairs.encoder == V224) & (pairs.column == "Δ1")].iloc[0]
    assert (seg.published, seg.measured) == (6.9, 10.0)
    assert seg["head"] == "final mIoU"
    # The notes say which of our numbers meets the paper's best-checkpoint cells, and why it matters.
    text = (tmp_path / "out" / "report.md").read_text()
    assert "kept the best checkpoint (`save_best`)" in text and "`--segmentation-metric best` compares like" in text


def test_version_comparison_and_plots(results, tmp_path, capsys):
    assert main(["report", str(results), "--out", str(tmp_path / "out"), "--format", "md,csv,tex",
                 "--compare", V224, V25]) == 0
    comparison = _md_table(tmp_path / "out" / "tables" / "version_comparison.csv")
    row = comparison[(comparison.setting == "linear") & (comparison.column == "ADE20K")].iloc[0]
    assert row[f"{V25} − {V224}"] == pytest.approx(-10.0)
    assert (tmp_path / "out" / "tables" / "table14_classification.tex").read_text().startswith(r"\begin{tabular}")
    for name in ("classification_top1_by_version", "classification_delta_by_version",
                 "segmentation_miou_by_version", "measured_vs_published"):
        for suffix in ("png", "svg"):
            assert (tmp_path / "out" / "plots" / f"{name}.{suffix}").stat().st_size > 1000
    assert "report:" in capsys.readouterr().out


def test_report_from_reference_csvs_alone_reproduces_the_published_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    build_report(tmp_path / "empty", tmp_path / "out")
    published = _md_table(tmp_path / "out" / "tables" / "published_table14.csv")
    assert list(published.columns[:10]) == ["encoder", "probe", *TEST_SETS, "avg", "Δ"]
    assert len(published) == 12  # 6 rows of Table 14 x 2 probes
    row = published[(published.encoder == "InternViT-6B-448px-V1-5") & (published.probe == "attention pooling")].iloc[0]
    assert (row["IN-A"], row["avg"], row["Δ"]) == (86.0, 85.1, 7.2)


def test_old_csv_without_the_new_columns_still_loads(tmp_path):
    old_columns = ("encoder", "encoder_version", "probe", "lr", "ema", "test_set", "n_images", "top1", "epochs",
                   "image_size", "protocol", "protocol_notes", "subset", "selected", "heldout_top1", "n_skipped",
                   "date")
    rows = cls_rows("/ckpt/224", V224, 224, "linear", LINEAR)
    write_csv(tmp_path / "r" / "classification_results.csv", old_columns, rows)
    loaded = load_results(tmp_path / "r")
    assert not loaded.skipped and len(loaded.classification) == 6
    assert set(loaded.classification["run_id"].fillna("")) == {""}  # missing columns read as empty


def test_demo_rows_say_they_are_not_comparable(tmp_path):
    rows = cls_rows("demo-a", "custom", 56, "linear", LINEAR, 0.1, "true", protocol="demo")
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    report = build_report(tmp_path / "r", tmp_path / "out")
    assert "not comparable to the published ones" in report.index.read_text()
    assert "not comparable" in report.headline


def test_cached_baselines_get_their_own_table(results, tmp_path):
    rows = []
    for probe in ("knn", "logreg"):
        rows += cls_rows("/ckpt/224", V224, 224, probe, LINEAR, "", "true", protocol="cached")
    write_csv(results / "cached" / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(results, tmp_path / "out")
    table = _md_table(tmp_path / "out" / "tables" / "baselines_cached_features.csv")
    assert list(table["baseline"]) == ["knn", "logreg"] and set(table["protocol"]) == {"cached"}
    assert table["avg"].tolist() == [82.5, 82.5]
    t14 = _md_table(tmp_path / "out" / "tables" / "table14_classification.csv")
    assert set(t14["probe"]) == {"linear", "attention pooling"}


# ----------------------------------------------------------------------------- empty pairs, the average rule
def test_results_without_a_published_counterpart_say_so_not_no_results_yet(tmp_path):
    rows = cls_rows("/ckpt/mine", "my-vit", 224, "linear", LINEAR) + cls_rows("/ckpt/mine", "my-vit", 224,
                                                                             "attention_pooling", ATTN)
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    section = text[text.index("## Measured beside published"):text.index("## Version comparison")
                   if "## Version comparison" in text else None]
    assert "none with a published counterpart" in section and "no results yet" not in section
    assert "none with a published counterpart" in (tmp_path / "out" / "tables" / "measured_vs_published.md").read_text()
    (tmp_path / "empty").mkdir()
    build_report(tmp_path / "empty", tmp_path / "none")  # no results at all: still "no results yet"
    assert "no results yet" in (tmp_path / "none" / "tables" / "measured_vs_published.md").read_text()


def test_one_average_rule_for_the_tables_and_the_classify_summary(tmp_path, caplog):
    from probes.classification.runner import log_summary
    from probes.results import set_average

    assert set_average(LINEAR) == pytest.approx(82.5)
    partial = {s: v for s, v in LINEAR.items() if s != "IN-A"}
    assert math.isnan(set_average(partial)) and math.isnan(set_average({**LINEAR, "IN-A": float("nan")}))
    assert set_average({"ADE20K": 40.0, "COCO-Stuff": 30.0}, ("ADE20K", "COCO-Stuff")) == 35.0

    def rows(scores, probe):
        return [dict(probe=probe, head="published", selected=True, layer=24, test_set=s, top1=v, lr=0.1, ema=False,
                     heldout_top1=50.0) for s, v in scores.items()]

    caplog.set_level(logging.INFO, logger="probes.classification.runner")
    log_summary(rows(partial, "linear") + rows(ATTN, "attention_pooling"))
    lines = caplog.messages
    linear = next(m for m in lines if m.startswith("linear published"))
    assert "avg=— (no IN-A; the average needs all six sets)" in linear  # not the mean of the five present
    assert "avg=88.50" in next(m for m in lines if m.startswith("attention_pooling published"))
    assert "published heads = — (an average is incomplete)" in next(m for m in lines if m.startswith("delta"))

    # The report's Table 14 shows — for the same incomplete run.
    csv_rows = cls_rows("/ckpt/224", V224, 224, "linear", partial) + cls_rows("/ckpt/224", V224, 224,
                                                                             "attention_pooling", ATTN)
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, csv_rows)
    build_report(tmp_path / "r", tmp_path / "out")
    t14 = pd.read_csv(tmp_path / "out" / "tables" / "table14_classification.csv").set_index("probe")
    assert pd.isna(t14.loc["linear", "avg"]) and t14.loc["attention pooling", "avg"] == pytest.approx(88.5)


def test_pages_fit_short_labels_footnotes_same_section_order_and_b_minus_a_headers(results, tmp_path):
    rows = cls_rows("/ckpt/25", V25, 448, "linear", LINEAR, run_id="InternViT-6B-448px-V2_5_448px_linear_live_0f1e2d3c",
                    protocol="modified")
    rows = [r | {"protocol_notes": "epochs 10 -> 2 (recipe: 10); batch 1024 -> 64"} for r in rows]
    write_csv(results / "cls2" / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(results, tmp_path / "out", compare=[V224, V25], bootstrap=0)
    tables = tmp_path / "out" / "tables"
    # A short run label in the table, the run and its full protocol words in a footnote keyed by it; CSV keeps all.
    md = (tables / "table14_classification.md").read_text()
    header = md.splitlines()[0]
    assert header.endswith("| head | run |") and "protocol" not in header
    row = next(line for line in md.splitlines() if line.startswith(f"| {V25} | linear "))
    label = row.rstrip(" |").rsplit("| ", 1)[1]
    assert label.startswith("r") and len(label) <= 3
    assert (f"- {label}: InternViT-6B-448px-V2_5_448px_linear_live_0f1e2d3c; protocol: modified "
            "(epochs 10 -> 2 (recipe: 10); batch 1024 -> 64)") in md
    csv_row = _md_table(tables / "table14_classification.csv").query("encoder == @V25").iloc[0]
    assert (csv_row["run"], csv_row["protocol"]) == ("InternViT-6B-448px-V2_5_448px_linear_live_0f1e2d3c", "modified")
    assert max(len(line) for line in md.splitlines() if line.startswith("|")) < 160
    # The published table sits in the same place in both task sections.
    text = (tmp_path / "out" / "report.md").read_text()
    sections = {}
    for part in text.split("\n## ")[1:]:
        title, *lines = part.splitlines()
        sections[title.split(" (")[0]] = [line for line in lines if line.startswith("### ")]
    order = ["### Measured", "### Other runs", "### Published"]
    for task in ("Classification", "Segmentation"):
        found = [h.split(" (")[0] for h in sections[task]]
        assert found == [h for h in order if h in found] and {"### Measured", "### Published"} <= set(found), task
    # Comparison headers read "B − A", with a key naming A and B.
    comparison = (tables / "version_comparison.md").read_text().splitlines()
    assert comparison[0] == f"A = {V224}; B = {V25}"
    assert comparison[2].startswith("| task | setting | column | A | B | B − A |")
    assert f"{V25} − {V224}" in _md_table(tables / "version_comparison.csv").columns
