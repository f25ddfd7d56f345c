"""Crops resampled on the device equal Pillow's, pixel for pixel, and so do the runs built on them.

The reference is Pillow itself (``Image.resize``) and the worker path (torchvision's PIL transforms,
timm's evaluation transform), through real DataLoader workers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from probes.classification import runner
from probes.classification.pipeline import Preprocessing, device_crops
from probes.classification.pipeline.device_batches import DeviceBatches
from probes.classification.pipeline.device_crops import (
    DeviceCrops, EvalCropPlans, TrainCropPlans, collate_plans)
from probes.classification.pipeline.image_paths import crop_paths
from probes.classification.pipeline.images import ImageFiles, build_eval_transform, build_train_transform, collate
from probes.classification.pipeline.pil_resample import pass_order, pil_filter, resize_pil_exact
from probes.errors import ConfigError, DatasetError

CPU = torch.device("cpu")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _pillow(pixels: np.ndarray, size, interpolation: str) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize(size, pil_filter(interpolation)))


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_resize_equals_pillow_over_random_sizes(interpolation):
    rng = np.random.default_rng(7)
    images, sizes = [], []
    for _ in range(120):
        w, h = (int(v) for v in rng.integers(1, 160, 2))
        out = (int(rng.choice([w, rng.integers(1, 200)])), int(rng.choice([h, rng.integers(1, 200)])))
        images.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        sizes.append(out)
    for pixels, size in zip(images, sizes):
        ours = resize_pil_exact([torch.from_numpy(pixels)], size, interpolation)[0]
        np.testing.assert_array_equal(ours.permute(1, 2, 0).numpy(), _pillow(pixels, size, interpolation),
                                      err_msg=f"{pixels.shape[1]}x{pixels.shape[0]} -> {size}")
    # One batch of mixed sizes and both pass orders gives each image's own answer.
    batch = [torch.from_numpy(p) for p in images[:24]]
    for ours, pixels in zip(resize_pil_exact(batch, (61, 37), interpolation), images[:24]):
        np.testing.assert_array_equal(ours.permute(1, 2, 0).numpy(), _pillow(pixels, (61, 37), interpolation))


def test_the_pass_order_is_the_installed_pillows_and_matters():
    rule = pass_order()
    other = {"shrink-height-first": "horizontal-first", "horizontal-first": "shrink-height-first"}[rule]
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (300, 90, 3), dtype=np.uint8)   # height shrinks much more than width
    ref = _pillow(pixels, (80, 60), "bicubic")
    right = resize_pil_exact([torch.from_numpy(pixels)], (80, 60), rule=rule)[0].permute(1, 2, 0).numpy()
    wrong = resize_pil_exact([torch.from_numpy(pixels)], (80, 60), rule=other)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(right, ref)
    assert (wrong != ref).any()   # the order changes pixels, so a wrong guess would be caught


def write_images(folder: Path) -> List[Path]:
    """JPEG, PNG, grayscale and CMYK files of several shapes (portrait, landscape, tiny, large)."""
    rng = np.random.default_rng(0)
    shapes = [(500, 375), (375, 500), (333, 500), (40, 29), (640, 480), (97, 1000), (448, 448), (300, 120)]
    paths = []
    for i, (w, h) in enumerate(shapes):
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        img = img.convert(["RGB", "L", "CMYK", "RGB"][i % 4])
        path = folder / f"img_{i}.{'png' if i == 3 else 'JPEG'}"
        img.save(path)
        paths.append(path)
    return paths


def _uint8_batches(files, transform: Callable, collate_fn: Callable, hook, workers: int) -> torch.Tensor:
    torch.manual_seed(0)
    loader = DataLoader(ImageFiles(files, list(range(len(files))), transform), batch_size=3,
                        num_workers=workers, collate_fn=collate_fn)
    return torch.cat([(hook(b) if hook else b)["images"] for b in loader])


@pytest.mark.parametrize("kind,size,crop_pct", [("train", 448, None), ("train", 64, None),
                                                ("eval", 448, 1.0), ("eval", 56, 0.875)])
def test_device_crops_equal_worker_crops_through_a_dataloader(tmp_path, kind, size, crop_pct):
    files = write_images(tmp_path)
    if kind == "train":
        worker, plans = build_train_transform(size), TrainCropPlans(size)
    else:
        worker, plans = build_eval_transform(size, crop_pct=crop_pct), EvalCropPlans(size, crop_pct=crop_pct)
    for workers in (0, 1):   # in the main process, and packed in a worker's shared memory
        ref = _uint8_batches(files, worker, collate, None, workers)
        ours = _uint8_batches(files, plans, collate_plans, DeviceCrops(CPU), workers)
        assert ours.shape == ref.shape == (len(files), 3, size, size)
        assert torch.equal(ours, ref)


def test_device_batches_normalise_device_crops_like_worker_crops(tmp_path):
    files = write_images(tmp_path)
    torch.manual_seed(1)
    worker = ImageFiles(files, [0] * len(files), build_train_transform(32))
    ref = list(DeviceBatches([collate([worker[i] for i in range(len(files))])], CPU, MEAN, STD))
    torch.manual_seed(1)
    plans = ImageFiles(files, [0] * len(files), TrainCropPlans(32))
    ours = list(DeviceBatches([collate_plans([plans[i] for i in range(len(files))])], CPU, MEAN, STD,
                              decode=DeviceCrops(CPU)))
    assert torch.equal(ours[0]["images"], ref[0]["images"])
    assert ours[0]["images"].dtype == torch.float32


def test_a_corrupt_file_is_named_or_counted(tmp_path):
    files = write_images(tmp_path)[:3]
    bad = tmp_path / "broken.JPEG"
    bad.write_bytes(files[0].read_bytes()[:200])
    dataset = ImageFiles(files + [bad], [0] * 4, TrainCropPlans(32))
    host = collate_plans([dataset[i] for i in range(4)])
    with pytest.raises(DatasetError, match="broken.JPEG"):
        list(DeviceBatches([host], CPU, MEAN, STD, decode=DeviceCrops(CPU)))
    batches = DeviceBatches([host], CPU, MEAN, STD, on_corrupt="skip", decode=DeviceCrops(CPU))
    assert [len(b["images"]) for b in batches] == [3] and batches.n_skipped == 1


def test_a_padding_eval_crop_stays_in_the_workers_unless_device_is_demanded(tiny_cfg):
    with pytest.raises(ConfigError, match="crop_pct=1.25 pads.*data.crop_on='worker'"):
        EvalCropPlans(32, crop_pct=1.25)
    pre = Preprocessing(32, "bicubic", 1.25, MEAN, STD)
    cfg = tiny_cfg(data__crop_on="device")
    with pytest.raises(ConfigError, match="pads"):
        crop_paths(pre, cfg.train, cfg.data, CPU)
    paths = crop_paths(pre, cfg.train, tiny_cfg(data__crop_on="auto").data, CPU)
    assert paths.eval.collate is collate and paths.train.hook is None


def test_a_device_that_does_not_reproduce_pillow_is_refused(monkeypatch):
    real = device_crops.resize_pil_exact

    def off_by_one(*args):
        return real(*args).add_(1)

    monkeypatch.setattr(device_crops, "resize_pil_exact", off_by_one)
    monkeypatch.setattr(device_crops, "_CHECKED", {})
    with pytest.raises(ConfigError, match="do not reproduce Pillow.*data.crop_on='worker'"):
        DeviceCrops(CPU)


def test_a_run_with_device_crops_writes_the_worker_runs_rows(tiny_cfg, tmp_path, monkeypatch):
    kept = ("probe", "lr", "ema", "test_set", "n_images", "top1", "heldout_top1", "max_over_epochs_top1", "run_id")
    resampled = []
    real = DeviceCrops.__call__
    monkeypatch.setattr(DeviceCrops, "__call__", lambda self, host: resampled.append(1) or real(self, host))
    rows = {}
    for place in ("worker", "device"):
        cfg = tiny_cfg(data__crop_on=place, probe__lrs=[0.1], train__epochs=1,
                       runtime__out=str(tmp_path / place))
        rows[place] = [{k: r[k] for k in kept} for r in runner.run_classify(cfg)]
        assert bool(resampled) == (place == "device")   # training and every test set went through it
    # Per probe: the published head (raw) and the grid head at lr 0.1 (raw and EMA), on 6 sets.
    assert rows["device"] == rows["worker"] and len(rows["worker"]) == 2 * 3 * 6


def test_batches_split_by_pixels_give_the_same_images(tmp_path, monkeypatch):
    files = write_images(tmp_path)
    dataset = ImageFiles(files, [0] * len(files), EvalCropPlans(40))
    host = collate_plans([dataset[i] for i in range(len(files))])
    whole = DeviceCrops(CPU)(host)["images"]
    monkeypatch.setattr(device_crops, "CHUNK_PIXELS", 1)   # every image resampled on its own
    assert torch.equal(DeviceCrops(CPU)(host)["images"], whole)
    ref = ImageFiles(files, [0] * len(files), build_eval_transform(40))
    assert torch.equal(whole, collate([ref[i] for i in range(len(files))])["images"])
    # The evaluation crop ships only the inputs its weights read: never the whole landscape photo.
    assert [tuple(s) for s in host["shapes"].tolist()][4][1] < 640
