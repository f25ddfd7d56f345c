"""Per-image side files: both kinds round-trip, stay small, and a broken file is named in one line."""
from __future__ import annotations

import numpy as np
import pytest

from probes.sidefiles import (HeadPredictions, RealLabels, SetPredictions, SideFileError,
                              read_classification_predictions, read_segmentation_counts,
                              write_classification_predictions, write_segmentation_counts)


def _head(rng, n, labels=None):
    top5 = rng.integers(0, 1000, size=(n, 5)).astype(np.int16)
    if labels is not None:
        top5[:, 0] = np.where(rng.random(n) < 0.8, labels, top5[:, 0])
        return HeadPredictions(top5, top5[:, 0] == labels)
    return HeadPredictions(top5, rng.random(n) < 0.5)


def _sets():
    rng = np.random.default_rng(0)
    labels = np.array([3, 999, 0, 42])
    real = RealLabels.from_lists([(3, 7), (), (0,), (42, 41, 40)])
    return {
        # ids deliberately unsorted, with a non-ASCII name; they come back sorted by id
        "IN-A": SetPredictions(np.array(["n2/b.jpg", "n1/é.jpg", "n1/a.jpg", "n3/c.jpg"]), labels,
                               {"linear_lr0.1_raw": _head(rng, 4, labels),
                                "attention_pooling_lr0.1_ema": _head(rng, 4, labels)}),
        "IN-ReaL": SetPredictions(np.array([f"ILSVRC2012_val_{i:08d}.JPEG" for i in (4, 3, 2, 1)]), None,
                                  {"linear_lr0.1_raw": _head(rng, 4)}, real_sets=real),
    }


def _assert_same(got: SetPredictions, want: SetPredictions):
    assert got.ids.tolist() == want.ids.tolist()
    if want.labels is None:
        assert got.labels is None and got.real_sets.to_lists() == want.real_sets.to_lists()
    else:
        assert got.labels.tolist() == want.labels.tolist()
    assert list(got.heads) == list(want.heads)
    for key, head in want.heads.items():
        assert got.heads[key].top5.dtype == np.int16
        np.testing.assert_array_equal(got.heads[key].top5, head.top5)
        np.testing.assert_array_equal(got.heads[key].correct, head.correct)


def test_classification_predictions_round_trip_sorted_by_id(tmp_path):
    sets = _sets()
    path = write_classification_predictions(tmp_path / "run" / "predictions.npz", sets)
    back = read_classification_predictions(path)
    assert list(back) == ["IN-A", "IN-ReaL"]
    for name, preds in sets.items():
        _assert_same(back[name], preds.sorted_by_id())
    assert back["IN-A"].ids.tolist() == ["n1/a.jpg", "n1/é.jpg", "n2/b.jpg", "n3/c.jpg"]


def test_real_label_sets_keep_empty_sets_as_not_scored(tmp_path):
    path = write_classification_predictions(tmp_path / "p.npz", _sets())
    real = read_classification_predictions(path)["IN-ReaL"]
    # sorted ids: val_1 (42,41,40), val_2 (0,), val_3 (), val_4 (3,7)
    assert real.real_sets.to_lists() == [(42, 41, 40), (0,), (), (3, 7)]
    assert real.scored().tolist() == [True, True, False, True]
    assert len(real.scored_correct("linear_lr0.1_raw")[1]) == 3


def test_segmentation_counts_round_trip_with_whole_set_class_iou(tmp_path):
    ids = ["val_2.png", "val_1.png"]
    intersect = np.array([[2, 0, 0], [3, 1, 0]])
    union = np.array([[4, 1, 0], [6, 1, 0]])
    label = np.array([[3, 0, 0], [5, 1, 0]])
    path = write_segmentation_counts(tmp_path / "seg.npz", ids, intersect, union, label, ["wall", "sky", "tree"])
    back = read_segmentation_counts(path)
    assert back.ids.tolist() == ["val_1.png", "val_2.png"] and back.class_names == ("wall", "sky", "tree")
    np.testing.assert_array_equal(back.intersect, intersect[::-1])
    np.testing.assert_array_equal(back.union, union[::-1])
    np.testing.assert_array_equal(back.label_area, label[::-1])
    assert back.intersect.dtype == np.int64
    np.testing.assert_array_equal(back.class_iou, [50.0, 50.0, np.nan])


def test_truncated_file_gives_one_line_error_naming_it(tmp_path):
    path = write_classification_predictions(tmp_path / "p.npz", _sets())
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SideFileError) as error:
        read_classification_predictions(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_missing_key_is_named(tmp_path):
    path = write_classification_predictions(tmp_path / "p.npz", _sets())
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "IN-A/head/linear_lr0.1_raw/correct"}
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(SideFileError, match=r"p\.npz: missing key 'IN-A/head/linear_lr0\.1_raw/correct'"):
        read_classification_predictions(path)


def test_segmentation_file_is_not_read_as_classification(tmp_path):
    path = write_segmentation_counts(tmp_path / "seg.npz", ["a"], np.ones((1, 2)), np.ones((1, 2)),
                                     np.ones((1, 2)), ["x", "y"])
    with pytest.raises(SideFileError, match="not a probes.classification_predictions file"):
        read_classification_predictions(path)
    with pytest.raises(SideFileError, match="does not exist"):
        read_segmentation_counts(tmp_path / "missing.npz")


def test_size_of_a_real_run_stays_in_the_tens_of_megabytes(tmp_path):
    # 20,000 ImageNet-like images with 4 heads, extrapolated to the ~208k images of a run
    # (IN-1K and IN-ReaL 50k each, V2 10k, A 7.5k, R 30k, Sketch 50.9k, held-out 10k).
    rng = np.random.default_rng(0)
    n = 20_000
    labels = rng.integers(0, 1000, n)
    ids = np.array([f"n{label:08d}/ILSVRC2012_val_{i:08d}.JPEG" for i, label in enumerate(labels)])
    heads = {f"{probe}_lr0.1_{ema}": _head(rng, n, labels)
             for probe in ("linear", "attention_pooling") for ema in ("raw", "ema")}
    path = write_classification_predictions(tmp_path / "p.npz", {"IN-1K": SetPredictions(ids, labels, heads)})
    assert path.stat().st_size / n * 208_000 < 40e6
