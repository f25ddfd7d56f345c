"""`probes report` with per-image side files: intervals on every cell, paired version comparisons,
per-class changes and the per-layer plot, all on hand-made runs (no training)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probes.cli import main
from probes.errors import ConfigError
from probes.report.build import build_report
from probes.report.evidence.per_image import NO_SIDE_FILE
from probes.report.render.formats import format_cell, format_p, to_markdown
from probes.report.tables.layouts import DELTA, DELTA1, DELTA2, t15_column
from probes.results import CLASSIFICATION_COLUMNS, DATASETS, MODES, SEGMENTATION_COLUMNS, TEST_SETS

from .synthetic_runs import (both_probes, plant_gain, random_correct, real_sets, segmentation_counts,
                             write_classification_run, write_segmentation_run)
from .test_report import write_csv

A, B, C = "InternViT-6B-224px", "InternViT-6B-448px-V2_5", "InternViT-300M-448px"
T14_VALUES = [*TEST_SETS, "avg"]
T15_VALUES = [t15_column(d, m) for m in MODES for d in (*DATASETS, "avg")] + [DELTA1, DELTA2]


def _table(out, name):
    return pd.read_csv(out / "tables" / f"{name}.csv", keep_default_na=True)


def _segmentation_rows(folder, version, seed, modes=MODES, quality=(0.4, 0.5, 0.6), side_file=True):
    return [write_segmentation_run(folder, f"{version}-{d}-{m}", version, d, m,
                                   segmentation_counts(seed + 10 * j + i, quality=quality[j]), side_file)
            for j, m in enumerate(modes) for i, d in enumerate(DATASETS)]


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory):
    """A; B = A with 6% of IN-1K / IN-A images (both probes) turned right and better segmentation; C = A's exact
    predictions rerun under another name. Returns (results folder, the report folder of `--compare A B C`)."""
    root = tmp_path_factory.mktemp("versions")
    folder = root / "results"
    heads_a = both_probes(seed=0)
    heads_b = {key: {s: plant_gain(c, 0.06, seed=7) if s in ("IN-1K", "IN-A") else c for s, c in per_set.items()}
               for key, per_set in heads_a.items()}
    rows = write_classification_run(folder, "a", A, heads_a)
    rows += write_classification_run(folder, "b", B, heads_b)
    rows += write_classification_run(folder, "c", C, heads_a)
    write_csv(folder / "classification_results.csv", CLASSIFICATION_COLUMNS, rows)
    seg = _segmentation_rows(folder, A, seed=0) + _segmentation_rows(folder, C, seed=0)
    seg += _segmentation_rows(folder, B, seed=0, quality=(0.7, 0.75, 0.8))
    write_csv(folder / "segmentation.csv", SEGMENTATION_COLUMNS, seg)
    out = root / "report"
    # 1,000 resamples: Holm over 26 cells needs p_min = 1/(R + 1) < 0.05 / 26, i.e. R >= 520.
    report = build_report(folder, out, compare=[A, B, C], bootstrap=1000, seed=0)
    return folder, out, report


# ----------------------------------------------------------------------------- intervals on the tables
def test_every_table14_cell_average_and_delta_has_an_interval_around_its_value(three_versions):
    _, out, _ = three_versions
    t14 = _table(out, "table14_classification")
    assert len(t14) == 6  # three versions x two probes
    for _, row in t14.iterrows():
        columns = T14_VALUES + ([DELTA] if row["probe"] == "attention pooling" else [])
        for column in columns:
            low, high = row[f"{column} ci_low"], row[f"{column} ci_high"]
            assert low < row[column] < high, (row["encoder"], row["probe"], column)
        assert pd.isna(row["note"])
    md = (out / "tables" / "table14_classification.md").read_text()
    assert "±" in md and "ci_low" not in md  # intervals folded into the cells


def test_every_table15_cell_average_and_delta_has_an_interval_around_its_value(three_versions):
    _, out, _ = three_versions
    t15 = _table(out, "table15_segmentation")
    for _, row in t15.iterrows():
        for column in T15_VALUES:
            assert row[f"{column} ci_low"] < row[column] < row[f"{column} ci_high"], (row["encoder"], column)


def test_measured_beside_published_carries_the_measured_interval(three_versions):
    _, out, _ = three_versions
    pairs = _table(out, "measured_vs_published")
    row = pairs[(pairs.encoder == A) & (pairs.probe == "linear") & (pairs.column == "IN-A")].iloc[0]
    assert row["measured ci_low"] < row["measured"] < row["measured ci_high"]


def test_intervals_narrow_as_the_set_grows(tmp_path):
    widths = []
    for n in (200, 3200):
        folder = tmp_path / str(n)
        rows = write_classification_run(folder, "r", A, both_probes(seed=1, n=n, sets=["IN-1K"]))
        write_csv(folder / "c.csv", CLASSIFICATION_COLUMNS, rows)
        build_report(folder, folder / "out")
        row = _table(folder / "out", "table14_classification").iloc[0]
        widths.append(row["IN-1K ci_high"] - row["IN-1K ci_low"])
    assert widths[1] < 0.4 * widths[0]  # ~1/sqrt(16) = 0.25 of the width


def test_delta_of_a_run_with_itself_has_zero_width(tmp_path):
    same = {s: random_correct(i, 300, 0.7) for i, s in enumerate(TEST_SETS)}
    rows = write_classification_run(tmp_path / "r", "r", A, {("linear", 24): same, ("attention_pooling", 24): same})
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    counts = segmentation_counts(3)
    seg = [write_segmentation_run(tmp_path / "r", f"s-{d}-{m}", A, d, m, counts) for d in DATASETS for m in MODES]
    write_csv(tmp_path / "r" / "s.csv", SEGMENTATION_COLUMNS, seg)
    build_report(tmp_path / "r", tmp_path / "out")
    attention = _table(tmp_path / "out", "table14_classification").iloc[1]
    assert (attention[DELTA], attention[f"{DELTA} ci_low"], attention[f"{DELTA} ci_high"]) == (0.0, 0.0, 0.0)
    assert attention["avg ci_high"] > attention["avg ci_low"]  # the average itself is not exact
    t15 = _table(tmp_path / "out", "table15_segmentation").iloc[0]
    for delta in (DELTA1, DELTA2):  # every mode scored identical counts: paired resamples cancel exactly
        assert (t15[delta], t15[f"{delta} ci_low"], t15[f"{delta} ci_high"]) == (0.0, 0.0, 0.0)


def test_a_row_without_side_file_keeps_its_value_with_a_note(tmp_path):
    rows = write_classification_run(tmp_path / "r", "old", A, both_probes(seed=2, n=100), side_file=None)
    rows += write_classification_run(tmp_path / "r", "lost", B, both_probes(seed=3, n=100), side_file="gone.npz")
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    write_csv(tmp_path / "r" / "s.csv", SEGMENTATION_COLUMNS, _segmentation_rows(tmp_path / "r", A, 0, side_file=False))
    build_report(tmp_path / "r", tmp_path / "out", compare=[A, B])
    t14 = _table(tmp_path / "out", "table14_classification").set_index(["encoder", "probe"])
    old, lost = t14.loc[(A, "linear")], t14.loc[(B, "linear")]
    assert old["IN-1K"] == pytest.approx(rows[0]["top1"]) and pd.isna(old["IN-1K ci_low"])
    assert old["note"] == NO_SIDE_FILE
    assert "gone.npz does not exist" in lost["note"] and pd.isna(lost["avg ci_high"])
    t15 = _table(tmp_path / "out", "table15_segmentation").iloc[0]
    assert t15["note"] == NO_SIDE_FILE and pd.isna(t15["ADE20K linear ci_low"]) and not pd.isna(t15["ADE20K linear"])
    differences = _table(tmp_path / "out", "version_differences")
    assert differences["ci_low"].isna().all() and differences["note"].str.contains("no interval").all()
    assert "no per-image predictions" in (tmp_path / "out" / "tables" / "table14_classification.md").read_text()


def test_a_side_file_that_disagrees_with_the_csv_gives_no_interval(tmp_path):
    rows = write_classification_run(tmp_path / "r", "r", A, both_probes(seed=4, n=200, sets=["IN-1K"]))
    rows[0]["top1"] += 1.0  # the CSV's linear IN-1K no longer matches its side file (a wrong head name would)
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out")
    t14 = _table(tmp_path / "out", "table14_classification").set_index("probe")
    assert pd.isna(t14.loc["linear", "IN-1K ci_low"]) and "result CSV" in t14.loc["linear", "note"]
    assert t14.loc["attention pooling", "IN-1K ci_low"] < t14.loc["attention pooling", "IN-1K"]


def test_each_side_file_is_read_once(three_versions):
    _, _, report = three_versions
    assert report.side_file_reads == 3 + 3 * 6  # one per classification run, one per segmentation run


# ----------------------------------------------------------------------------- paired comparisons
def test_a_planted_gain_is_significant_and_an_identical_rerun_is_not(three_versions):
    _, out, _ = three_versions
    differences = _table(out, "version_differences")
    assert list(differences.columns[7:13]) == ["difference", "ci_low", "ci_high", "p_value", "p_adjusted",
                                               "significant"]

    def row(other, task, setting, column):
        found = differences[(differences.B == other) & (differences.task == task) & (differences.setting == setting)
                            & (differences.column == column)]
        assert len(found) == 1
        return found.iloc[0]

    gain = row(B, "classification", "linear", "IN-A")
    assert gain.difference == pytest.approx(6.0) and gain.ci_low > 0 and gain.p_value < 0.01
    assert gain.p_value <= gain.p_adjusted < 0.05 and gain.significant and gain.n_images == 400
    assert not row(B, "classification", "linear", "IN-R").significant  # nothing planted there
    assert row(B, "classification", "linear", "avg").significant  # 2 of 6 sets gained 6 points
    for key in (("classification", "linear", "IN-A"), ("classification", "attention pooling", DELTA),
                ("segmentation", "linear", "ADE20K"), ("segmentation", "head", DELTA1)):
        same = row(C, *key)
        assert (same.difference, same.ci_low, same.ci_high, same.p_value, same.p_adjusted) == (0.0, 0.0, 0.0, 1.0, 1.0)
        assert not same.significant
    seg = row(B, "segmentation", "full", "avg")
    assert seg.difference > 0 and seg.significant


def test_the_comparison_table_marks_significant_differences(three_versions):
    _, out, _ = three_versions
    comparison = _table(out, "version_comparison")
    column = f"{B} − {A}"
    gain = comparison[(comparison.setting == "linear") & (comparison.column == "IN-A")].iloc[0]
    assert gain[f"{column} significant"] and gain[f"{column} ci_low"] > 0
    md = (out / "tables" / "version_comparison.md").read_text()
    line = next(l for l in md.splitlines() if l.startswith("| classification | linear | IN-A |"))
    assert "6.0 ±" in line and line.count(" *") == 1  # B − A marked, C − A (zero) not


def test_versions_are_compared_on_the_images_both_scored(tmp_path):
    a = random_correct(0, 400, 0.6)
    b = np.ones(300, dtype=bool)  # B scored only the first 300 images, all right
    rows = write_classification_run(tmp_path / "r", "a", A, {("linear", 24): {"IN-A": a}})
    rows += write_classification_run(tmp_path / "r", "b", B, {("linear", 24): {"IN-A": b}})
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out", compare=[A, B])
    row = _table(tmp_path / "out", "version_differences").iloc[0]
    assert (row["column"], row["n_images"]) == ("IN-A", 300)
    assert row["a"] == pytest.approx(100 * a[:300].mean()) and row["b"] == 100.0  # not A's 400-image top-1
    assert row["difference"] == pytest.approx(100 - 100 * a[:300].mean()) and row["significant"]


# ----------------------------------------------------------------------------- per-class changes
def test_per_class_changes_are_exactly_the_planted_ones(tmp_path):
    n = 100  # 10 images per class (class = image index mod 10)
    base = np.zeros(n, dtype=bool)
    base[np.arange(n) % 10 < 5] = True               # A: classes 0-4 right, 5-9 wrong
    better = base.copy()
    better[[5, 15, 25]] = True                        # B: class 5 gains 3 images (+30)
    better[[16]] = True                               # class 6 gains 1 (+10)
    better[[0, 10]] = False                           # class 0 loses 2 (-20)
    heads_a = {("linear", 24): {"IN-1K": base, "IN-ReaL": base}}
    heads_b = {("linear", 24): {"IN-1K": better, "IN-ReaL": better}}
    rows = write_classification_run(tmp_path / "r", "a", A, heads_a)
    rows += write_classification_run(tmp_path / "r", "b", B, heads_b)
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out", compare=[A, B], top_classes=1)
    table = _table(tmp_path / "out", f"class_changes_classification_{B.lower()}_vs_{A.lower()}")
    assert table.to_dict("list") == {
        "setting": ["linear", "linear"], "set": ["IN-1K", "IN-1K"], "direction": ["gain", "loss"], "rank": [1, 1],
        "class_index": [5, 0], "class_name": ["electric ray", "tench"], "a": [0.0, 100.0], "b": [30.0, 80.0],
        "change": [30.0, -20.0], "n": [10, 10]}  # k = 1: class 6's +10 is left out; IN-ReaL never listed
    assert (tmp_path / "out" / "plots" / f"class_changes_classification_{B.lower()}_vs_{A.lower()}.png").is_file()
    assert "Where they differ" in (tmp_path / "out" / "report.md").read_text()


def test_segmentation_class_changes_name_classes_from_the_side_file(three_versions):
    _, out, _ = three_versions
    table = _table(out, f"class_changes_segmentation_{B.lower()}_vs_{A.lower()}")
    assert set(table["setting"]) == set(MODES) and set(table["set"]) == set(DATASETS)
    assert set(table["class_name"]) <= {"wall", "sky", "tree", "road", "person"}
    gains = table[table.direction == "gain"]
    assert (gains["change"] > 0).all() and (gains["b"] - gains["a"] == gains["change"]).all()


def test_class_changes_need_an_explicit_compare(tmp_path, three_versions):
    folder, _, _ = three_versions
    build_report(folder, tmp_path / "out", bootstrap=50)  # default comparison of every encoder
    assert not list((tmp_path / "out" / "tables").glob("class_changes_*"))
    assert (tmp_path / "out" / "tables" / "version_differences.csv").is_file()


# ----------------------------------------------------------------------------- per layer
def test_per_layer_table_and_plot_from_three_layers(tmp_path):
    heads = {("linear", layer): {s: random_correct(layer + i, 300, 0.5 + layer / 100) for i, s in enumerate(TEST_SETS)}
             for layer in (8, 16, 24)}
    heads[("attention_pooling", 24)] = {s: random_correct(90 + i, 300, 0.8) for i, s in enumerate(TEST_SETS)}
    rows = write_classification_run(tmp_path / "r", "r", A, heads)
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    report = build_report(tmp_path / "r", tmp_path / "out")
    table = _table(tmp_path / "out", "per_layer")
    assert table["layer"].tolist() == [8, 16, 24] and table["depth"].tolist() == pytest.approx([1 / 3, 2 / 3, 1])
    expected = [next(r["top1"] for r in rows if r["layer"] == layer and r["test_set"] == "IN-1K" and
                     r["probe"] == "linear") for layer in (8, 16, 24)]
    assert table["IN-1K"].tolist() == pytest.approx(expected)
    assert ((table["IN-1K ci_low"] < table["IN-1K"]) & (table["IN-1K"] < table["IN-1K ci_high"])).all()
    assert (table["avg ci_low"] < table["avg"]).all()
    assert (tmp_path / "out" / "plots" / "classification_top1_per_layer.png").stat().st_size > 1000
    # Table 14 still shows the last block only.
    t14 = _table(tmp_path / "out", "table14_classification")
    assert t14.set_index("probe").loc["linear", "IN-1K"] == pytest.approx(expected[-1])
    assert "per_layer" in report.frames


def test_no_per_layer_output_without_a_sweep(three_versions):
    _, out, report = three_versions
    assert "per_layer" not in report.frames
    assert not (out / "plots" / "classification_top1_per_layer.png").exists()


# ----------------------------------------------------------------------------- flags and formatting
def test_seed_and_resample_count_are_flags(tmp_path):
    rows = write_classification_run(tmp_path / "r", "r", A, both_probes(seed=5, n=300, sets=["IN-A"]))
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    bounds = {}
    for name, extra in (("s0", []), ("s0again", []), ("s1", ["--seed", "1"]), ("r50", ["--bootstrap", "50"])):
        assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / name), *extra]) == 0
        bounds[name] = _table(tmp_path / name, "table14_classification")["IN-A ci_low"].tolist()
    assert bounds["s0"] == bounds["s0again"] and bounds["s0"] != bounds["s1"] and bounds["s0"] != bounds["r50"]
    assert "1000 resamples, seed 0" in (tmp_path / "s0" / "report.md").read_text()
    assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "off"), "--bootstrap", "0"]) == 0
    off = _table(tmp_path / "off", "table14_classification")
    assert off["IN-A ci_low"].isna().all() and off["IN-A"].notna().all()
    assert "Intervals are off" in (tmp_path / "off" / "report.md").read_text()


def test_cells_read_as_value_plus_minus_half_width_or_bounds_when_lopsided():
    assert format_cell(86.6, interval=(86.3, 86.9)) == "86.6 ±0.3"
    assert format_cell(98.0, interval=(95.0, 99.0)) == "98.0 [95.0, 99.0]"
    assert format_cell(float("nan"), interval=(1.0, 2.0)) == "—"
    assert format_cell(1.0, interval=(float("nan"), float("nan"))) == "1.0"
    assert format_cell(0.4, interval=(0.1, 0.7), significant=True) == "0.4 ±0.3 *"
    assert (format_p(0.0004), format_p(0.0123), format_p(float("nan"))) == ("<0.001", "0.012", "—")


def test_markdown_folds_companion_columns_into_their_values():
    frame = pd.DataFrame({"name": ["x"], "difference": [1.25], "ci_low": [0.5], "ci_high": [2.0],
                          "p_value": [0.02], "significant": [True], "note": [""]})
    assert to_markdown(frame).splitlines() == ["| name | difference | p_value |", "|---|---:|---:|",
                                                "| x | 1.2 ±0.8 * | 0.020 |"]


def test_compare_refuses_a_name_given_twice(three_versions, tmp_path):
    folder, _, _ = three_versions
    with pytest.raises(ConfigError, match="more than once"):
        build_report(folder, tmp_path / "out", compare=[A, B, A])


# ----------------------------------------------------------------------------- joint resampling of IN-1K and ReaL
VAL, SMALL = 2000, 50  # val images (IN-1K and IN-ReaL); images of each other set (all right: no spread)


def _joint_pair(tmp_path, resamples):
    """Two runs whose IN-1K and ReaL heads are strongly correlated on the same val images; B = A with 3% of the
    val images turned right in both scores. The other four sets are all right: the six-set average's spread is
    IN-1K's and ReaL's. Returns (A's linear (IN-1K, ReaL), B's, report folder)."""
    rng = np.random.default_rng(11)
    sides = {}
    for name in ("a", "b"):
        heads = {}
        for probe in ("linear", "attention_pooling"):
            in1k = rng.random(VAL) < 0.7 if name == "a" else plant_gain(sides["a"][probe][0], 0.03, seed=5)
            real = in1k | (rng.random(VAL) < 0.15) if name == "a" else sides["a"][probe][1] | in1k
            heads[probe] = (in1k, real)
        sides[name] = heads
    rows = []
    for name, version in (("a", A), ("b", B)):
        per_probe = {(probe, 24): {"IN-1K": in1k, "IN-ReaL": real,
                                   **{s: np.ones(SMALL, bool) for s in TEST_SETS[2:]}}
                     for probe, (in1k, real) in sides[name].items()}
        rows += write_classification_run(tmp_path / "r", name, version, per_probe)
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out", compare=[A, B], bootstrap=resamples, seed=0)
    return sides["a"]["linear"], sides["b"]["linear"], tmp_path / "out"


def _brute_force(statistic, resamples, joint=True, seed=123):
    """Percentile 95% interval of `statistic(IN-1K draw, ReaL draw)` over plain numpy draws of val images:
    one draw for both scores (joint), or one each (independent, as the set name keyed streams before)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        first = rng.integers(0, VAL, VAL)
        values.append(statistic(first, first if joint else rng.integers(0, VAL, VAL)))
    return np.percentile(values, [2.5, 97.5])


def test_in1k_and_real_are_resampled_jointly_as_a_brute_force_bootstrap_of_images(tmp_path):
    resamples = 4000
    (in1k_a, real_a), (in1k_b, real_b), out = _joint_pair(tmp_path, resamples)
    labelled = real_sets(VAL).scored()

    def accuracy(correct, drawn, scored=None):
        keep = np.ones(len(drawn), bool) if scored is None else scored[drawn]
        return 100 * correct[drawn][keep].mean()

    def average(in1k, real):  # the six-set average: four sets at 100%
        return lambda d1, dr: (accuracy(in1k, d1) + accuracy(real, dr, labelled) + 400) / 6

    joint = _brute_force(average(in1k_a, real_a), resamples)
    independent = _brute_force(average(in1k_a, real_a), resamples, joint=False)
    assert (joint[1] - joint[0]) > 1.2 * (independent[1] - independent[0])  # the test can tell them apart
    row = _table(out, "table14_classification").set_index(["encoder", "probe"]).loc[(A, "linear")]
    width = row["avg ci_high"] - row["avg ci_low"]
    assert 0.9 < width / (joint[1] - joint[0]) < 1.1, (width, joint, independent)

    # The version difference of the average: one draw of val images for A and B, IN-1K and ReaL alike.
    delta = _brute_force(lambda d1, dr: average(in1k_b, real_b)(d1, dr) - average(in1k_a, real_a)(d1, dr), resamples)
    differences = _table(out, "version_differences").set_index(["setting", "column"])
    avg = differences.loc[("linear", "avg")]
    assert 0.9 < (avg["ci_high"] - avg["ci_low"]) / (delta[1] - delta[0]) < 1.1, (avg, delta)
    assert avg["n_images"] == VAL + 4 * SMALL  # each val image once, though IN-1K and ReaL both score it
    assert differences.loc[("linear", "IN-ReaL"), "n_images"] == labelled.sum()
    assert differences.loc[("linear", "IN-1K"), "n_images"] == VAL


def test_side_files_whose_in1k_and_real_share_no_image_are_still_compared(tmp_path, monkeypatch):
    from . import synthetic_runs

    # Hand-made files may list ReaL under other ids than IN-1K: each set is then resampled on its own.
    monkeypatch.setattr(synthetic_runs, "image_ids", lambda s, n: np.array([f"{s}/img_{i:05d}.JPEG" for i in range(n)]))
    rows = write_classification_run(tmp_path / "r", "a", A, both_probes(seed=0, n=200))
    rows += write_classification_run(tmp_path / "r", "b", B, both_probes(seed=50, n=200))
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out", compare=[A, B], bootstrap=200)
    differences = _table(tmp_path / "out", "version_differences").set_index(["setting", "column"])
    for column in ("IN-1K", "IN-ReaL", "avg"):
        assert differences.loc[("linear", column), "p_value"] > 0, column
    assert differences.loc[("linear", "avg"), "n_images"] == 200 * 5 + 180  # ReaL: 9 of 10 images labelled


# ----------------------------------------------------------------------------- multiplicity
def test_each_comparison_is_holm_adjusted_over_its_cells_and_marked_on_the_adjusted_value(three_versions):
    _, out, _ = three_versions
    from probes.report.stats import holm

    differences = _table(out, "version_differences")
    for other in (B, C):
        family = differences[(differences.B == other) & differences["p_value"].notna()]
        assert len(family) == 26  # 15 classification + 11 segmentation cells
        np.testing.assert_allclose(family["p_adjusted"], holm(family["p_value"].to_numpy()))
        assert (family["significant"].astype(bool) == (family["p_adjusted"] < 0.05)).all()
    # Some cell of B − A has an interval that excludes 0 and a raw p below 0.05, but no mark after Holm.
    survived = differences[(differences.B == B) & ((differences.ci_low > 0) | (differences.ci_high < 0))]
    assert (~survived["significant"].astype(bool)).any() and (survived["p_value"] < 0.05).all()
    comparison = _table(out, "version_comparison")
    column = f"{B} − {A}"
    assert [c for c in comparison.columns if c.startswith(column)][:3] == [column, f"{column} p_value",
                                                                             f"{column} p_adjusted"]
    text = (out / "report.md").read_text()
    assert "Holm's step-down method" in text and f"{column}: 26 cells" in text
    assert "no cell of" not in text  # 1,000 resamples are enough for 26 cells


def test_too_few_resamples_for_any_mark_are_said(tmp_path):
    rows = write_classification_run(tmp_path / "r", "a", A, both_probes(seed=0, n=200))
    rows += write_classification_run(tmp_path / "r", "b", B, both_probes(seed=50, n=200))
    write_csv(tmp_path / "r" / "c.csv", CLASSIFICATION_COLUMNS, rows)
    build_report(tmp_path / "r", tmp_path / "out", compare=[A, B], bootstrap=100)
    text = (tmp_path / "out" / "report.md").read_text()
    assert f"no cell of {B} − {A} can reach p_adjusted < 0.05 (use `--bootstrap 300` or more)" in text
    assert not _table(tmp_path / "out", "version_differences")["significant"].astype(bool).any()
