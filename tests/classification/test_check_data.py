"""`probes check-data imagenet`: the runs' readers, every problem at once, exit 0 only when a run accepts the data."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from probes.classification import imagenet_info as info
from probes.classification.config import load_config
from probes.classification.runner import load_data
from probes.cli import main
from probes.errors import ProbeError


def check(capsys, root: Path, *extra: str) -> tuple[int, str]:
    code = main(["check-data", "imagenet", str(root), *extra])
    return code, capsys.readouterr().out


def run_accepts(root: Path, allow_subset: bool) -> bool:
    data = load_config(None, {"data.root": str(root), "data.allow_subset": allow_subset}, pick_published=False).data
    try:
        load_data(data, seed=0)
    except ProbeError:
        return False
    return True


def test_a_good_root_is_described_set_by_set(capsys, data_root: Path) -> None:
    code, out = check(capsys, data_root, "--allow-subset")
    assert code == 0 and out.strip().endswith("a run would accept this data")
    assert "train      ok       19 images in 4 classes" in out
    assert "IN-ReaL    ok       3 of 4 val images have a ReaL label list" in out
    assert "labels: the <wnid> folders of" in out and "IN-A       ok       4 images in 4 classes" in out


def test_partial_sets_are_refused_as_a_run_refuses_them(capsys, data_root: Path) -> None:
    code, out = check(capsys, data_root)
    assert code == 1 and "7 problem(s); a run would refuse this data" in out
    assert "train at" in out and "pass --allow-subset" in out
    assert run_accepts(data_root, allow_subset=False) is False


def test_every_problem_is_named_at_once_and_missing_sets_are_skipped(capsys, data_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    shutil.rmtree(root / "imagenetv2-matched-frequency-format-val")
    (root / "imagenet-a" / "n99999999").mkdir()
    (root / "imagenet-r" / info.imagenet_wnids()[0]).mkdir()   # not one of IN-R's 200
    flat = root / "val"
    for image in list(flat.rglob("*.JPEG")):
        image.rename(flat / image.name)
    for folder in [p for p in flat.iterdir() if p.is_dir()]:
        folder.rmdir()
    code, out = check(capsys, root, "--allow-subset")
    assert code == 1 and "4 problem(s)" in out
    assert "IN-V2      skipped" in out and "a run skips IN-V2" in out
    assert "n99999999 (`probes classes IN-A` lists them)" in out
    assert f"{info.imagenet_wnids()[0]} (`probes classes IN-R` lists them)" in out
    assert "no val.txt or LOC_val_solution.csv" in out and "expected: val/<wnid>/*.JPEG" in out
    assert "IN-ReaL: not checked" in out
    assert run_accepts(root, allow_subset=True) is False


def test_a_root_a_run_accepts_passes_after_a_fix(capsys, data_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    (root / "imagenet-a" / "n99999999").mkdir()
    assert check(capsys, root, "--allow-subset")[0] == 1 and not run_accepts(root, allow_subset=True)
    (root / "imagenet-a" / "n99999999").rmdir()
    assert check(capsys, root, "--allow-subset")[0] == 0 and run_accepts(root, allow_subset=True)


def test_data_paths_are_the_runs_settings(capsys, data_root: Path, tmp_path: Path) -> None:
    code, out = check(capsys, data_root, "--allow-subset", "--cfg-options", f"data.paths.IN-A={tmp_path / 'ina'}")
    assert code == 0 and f"{tmp_path / 'ina'} not found: a run skips IN-A" in out


@pytest.mark.parametrize("task", ["imagenet", "ade20k"])
def test_a_missing_root_is_one_line(capsys, task: str, tmp_path: Path) -> None:
    assert main(["check-data", task, str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
