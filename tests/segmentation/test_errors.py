"""Each bad input stops `probes segment` / `probes prepare` with one clear line and exit code 2."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from probes.cli import main
from probes.config_files import config_dir


def segment(capsys: pytest.CaptureFixture, encoder: Path, data: Path, out: Path, *extra: str,
            dataset: str = "ade20k", mode: str = "linear") -> tuple[int, str]:
    code = main(["segment", "--encoder", str(encoder), "--dataset", dataset, "--data", str(data), "--mode", mode,
                 "--iters", "1", "--batch-size", "2", "--crop-size", "56", "--device", "cpu", "--workers", "0",
                 "--out", str(out), "--allow-subset", *extra])
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if line.startswith("probes ") or "Error" in line or "Traceback" in line]
    assert len(err) == 1, err   # exactly one error line, no traceback
    return code, err[0]


def _assert_one_line_error(capsys, code: int, line: str, *needles: str) -> None:
    assert code == 2
    assert line.startswith("probes segment: error: "), line
    for needle in needles:
        assert needle in line, line


def test_missing_split_folder(capsys, tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    shutil.rmtree(ade20k / "annotations" / "validation")
    code, line = segment(capsys, tiny_encoder, ade20k, tmp_path / "out")
    _assert_one_line_error(capsys, code, line, "annotations/validation is missing")


def test_image_without_annotation_is_named(capsys, tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    (ade20k / "annotations" / "training" / "ADE_train_00000003.png").unlink()
    code, line = segment(capsys, tiny_encoder, ade20k, tmp_path / "out")
    _assert_one_line_error(capsys, code, line, "ADE_train_00000003.jpg has no annotation")


@pytest.mark.parametrize("workers", ["0", "1"])   # 1: the error comes back from a DataLoader worker
def test_label_outside_class_range_names_the_file(capsys, workers: str, tiny_encoder: Path, ade20k: Path,
                                                 tmp_path: Path) -> None:
    bad = ade20k / "annotations" / "validation" / "ADE_val_00000002.png"
    labels = np.asarray(Image.open(bad)).copy()
    labels[0, 0] = 151   # ADE20K has 150 classes: 0 (other) .. 150
    Image.fromarray(labels, mode="L").save(bad)
    code, line = segment(capsys, tiny_encoder, ade20k, tmp_path / "out", "--workers", workers)
    _assert_one_line_error(capsys, code, line, "ADE_val_00000002.png holds label value 151", "150 classes")


def test_unconverted_coco_stuff_names_the_prepare_command(capsys, tiny_encoder: Path, coco_stuff_raw: Path,
                                                         tmp_path: Path) -> None:
    code, line = segment(capsys, tiny_encoder, coco_stuff_raw, tmp_path / "out", dataset="coco-stuff")
    _assert_one_line_error(capsys, code, line, f"probes prepare coco-stuff {coco_stuff_raw}")


def test_crop_size_not_a_multiple_of_the_patch(capsys, tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    code, line = segment(capsys, tiny_encoder, ade20k, tmp_path / "out", "--crop-size", "500")
    _assert_one_line_error(capsys, code, line, "--crop-size 500 is not a positive multiple of the encoder's "
                                               "patch size 14 (e.g. 504)")


def test_cuda_asked_on_a_cpu_machine(capsys, monkeypatch, tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, line = segment(capsys, tiny_encoder, ade20k, tmp_path / "out", "--device", "cuda")
    _assert_one_line_error(capsys, code, line, "no CUDA GPU")


def test_config_that_contradicts_the_mode(capsys, tiny_encoder: Path, ade20k: Path, tmp_path: Path) -> None:
    config = config_dir("segmentation") / "ade20k_full.py"
    code, line = segment(capsys, tiny_encoder, ade20k, tmp_path / "out", "--config", str(config), mode="head")
    _assert_one_line_error(capsys, code, line, "ade20k_full.py trains the encoder", "--mode is head")


def test_missing_dataset_folder(capsys, tiny_encoder: Path, tmp_path: Path) -> None:
    code, line = segment(capsys, tiny_encoder, tmp_path / "nowhere", tmp_path / "out")
    _assert_one_line_error(capsys, code, line, "nowhere does not exist")


def test_importing_the_commands_does_not_import_mmseg() -> None:
    import subprocess
    import sys

    code = "import sys, probes.cli; probes.cli.build_parser(); print('mmseg' in sys.modules, 'mmengine' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_partial_validation_set_is_refused_without_allow_subset(capsys, tiny_encoder: Path, ade20k: Path,
                                                                  tmp_path: Path) -> None:
    code = main(["segment", "--encoder", str(tiny_encoder), "--dataset", "ade20k", "--data", str(ade20k),
                 "--mode", "linear", "--iters", "1", "--crop-size", "56", "--device", "cpu",
                 "--out", str(tmp_path / "out")])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("probes ")]
    assert code == 2 and len(err) == 1
    assert "is partial (training: 4 of 20210 images; validation: 2 of 2000 images)" in err[0]
    assert "--allow-subset" in err[0] and not (tmp_path / "out").exists()
