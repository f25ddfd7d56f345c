"""`probes prepare coco-stuff`: the raw -> train-id conversion, value by value, resumable and atomic."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from probes.cli import main
from probes.errors import DatasetError
from probes.segmentation.coco_stuff import convert_file, prepare_coco_stuff


def _mmseg_reference_table() -> dict[int, int]:
    """clsID_to_trID from mmseg's own converter (shipped in its package data): an independent reference."""
    import mmseg

    path = Path(mmseg.__file__).parent / ".mim" / "tools" / "dataset_converters" / "coco_stuff164k.py"
    spec = importlib.util.spec_from_file_location("mmseg_coco_stuff164k", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.clsID_to_trID


def test_every_raw_value_maps_like_mmseg_converter(tmp_path: Path) -> None:
    reference = _mmseg_reference_table()
    raw_values = np.array(list(range(182)) + [255], dtype=np.uint8)
    raw = tmp_path / "000000000001.png"
    Image.fromarray(np.tile(raw_values, (3, 1)), mode="L").save(raw)
    assert convert_file(raw)
    out = np.asarray(Image.open(tmp_path / "000000000001_labelTrainIds.png"))
    assert out.shape == (3, 183)
    for column, value in enumerate(raw_values.tolist()):
        expected = reference.get(value, 255)   # unused thing ids and 255 -> ignore
        assert (out[:, column] == expected).all(), f"raw {value} -> {out[0, column]}, expected {expected}"
    assert sorted(set(out.ravel().tolist()) - {255}) == list(range(171))


def test_prepare_converts_both_splits_then_resumes(coco_stuff_raw: Path) -> None:
    converted, skipped = prepare_coco_stuff(coco_stuff_raw, workers=2)
    assert (converted, skipped) == (6, 0)
    outputs = sorted(coco_stuff_raw.glob("annotations/*/*_labelTrainIds.png"))
    assert len(outputs) == 6 and not list(coco_stuff_raw.rglob("*.tmp"))
    first = outputs[0]
    stamp = first.stat().st_mtime_ns
    outputs[1].unlink()                     # an interrupted earlier run: one file missing
    assert prepare_coco_stuff(coco_stuff_raw, workers=1) == (1, 5)
    assert first.stat().st_mtime_ns == stamp


def test_leftover_temp_file_is_not_an_annotation(coco_stuff_raw: Path) -> None:
    # What an interrupted atomic write leaves (probes.io.atomic_path): a hidden temp file beside the target.
    (coco_stuff_raw / "annotations" / "val2017" / ".000000000013_labelTrainIds.png.k2x9.tmp").write_bytes(b"partial")
    assert prepare_coco_stuff(coco_stuff_raw, workers=1) == (6, 0)


def test_value_outside_raw_range_names_the_file(tmp_path: Path) -> None:
    raw = tmp_path / "000000000002.png"
    Image.fromarray(np.full((4, 4), 200, dtype=np.uint8), mode="L").save(raw)
    with pytest.raises(DatasetError, match="000000000002.png holds value 200"):
        convert_file(raw)
    assert not list(tmp_path.glob("*_labelTrainIds.png"))


def test_cli_prepare(coco_stuff_raw: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["prepare", "coco-stuff", str(coco_stuff_raw.parent), "--workers", "1"]) == 0
    assert "6 annotations converted" in capsys.readouterr().out


def test_cli_prepare_missing_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "annotations" / "train2017").mkdir(parents=True)
    assert main(["prepare", "coco-stuff", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "val2017 is missing" in err
