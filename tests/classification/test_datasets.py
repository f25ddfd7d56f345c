"""Every layout is read as users unpack it, and every set's label rule holds on crafted cases."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from probes.classification import datasets as ds
from probes.classification import imagenet_info as info
from probes.classification.metrics import correct_mask, ranked_classes
from probes.testing.imagenet_data import shared_a_r_classes, write_imagenet_root
from probes.errors import ConfigError, DatasetError

CLASSES = shared_a_r_classes(3)
WNIDS = info.imagenet_wnids()


def _rgb(path: Path, size=(20, 16), mode="RGB", fmt="JPEG", color=(200, 30, 60)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).convert(mode).save(path, format=fmt)


# ------------------------------------------------------------------ IN-1K val layouts

@pytest.mark.parametrize("layout", ["wnid", "flat_txt", "flat_csv"])
def test_val_layouts_give_the_same_labels(tmp_path, layout):
    written = write_imagenet_root(tmp_path, CLASSES, val_per_class=2, val_layout=layout, sets=("val",))
    val = ds.read_val(tmp_path / "val", tmp_path, allow_subset=True)
    got = {p.name: t for p, t in zip(val.files, val.targets)}
    assert got == written["val"]


def test_val_txt_index_is_sorted_wnid_order_not_devkit_id(tmp_path):
    # val.txt gives sorted-wnid indices; the file name holds no class at all.
    (tmp_path / "val").mkdir()
    _rgb(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    (tmp_path / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG 65\n")
    val = ds.read_val(tmp_path / "val", tmp_path, allow_subset=True)
    assert val.targets == [65]


def test_flat_val_image_missing_from_label_file_is_an_error(tmp_path):
    write_imagenet_root(tmp_path, CLASSES, val_layout="flat_txt", sets=("val",))
    _rgb(tmp_path / "val" / "ILSVRC2012_val_00000999.JPEG")
    with pytest.raises(DatasetError, match="ILSVRC2012_val_00000999"):
        ds.read_val(tmp_path / "val", tmp_path, allow_subset=True)


def test_flat_val_without_label_file_is_an_error(tmp_path):
    (tmp_path / "val").mkdir()
    _rgb(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DatasetError, match="val.txt"):
        ds.read_val(tmp_path / "val", tmp_path, allow_subset=True)


# ------------------------------------------------------------------ IN-ReaL

def test_real_matches_by_file_name_and_skips_empty_lists(tmp_path):
    cls = CLASSES[0]
    (tmp_path / "val" / WNIDS[cls]).mkdir(parents=True)
    # Loader order (sorted names) is 7, 9, 12; ReaL entries are looked up by the number in the name.
    for n in (12, 7, 9):
        _rgb(tmp_path / "val" / WNIDS[cls] / f"ILSVRC2012_val_{n:08d}.JPEG")
    real = [[] for _ in range(50_000)]
    real[7 - 1] = []             # empty: not scored
    real[9 - 1] = [cls, 5]
    real[12 - 1] = [5]           # ReaL disagrees with the original label
    (tmp_path / "real.json").write_text(json.dumps(real))
    sets = ds.load_test_sets(tmp_path, {"IN-1K": "val", "IN-ReaL": "real.json"}, ["IN-1K", "IN-ReaL"],
                             allow_subset=True)
    (val,) = sets
    assert val.scores == ("IN-1K", "IN-ReaL")
    assert [p.name[15:23] for p in val.files] == ["00000007", "00000009", "00000012"]
    assert val.n_scored("IN-ReaL") == 2 and val.n_scored("IN-1K") == 3
    logits = torch.zeros(3, 1000)
    logits[:, 5] = 1.0  # predict class 5 everywhere
    idx = torch.arange(3)
    assert correct_and_counted(logits, idx, val, "IN-ReaL") == (2, 2)   # 5 is in both non-empty lists
    assert correct_and_counted(logits, idx, val, "IN-1K") == (0, 3)


def test_real_json_of_wrong_length_is_an_error(tmp_path):
    path = tmp_path / "real.json"
    path.write_text(json.dumps([[1]] * 10))
    with pytest.raises(DatasetError, match="real.json"):
        ds.load_real_labels(path)


def test_missing_real_json_falls_back_to_timm_copy(tmp_path):
    assert ds.load_real_labels(tmp_path / "nope.json") == info.bundled_real_labels()


# ------------------------------------------------------------------ IN-V2

def test_v2_folder_name_is_the_class_index_not_string_order(tmp_path):
    for folder in ("2", "10", "100"):
        _rgb(tmp_path / folder / "a.jpeg")
    v2 = ds.read_v2(tmp_path, allow_subset=True)
    got = {p.parent.name: t for p, t in zip(v2.files, v2.targets)}
    # Not string order (a plain ImageFolder would give 10 -> 0, 100 -> 1, 2 -> 2).
    assert got == {"2": 2, "10": 10, "100": 100}


def test_v2_wnid_folders_also_work(tmp_path):
    write_imagenet_root(tmp_path, CLASSES, v2_layout="wnid", sets=("v2",))
    v2 = ds.read_v2(tmp_path / "imagenetv2-matched-frequency-format-val", allow_subset=True)
    assert sorted(set(v2.targets)) == sorted(CLASSES)


def test_v2_folder_outside_0_999_is_an_error(tmp_path):
    _rgb(tmp_path / "1000" / "a.jpeg")
    with pytest.raises(DatasetError, match="1000"):
        ds.read_v2(tmp_path, allow_subset=True)


# ------------------------------------------------------------------ IN-A / IN-R

def test_in_a_label_is_the_folder_never_the_lying_file_name(data_root):
    ina = ds.read_restricted("IN-A", data_root / "imagenet-a", allow_subset=True)
    for path, target in zip(ina.files, ina.targets):
        assert WNIDS[target] == path.parent.name
        assert WNIDS[target] not in path.name  # the name holds another (wrong) wnid
    assert all(p.name != "README.txt" for p in ina.files)


@pytest.mark.parametrize("name", ["IN-A", "IN-R"])
def test_restricted_sets_argmax_over_their_200_logits_only(tmp_path, name):
    subset = info.imagenet_a_indices() if name == "IN-A" else info.imagenet_r_indices()
    true_cls = subset[3]
    outside = next(i for i in range(1000) if i not in subset)
    _rgb(tmp_path / WNIDS[true_cls] / "x.jpg")
    image_set = ds.read_restricted(name, tmp_path, allow_subset=True)
    logits = torch.zeros(1, 1000)
    logits[0, outside] = 10.0    # the 1000-way argmax is a class the set does not have
    logits[0, true_cls] = 5.0
    assert correct_and_counted(logits, torch.tensor([0]), image_set, name) == (1, 1)
    plain = ds.ImageSet("plain", tmp_path, image_set.files, image_set.targets)
    assert correct_and_counted(logits, torch.tensor([0]), plain, "plain") == (0, 1)


def test_in_a_and_in_r_restrict_to_different_classes(tmp_path):
    only_r = next(i for i in info.imagenet_r_indices() if i not in info.imagenet_a_indices())
    _rgb(tmp_path / "r" / WNIDS[only_r] / "x.jpg")
    assert ds.read_restricted("IN-R", tmp_path / "r", allow_subset=True).targets == [only_r]
    _rgb(tmp_path / "a" / WNIDS[only_r] / "x.jpg")
    with pytest.raises(DatasetError, match="IN-A"):  # not one of IN-A's 200 classes
        ds.read_restricted("IN-A", tmp_path / "a", allow_subset=True)


def test_every_wrong_class_folder_is_named_at_once(tmp_path):
    only_r = [i for i in info.imagenet_r_indices() if i not in info.imagenet_a_indices()][:3]
    _rgb(tmp_path / WNIDS[info.imagenet_a_indices()[0]] / "x.jpg")
    for i in only_r:
        _rgb(tmp_path / WNIDS[i] / "x.jpg")
    with pytest.raises(DatasetError) as err:
        ds.read_restricted("IN-A", tmp_path, allow_subset=True)
    message = str(err.value)
    assert "3 folder(s)" in message and all(WNIDS[i] in message for i in only_r)
    assert "probes classes IN-A" in message and "\n" not in message


def test_probes_classes_lists_the_200_wnids(capsys):
    from probes.cli import main

    assert main(["classes", "IN-R"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == [WNIDS[i] for i in info.imagenet_r_indices()]


# ------------------------------------------------------------------ bad input

def test_missing_set_is_skipped_with_a_warning(tmp_path, caplog):
    write_imagenet_root(tmp_path, CLASSES, sets=("val", "sketch"))
    paths = {"IN-1K": "val", "IN-ReaL": "real.json", "IN-V2": "v2", "IN-A": "imagenet-a",
             "IN-R": "imagenet-r", "IN-Sketch": "sketch"}
    with caplog.at_level(logging.WARNING):
        sets = ds.load_test_sets(tmp_path, paths, ["IN-1K", "IN-V2", "IN-Sketch"], allow_subset=True)
    assert [s.name for s in sets] == ["IN-1K", "IN-Sketch"]
    assert "IN-V2" in caplog.text and "skipping" in caplog.text


def test_partial_set_is_an_error_naming_set_and_count(data_root):
    with pytest.raises(DatasetError, match=r"IN-Sketch .* partial: 4 images in 4 classes instead of 50889"):
        ds.read_sketch(data_root / "sketch", allow_subset=False)
    assert ds.read_sketch(data_root / "sketch", allow_subset=True).subset == {"IN-Sketch": True}


def test_a_full_sized_set_is_not_a_subset(tmp_path):
    # The partial check compares with the real counts; a set that has them is complete.
    full = ds.FullSize(images=3, classes=3)
    assert ds.check_complete("IN-V2", tmp_path, 3, 3, allow_subset=False, full=full) is False
    with pytest.raises(DatasetError, match="partial: 2 images"):
        ds.check_complete("IN-V2", tmp_path, 2, 2, allow_subset=False, full=full)


def test_wrong_class_count_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="201 classes"):
        ds.check_complete("IN-A", tmp_path, 7500, 201, allow_subset=True)
    _rgb(tmp_path / "sketch" / "n99999999" / "x.JPEG")
    with pytest.raises(DatasetError, match="n99999999"):
        ds.read_sketch(tmp_path / "sketch", allow_subset=True)


def test_unknown_test_set_name_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="IN-C"):
        ds.load_test_sets(tmp_path, {}, ["IN-C"], allow_subset=True)


def test_missing_train_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="train"):
        ds.read_train(tmp_path / "train", allow_subset=True)


def correct_and_counted(logits, indices, image_set, score):
    """(correct, scored) of a batch under the set's rule."""
    correct, scored = correct_mask(ranked_classes(logits, image_set.class_subset)[:, 0], indices, image_set, score)
    return int((correct & scored).sum()), int(scored.sum())


def test_heldout_split_takes_at_most_a_fifth_of_a_class(tmp_path):
    image = tmp_path / "x.JPEG"
    _rgb(image)
    files = [image] * 12 + [image] * 3 + [image] * 60
    targets = [0] * 12 + [1] * 3 + [2] * 60
    full = ds.ImageSet("train", tmp_path, files, targets, subset={"train": True})
    train, held = ds.split_heldout(full, per_class=10, seed=0)
    held_per_class = {c: held.targets.count(c) for c in (0, 1, 2)}
    assert held_per_class == {0: 2, 1: 1, 2: 10}   # 20% of 12 -> 2, at least 1, at most 10


def test_a_train_set_smaller_than_one_batch_says_so(tiny_cfg):
    from probes.classification import runner

    # The held-out images train the published heads too: every training image counts.
    with pytest.raises(DatasetError, match=r"has 19 training images, fewer than one batch of 64"):
        runner.run_classify(tiny_cfg(train__batch_size=64, cache__batch_size=64))


def test_the_training_set_is_every_image_with_the_held_out_ones_flagged(data_root):
    full = ds.read_train(data_root / "train", allow_subset=True)
    train, held = ds.split_heldout(full, per_class=10, seed=0)
    merged, flags = ds.with_heldout(train, held)
    assert sorted(map(str, merged.files)) == sorted(map(str, full.files)) and len(flags) == len(full)
    assert {str(f) for f, h in zip(merged.files, flags) if h} == {str(f) for f in held.files}
    assert [merged.targets[i] for i in range(len(merged))] == \
        [dict(zip(map(str, full.files), full.targets))[str(f)] for f in merged.files]


def test_heldout_split_is_disjoint_seeded_and_per_class(data_root):
    full = ds.read_train(data_root / "train", allow_subset=True)
    train, held = ds.split_heldout(full, per_class=1, seed=0)
    assert not set(train.files) & set(held.files)
    assert len(train) + len(held) == len(full)
    assert sorted(held.targets) == sorted(set(full.targets))
    again, _ = ds.split_heldout(full, per_class=1, seed=0)
    assert again.files == train.files
    limited, _ = ds.split_heldout(full, per_class=1, seed=0, train_per_class=1)
    assert len(limited) == len(set(full.targets))
