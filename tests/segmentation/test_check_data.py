"""`probes check-data ade20k|coco-stuff`: both splits read as `probes segment` reads them, every problem at once."""
from __future__ import annotations

from pathlib import Path

from probes.cli import main
from probes.segmentation.coco_stuff import prepare_coco_stuff


def check(capsys, task: str, root: Path, *extra: str) -> tuple[int, str]:
    code = main(["check-data", task, str(root), *extra])
    return code, capsys.readouterr().out


def test_ade20k_partial_is_refused_unless_allowed(capsys, ade20k: Path) -> None:
    code, out = check(capsys, "ade20k", ade20k.parent)   # the folder holding ADEChallengeData2016/ works too
    assert code == 1 and "training    ok       4 images, each with its annotation" in out
    assert "partial     problem  training: 4 of 20210 images; validation: 2 of 2000 images" in out
    assert "pass --allow-subset" in out
    code, out = check(capsys, "ade20k", ade20k, "--allow-subset")
    assert code == 0 and out.strip().endswith("a run would accept this data")


def test_each_split_names_its_problem(capsys, ade20k: Path) -> None:
    (ade20k / "annotations" / "validation" / "ADE_val_00000001.png").unlink()
    (ade20k / "annotations" / "training" / "ADE_train_00000002.png").unlink()
    code, out = check(capsys, "ade20k", ade20k, "--allow-subset")
    assert code == 1 and "2 problem(s)" in out
    assert "ADE_val_00000001.jpg has no annotation" in out and "ADE_train_00000002.jpg has no annotation" in out
    assert "expected: ADEChallengeData2016/{images,annotations}/{training,validation}/" in out


def test_unconverted_coco_stuff_says_to_prepare_it(capsys, coco_stuff_raw: Path) -> None:
    code, out = check(capsys, "coco-stuff", coco_stuff_raw, "--allow-subset")
    assert code == 1 and f"run `probes prepare coco-stuff {coco_stuff_raw}` first" in out
    prepare_coco_stuff(coco_stuff_raw, workers=1)
    assert check(capsys, "coco-stuff", coco_stuff_raw, "--allow-subset")[0] == 0
