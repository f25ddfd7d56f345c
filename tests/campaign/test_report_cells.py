"""The report keeps a planned Table 15 cell without rows, as a note on its encoder's row or a row of its own."""
from __future__ import annotations

import pandas as pd

from probes.campaign.planfile import new_plan, write_plan
from probes.campaign.report_cells import with_planned_cells


def _entry(tmp_path, key: str, label: str, dataset: str, mode: str) -> dict:
    argv = ["segment", "--encoder", f"/ckpt/{label}", "--dataset", "ade20k", "--data", "/d", "--mode", mode,
            "--out", str(tmp_path / "segmentation")]
    return {"key": key, "task": "segment", "label": label, "dataset": dataset, "mode": mode, "argv": argv,
            "command": "probes " + " ".join(argv), "resume_command": "r", "run_id": f"id_{key}"}


def test_missing_segmentation_cells_are_noted_never_dropped(tmp_path) -> None:
    t15 = pd.DataFrame([{"encoder": "V1-5", "ADE20K linear": 40.0, "ADE20K full": float("nan"), "protocol": "",
                         "note": ""}])
    t14 = pd.DataFrame(columns=["encoder", "probe", "IN-1K", "head", "protocol", "run", "note"])
    entries = [_entry(tmp_path, "a", "V1-5", "ADE20K", "full"), _entry(tmp_path, "b", "V2_5", "COCO-Stuff", "head")]
    write_plan(tmp_path, new_plan(tmp_path, entries, {}))
    check = (tmp_path / "segmentation" / "id_a")
    check.mkdir(parents=True)
    (check / "iter_8000.pth").touch()
    (check / "last_checkpoint").write_text(str(check / "iter_8000.pth"))
    new14, new15, note = with_planned_cells(tmp_path, None, t14, t15, stale_min=0)
    assert new14.empty and list(new15["encoder"]) == ["V1-5", "V2_5"]
    assert new15.loc[0, "note"] == "ADE20K full: missing (interrupted)" and new15.loc[0, "ADE20K linear"] == 40.0
    assert new15.loc[1, "note"] == "COCO-Stuff head: missing (missing)" and pd.isna(new15.loc[1, "ADE20K linear"])
    assert note.startswith("2 of 2 runs of the campaign plan")
    unchanged = with_planned_cells(tmp_path / "elsewhere", None, t14, t15)
    assert unchanged[1] is t15 and unchanged[2] == ""
