"""`probes demo` end to end: the README's first command, checked by its outputs."""
from __future__ import annotations

import pandas as pd
import pytest

from probes.cli import main
from probes.results import DATASETS, MODES, TEST_SETS


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--seg-iters", "30"]) == 0
    printed = capsys.readouterr().out
    assert "not comparable to the published ones" in printed and "report.md" in printed

    encoders = sorted(p.name for p in (tmp_path / "encoders").iterdir())
    assert encoders == ["tiny-internvit-v1", "tiny-internvit-v2"]
    for name in encoders:  # real Hugging Face folders
        assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= \
            {p.name for p in (tmp_path / "encoders" / name).iterdir()}
    assert (tmp_path / "data" / "coco_stuff164k" / "annotations" / "val2017").glob("*_labelTrainIds.png")

    cls = pd.read_csv(tmp_path / "results" / "classification" / "classification_results.csv")
    assert set(cls["protocol"]) == {"demo"}
    chosen = cls[cls["selected"]]
    assert len(chosen) == 2 * 2 * 6  # encoders x probes x sets, one selected head each
    assert set(chosen["test_set"]) == set(TEST_SETS)
    seg = pd.read_csv(tmp_path / "results" / "segmentation" / "segmentation.csv")
    assert set(seg["protocol"]) == {"demo"}
    assert len(seg) == 2 * len(DATASETS) * len(MODES)
    assert set(zip(seg["dataset"], seg["mode"])) == {(d, m) for d in DATASETS for m in MODES}

    # Above chance (10 digit classes) on IN-1K for the longer-trained version.
    v2 = chosen[(chosen["encoder"].str.endswith("tiny-internvit-v2")) & (chosen["test_set"] == "IN-1K")]
    assert v2["top1"].max() > 15.0

    tables = tmp_path / "report" / "tables"
    t14 = pd.read_csv(tables / "table14_classification.csv")
    assert t14["Δ"].notna().sum() == 2 and t14["avg"].notna().all()
    t15 = pd.read_csv(tables / "table15_segmentation.csv")
    assert t15[["Δ1", "Δ2"]].notna().all().all() and len(t15) == 2
    assert (tables / "version_comparison.csv").is_file()
    for plot in ("classification_top1_by_version", "classification_delta_by_version",
                 "segmentation_miou_by_version"):
        assert (tmp_path / "report" / "plots" / f"{plot}.png").stat().st_size > 1000
    assert "not comparable" in (tmp_path / "report" / "report.md").read_text()
