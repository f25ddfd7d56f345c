"""`probes demo` end to end: the README's first command, checked by its outputs."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
import pytest

from probes.cli import main
from probes.report.stats import Bootstrap, compare_classification, compare_segmentation
from probes.results import DATASETS, MODES, PROBES, TEST_SETS, prediction_head_name
from probes.sidefiles import read_classification_predictions, read_segmentation_counts

V1, V2 = "tiny-internvit-v1", "tiny-internvit-v2"


def _row(table: pd.DataFrame, encoder: str, **match) -> pd.Series:
    rows = table[table["encoder"].str.endswith(encoder)]
    for column, value in match.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, f"{encoder} {match}: {len(rows)} rows"
    return rows.iloc[0]


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_and_its_two_versions_differ(tmp_path: Path, monkeypatch, capsys,
                                                                   caplog) -> None:
    caplog.set_level(logging.INFO, logger="probes.demo")
    # Exactly the README's command, from a fresh folder: it writes demo_out/ there. (Short relative paths
    # also keep mmengine's config formatting fast: its yapf pass slows down sharply on long lines.)
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    printed = capsys.readouterr().out
    assert "not comparable to the published ones" in printed and "report.md" in printed
    out = tmp_path / "demo_out"

    # Every stage is logged as it starts, in order, numbered out of the total.
    stages = [m for m in caplog.messages if m.startswith("demo [")]
    assert [re.match(r"demo \[(\d+)/19\]", m).group(1) for m in stages] == [str(i) for i in range(1, 20)]
    assert "classify tiny-internvit-v1" in stages[4] and "segment tiny-internvit-v2 coco-stuff full" in stages[17]
    assert "report" in stages[18]

    encoders = sorted(p.name for p in (out / "encoders").iterdir())
    assert encoders == [V1, V2]
    for name in encoders:  # real Hugging Face folders
        assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= \
            {p.name for p in (out / "encoders" / name).iterdir()}
    coco = out / "data" / "coco_stuff164k" / "annotations"
    raw = sorted(p for p in coco.glob("*/*.png") if not p.stem.endswith("_labelTrainIds"))
    assert len(raw) == 96  # 48 train + 48 val scenes, each converted beside its raw map
    assert all(p.with_name(f"{p.stem}_labelTrainIds.png").is_file() for p in raw)

    cls_dir = out / "results" / "classification"
    cls = pd.read_csv(cls_dir / "classification_results.csv")
    assert set(cls["protocol"]) == {"demo"}
    for chosen in (cls[cls["head"] == "published"], cls[cls["selected"]]):
        assert len(chosen) == 2 * len(PROBES) * len(TEST_SETS)  # encoders x probes x sets, one head each
        assert set(chosen["test_set"]) == set(TEST_SETS)
    seg_dir = out / "results" / "segmentation"
    seg = pd.read_csv(seg_dir / "segmentation.csv")
    assert set(seg["protocol"]) == {"demo"}
    assert sorted(zip(seg["encoder"].map(lambda e: Path(e).name), seg["dataset"], seg["mode"])) == \
        sorted((e, d, m) for e in (V1, V2) for d in DATASETS for m in MODES)

    # v1 is an early checkpoint that already learned something: its linear probe is well above chance (10%).
    v1_linear = cls[cls["encoder"].str.endswith(V1) & (cls["probe"] == "linear") & (cls["head"] == "published")]
    assert v1_linear["top1"].mean() > 15.0

    # The longer-trained version is better beyond chance: paired bootstrap over the same images.
    boot = Bootstrap(n_resamples=1000, seed=0)
    heads = {e: _row(cls, e, probe="linear", head="published", test_set="IN-1K") for e in (V1, V2)}
    preds = {e: read_classification_predictions(cls_dir / heads[e]["predictions"])["IN-1K"] for e in (V1, V2)}
    names = {e: prediction_head_name("linear", heads[e]["lr"], heads[e]["ema"], heads[e]["layer"]) for e in (V1, V2)}
    top1 = compare_classification(preds[V1], names[V1], preds[V2], names[V2], "IN-1K", bootstrap=boot)
    assert top1.n == 100 and top1.significant and top1.difference > 0, top1

    runs = {e: _row(seg, e, dataset="COCO-Stuff", mode="linear") for e in (V1, V2)}
    counts = {e: read_segmentation_counts(seg_dir / runs[e]["predictions"]) for e in (V1, V2)}
    miou = compare_segmentation(counts[V1], counts[V2], "COCO-Stuff", bootstrap=boot)
    assert miou.n == 48 and miou.significant and miou.difference > 0, miou
    assert miou.b == pytest.approx(runs[V2]["mIoU"], abs=0.01)  # the side file holds the row's evaluation

    report = out / "report"
    assert "not comparable" in (report / "report.md").read_text()
    for plot in ("classification_top1_by_version", "segmentation_miou_by_version"):
        assert (report / "plots" / f"{plot}.png").stat().st_size > 1000
