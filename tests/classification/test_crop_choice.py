"""data.crop_on='auto' decides by timing both crop paths on the run's device (timings stubbed: no GPU here)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from probes.classification.datasets import ImageSet
from probes.classification.pipeline import Preprocessing, device_crops, image_paths
from probes.classification.pipeline.image_paths import CropTiming, crop_place, time_crop_paths
from probes.classification.pipeline.device_crops import collate_plans
from probes.classification.pipeline.images import collate
from probes.errors import ConfigError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FAST_DEVICE = CropTiming(worker_s=0.020, plan_s=0.004, device_s=0.001, images=32)
SLOW_DEVICE = CropTiming(worker_s=0.020, plan_s=0.004, device_s=0.030, images=32)


def never_called() -> CropTiming:
    raise AssertionError("timed where it should not be")


def test_explicit_places_and_cpu_auto_are_never_timed():
    assert crop_place("worker", CUDA, never_called) == "worker"
    assert crop_place("device", CPU, never_called) == "device"
    assert crop_place("auto", CPU, never_called) == "worker"   # today's CPU behaviour, untimed
    with pytest.raises(ConfigError, match="data.crop_on is 'gpu'"):
        crop_place("gpu", CPU, never_called)


def test_auto_on_cuda_keeps_the_faster_path_and_logs_why(caplog):
    with caplog.at_level(logging.INFO, logger="probes.classification.pipeline.image_paths"):
        assert crop_place("auto", CUDA, lambda: FAST_DEVICE) == "device"
        assert crop_place("auto", CUDA, lambda: SLOW_DEVICE) == "worker"
    lines = [r.getMessage() for r in caplog.records]
    assert "worker path 20.00 ms/img vs device path 5.00 ms/img" in lines[0] and "on the device" in lines[0]
    assert "device path 34.00 ms/img" in lines[1] and "in the workers" in lines[1]
    # A tie is not a win: the device must cost less than the worker time it frees.
    assert CropTiming(0.02, 0.01, 0.01, 4).faster == "worker"


def test_auto_falls_back_to_workers_where_the_device_is_not_exact_or_nothing_was_timed(caplog):
    def inexact() -> CropTiming:
        raise ConfigError("float64 products on cuda do not reproduce Pillow's resize")

    assert crop_place("auto", CUDA, inexact) == "worker"
    assert crop_place("auto", CUDA, lambda: CropTiming(0.0, 0.0, 0.0, 0)) == "worker"
    assert "do not reproduce Pillow" in caplog.text


def _image_set(folder: Path, n: int = 12) -> ImageSet:
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        path = folder / f"img_{i}.JPEG"
        Image.fromarray(rng.integers(0, 256, (60 + 7 * i, 80, 3), dtype=np.uint8)).save(path)
        files.append(path)
    return ImageSet("train", folder, files, [0] * n)


def test_crop_paths_follow_the_timing_on_cuda(tiny_cfg, tmp_path, monkeypatch):
    images = _image_set(tmp_path)
    pre = Preprocessing(32, "bicubic", 1.0, MEAN, STD)
    cfg = tiny_cfg(data__crop_on="auto")
    seen = []

    def stub(sample, worker, on_device, device):
        seen.append((sample, worker.transform.transforms[0].size, on_device.collate, device))
        return timing

    class NoGpuCrops:   # stands in for DeviceCrops(cuda), which needs a GPU
        def __init__(self, device, interpolation):
            self.device = device

    monkeypatch.setattr(image_paths, "time_paths", stub)
    monkeypatch.setattr(device_crops, "DeviceCrops", NoGpuCrops)
    timing = SLOW_DEVICE
    paths = image_paths.crop_paths(pre, cfg.train, cfg.data, CUDA, sample=images)
    assert paths.train.collate is collate and paths.train.hook is None and paths.eval.hook is None
    timing = FAST_DEVICE
    paths = image_paths.crop_paths(pre, cfg.train, cfg.data, CUDA, sample=images)
    assert paths.train.collate is collate_plans and isinstance(paths.train.hook, NoGpuCrops)
    assert paths.eval.collate is collate_plans
    assert seen == [(images, (32, 32), collate_plans, CUDA)] * 2
    with pytest.raises(ValueError, match="needs sample images"):
        image_paths.crop_paths(pre, cfg.train, cfg.data, CUDA)


def test_the_timing_measures_both_paths_and_leaves_the_runs_crops_alone(tiny_cfg, tmp_path):
    images = _image_set(tmp_path)
    recipe = tiny_cfg().train
    torch.manual_seed(123)
    before = torch.get_rng_state()
    timing = time_crop_paths(images, 32, "bicubic", recipe, CPU, batch=4, timed_batches=2)
    assert torch.equal(torch.get_rng_state(), before)
    assert timing.images == 8   # 12 images: one warm-up batch of 4, two timed
    assert timing.worker_s > 0 and timing.plan_s > 0 and timing.device_s > 0
    # Each part is per image: the whole run of 12 images cannot take longer than the clock allowed.
    assert timing.worker_s < 5 and timing.device_s < 5


def test_timing_a_set_of_unreadable_files_counts_nothing(tiny_cfg, tmp_path):
    (tmp_path / "bad.JPEG").write_bytes(b"not a jpeg")
    bad = ImageSet("train", tmp_path, [tmp_path / "bad.JPEG"], [0])
    assert time_crop_paths(bad, 32, "bicubic", tiny_cfg().train, CPU).images == 0


def test_gpu_decoding_replaces_the_training_half_only(tiny_cfg, tmp_path):
    from probes.classification.pipeline.gpu_decode import EncodedFiles, TensorDecodeCrops, collate_encoded

    images = _image_set(tmp_path)
    pre = Preprocessing(32, "bicubic", 1.0, MEAN, STD)
    cfg = tiny_cfg(data__crop_on="worker", data__decode="gpu")
    paths = image_paths.crop_paths(pre, cfg.train, cfg.data, CUDA)   # builds objects only: no GPU touched
    assert paths.train.collate is collate_encoded and isinstance(paths.train.hook, TensorDecodeCrops)
    assert isinstance(paths.train_set(images), EncodedFiles)
    assert paths.eval.collate is collate and paths.eval.hook is None
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        image_paths.crop_paths(pre, cfg.train, cfg.data, CPU)
