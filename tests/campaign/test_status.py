"""`probes status`: done / running / interrupted / failed / missing from the files runs and jobs leave."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from probes.campaign.job import EXIT_MARK, PREEMPTED_MARK, lock_path, log_path
from probes.campaign.planfile import new_plan, write_plan
from probes.campaign.status import campaign_status
from probes.cli import main
from probes.results import CLASSIFICATION_COLUMNS, SEGMENTATION_COLUMNS, append_rows


def _entry(campaign: Path, key: str, task: str = "classify") -> dict:
    out = campaign / ("classification" if task == "classify" else "segmentation")
    argv = [task, "--encoder", f"/ckpt/{key}", "--data", "/data", "--out", str(out), "--device", "cuda"]
    return {"key": key, "task": task, "argv": argv, "command": "probes " + " ".join(argv),
            "resume_command": "probes " + " ".join(argv) + " --resume", "run_id": f"id_{key}", "label": key}


def _old(path: Path, minutes: float = 120) -> None:
    stamp = time.time() - 60 * minutes
    os.utime(path, (stamp, stamp))


def test_status_names_each_state_and_the_command_that_continues_it(tmp_path, capsys) -> None:
    keys = ["done", "running", "interrupted", "failed", "missing", "stale", "preempted", "seg"]
    entries = [_entry(tmp_path, k, "segment" if k == "seg" else "classify") for k in keys]
    write_plan(tmp_path, new_plan(tmp_path, entries, {}))
    out = tmp_path / "classification"
    append_rows(out / "classification_results.csv", [{"run_id": "id_done", "top1": 1.0}], CLASSIFICATION_COLUMNS)
    lock = lock_path(tmp_path, "running")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"job_id": "77", "host": "node3", "started": "t"}))
    (out / "checkpoints").mkdir()
    for key in ("interrupted", "stale", "preempted"):   # checkpoints written two hours ago
        (out / "checkpoints" / f"id_{key}.pth").touch()
        _old(out / "checkpoints" / f"id_{key}.pth")
    stale = lock_path(tmp_path, "stale")     # a job killed without cleaning up: its heartbeat stopped long ago
    stale.write_text("{}")
    _old(stale)
    log_path(tmp_path, "failed").parent.mkdir(parents=True)
    log_path(tmp_path, "failed").write_text("[probes campaign] start\nTraceback (most recent call last):\n"
                                            "probes classify: error: data root /data does not exist.\n"
                                            f"{EXIT_MARK}2 t\n")
    log_path(tmp_path, "preempted").write_text(f"[probes campaign] start\n{PREEMPTED_MARK} t: requeued\n")
    work = tmp_path / "segmentation" / "id_seg"
    work.mkdir(parents=True)
    (work / "iter_1000.pth").touch()
    _old(work / "iter_1000.pth")
    (work / "last_checkpoint").write_text(str(work / "iter_1000.pth"))

    found = {s.key: s for s in campaign_status(json.loads((tmp_path / "plan.json").read_text()), tmp_path)}
    assert {k: s.state for k, s in found.items()} == {
        "done": "done", "running": "running", "interrupted": "interrupted", "failed": "failed", "missing": "missing",
        "stale": "interrupted", "preempted": "interrupted", "seg": "interrupted"}
    assert found["done"].command == "" and found["running"].command == ""
    assert "job 77 on node3" in found["running"].detail
    for key in ("interrupted", "stale", "preempted", "seg"):
        assert found[key].command.endswith("--resume")
    assert found["missing"].command == entries[4]["command"]
    assert found["failed"].command == entries[3]["command"]   # no checkpoint: start it again
    assert "data root /data does not exist" in found["failed"].detail
    assert "preempted" in found["preempted"].detail

    assert main(["status", str(tmp_path)]) == 1
    shown = capsys.readouterr().out
    assert "1 done, 1 running, 4 interrupted, 1 failed, 1 missing" in shown and entries[4]["command"] in shown


def test_status_exits_0_when_every_run_is_done(tmp_path, capsys) -> None:
    entries = [_entry(tmp_path, "a"), _entry(tmp_path, "b", "segment")]
    write_plan(tmp_path, new_plan(tmp_path, entries, {}))
    append_rows(tmp_path / "classification" / "classification_results.csv", [{"run_id": "id_a"}],
                CLASSIFICATION_COLUMNS)
    assert main(["status", str(tmp_path / "plan.json")]) == 1
    capsys.readouterr()
    append_rows(tmp_path / "segmentation" / "segmentation.csv", [{"run_id": "id_b"}], SEGMENTATION_COLUMNS)
    assert main(["status", str(tmp_path), "--format", "json"]) == 0
    assert [s["state"] for s in json.loads(capsys.readouterr().out)] == ["done", "done"]


def test_status_of_a_folder_without_a_plan_is_one_line(tmp_path, capsys) -> None:
    assert main(["status", str(tmp_path)]) == 2
    assert "no campaign plan at" in capsys.readouterr().err
