"""uint8 worker batches normalised on the device equal the old worker-normalised float batches.

The reference is the pipeline before DeviceBatches, built here from PIL and torchvision alone:
PIL decode, PIL crop, ToTensor, Normalize in the worker, torch.stack. The device path must give the same tensors for
the same seed, with and without Mixup/CutMix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import Mixup
from torchvision import transforms as T

from probes.classification.pipeline.batch_memory import BufferPool
from probes.classification.pipeline.device_batches import DeviceBatches, normalize_on_device
from probes.classification.pipeline.normalisation import PixelTable
from probes.classification.pipeline.images import (
    ImageFiles, build_eval_transform, build_train_transform, collate)
from probes.errors import DatasetError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIZE = 24
BICUBIC = T.InterpolationMode.BICUBIC
CPU = torch.device("cpu")


def reference_transform(kind: str) -> Callable:
    """The worker transforms before this change: crop, ToTensor, Normalize."""
    crop = ([T.RandomResizedCrop(SIZE, interpolation=BICUBIC), T.RandomHorizontalFlip()] if kind == "train"
            else [T.Resize(SIZE, interpolation=BICUBIC), T.CenterCrop(SIZE)])
    return T.Compose(crop + [T.ToTensor(), T.Normalize(MEAN, STD)])


def uint8_transform(kind: str) -> Callable:
    return build_train_transform(SIZE) if kind == "train" else build_eval_transform(SIZE, crop_pct=1.0)


def write_jpegs(folder: Path, mode: str, n: int = 4) -> List[Path]:
    """Noise JPEGs of several shapes (portrait and landscape) saved in ``mode``."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        w, h = (37 + 9 * i, 29) if i % 2 else (29, 41 + 5 * i)
        path = folder / f"{mode}_{i}.JPEG"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode).save(path)
        paths.append(path)
    return paths


def host_batches(files: List[Path], transform: Callable, batch_size: int, seed: int = 0) -> list:
    torch.manual_seed(seed)
    dataset = ImageFiles(files, list(range(len(files))), transform)
    return [collate([dataset[i] for i in range(s, min(s + batch_size, len(files)))])
            for s in range(0, len(files), batch_size)]


def pil_decode(path: Path) -> Image.Image:
    """The decoder before this change."""
    with Image.open(path) as img:
        return img.convert("RGB")


def reference_images(files: List[Path], kind: str, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    dataset = ImageFiles(files, list(range(len(files))), reference_transform(kind), decode=pil_decode)
    return torch.stack([dataset[i][0] for i in range(len(files))])


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("kind", ["train", "eval"])
def test_device_normalised_batches_equal_worker_normalised_ones(tmp_path, kind, mode):
    files = write_jpegs(tmp_path, mode)
    expected = reference_images(files, kind)
    batches = list(DeviceBatches(host_batches(files, uint8_transform(kind), 2), CPU, MEAN, STD))
    got = torch.cat([b["images"] for b in batches])
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-6
    assert torch.equal(got, expected)  # the same float32 operations: bit for bit in fact


@pytest.mark.parametrize("alphas", [(0.8, 0.0), (0.0, 1.0)], ids=["mixup", "cutmix"])
def test_mixup_on_device_batches_equals_mixup_of_the_reference(tmp_path, alphas):
    files = write_jpegs(tmp_path, "RGB")
    targets = torch.arange(len(files))

    def mixup() -> Mixup:
        return Mixup(mixup_alpha=alphas[0], cutmix_alpha=alphas[1], label_smoothing=0.1, num_classes=10)

    np.random.seed(3)
    want_images, want_targets = mixup()(reference_images(files, "train"), targets)
    np.random.seed(3)
    batches = list(DeviceBatches(host_batches(files, uint8_transform("train"), len(files)), CPU, MEAN, STD,
                                 mixup=mixup()))
    assert len(batches) == 1
    assert (batches[0]["images"] - want_images).abs().max().item() <= 1e-6
    assert torch.equal(batches[0]["images"], want_images)  # mixed after normalising, as the reference
    assert torch.allclose(batches[0]["targets"], want_targets, rtol=0, atol=1e-6)
    assert not torch.equal(want_images, reference_images(files, "train"))  # the mix did something


def _every_value_per_channel(n: int = 2, h: int = 16, w: int = 17) -> torch.Tensor:
    """uint8 NCHW whose every channel holds all 256 values (odd sizes: vector loops and their tails)."""
    g = torch.Generator().manual_seed(0)
    flat = torch.stack([torch.arange(n * h * w)[torch.randperm(n * h * w, generator=g)] % 256 for _ in range(3)])
    return flat.view(3, n, h, w).permute(1, 0, 2, 3).contiguous().to(torch.uint8)


try:
    import cv2  # noqa: F401
    BACKENDS = [False, True]
except ImportError:   # OpenCV comes with the seg extra: without it only numpy's look-up exists
    BACKENDS = [False]


@pytest.mark.parametrize("use_opencv", BACKENDS, ids=lambda v: "opencv" if v else "numpy")
@pytest.mark.parametrize("mean,std", [(MEAN, STD), ((0.48145466, 0.4578275, 0.40821073),
                                                    (0.26862954, 0.26130258, 0.27577711)),
                                      ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))], ids=["imagenet", "clip", "half"])
def test_the_table_gives_every_value_of_totensor_normalize_bit_for_bit(mean, std, use_opencv):
    images = _every_value_per_channel()
    want = torch.stack([T.Normalize(mean, std)(T.ToTensor()(Image.fromarray(img.permute(1, 2, 0).numpy())))
                        for img in images])
    table = PixelTable(mean, std, use_opencv=use_opencv)
    assert table.backend == ("cv2.LUT" if use_opencv else "numpy.take")
    assert torch.equal(table(images, torch.empty(images.shape)), want)
    strided = images.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)         # NCHW view of NHWC memory
    assert torch.equal(table(strided, torch.empty(images.shape)), want)
    last = torch.empty(images.shape).contiguous(memory_format=torch.channels_last)
    assert torch.equal(table(images, last), want)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    assert torch.equal(normalize_on_device(images, m, s), want)   # the arithmetic CUDA keeps, alike
    host = [{"images": images, "targets": torch.zeros(2), "indices": torch.arange(2), "errors": []}]
    assert torch.equal(next(iter(DeviceBatches(host, CPU, mean, std)))["images"], want)


@pytest.mark.parametrize("use_opencv", BACKENDS, ids=lambda v: "opencv" if v else "numpy")
def test_planes_above_opencvs_threading_size_are_looked_up_whole(use_opencv):
    images = torch.arange(600 * 500, dtype=torch.int64).remainder(253).to(torch.uint8).view(1, 1, 600, 500)
    m, s = torch.tensor(MEAN[:1]).view(1, 1, 1, 1), torch.tensor(STD[:1]).view(1, 1, 1, 1)
    got = PixelTable(MEAN[:1], STD[:1], use_opencv=use_opencv)(images, torch.empty(images.shape))
    assert torch.equal(got, normalize_on_device(images, m, s))   # 300,000 pixels: fed in row blocks


def test_a_table_refuses_what_it_cannot_normalise():
    table = PixelTable(MEAN, STD)
    with pytest.raises(ValueError, match="uint8 NCHW with 3 channels"):
        table(torch.zeros(1, 4, 2, 2, dtype=torch.uint8), torch.empty(1, 4, 2, 2))
    with pytest.raises(ValueError, match="out is torch.float64"):
        table(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), torch.empty(1, 3, 2, 2, dtype=torch.float64))


def test_reused_memory_still_gives_each_batch_its_own_values():
    batches = [{"images": torch.roll(_every_value_per_channel(), i, dims=-1), "targets": torch.zeros(2),
                "indices": torch.arange(2), "errors": []} for i in range(5)]
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    pointers = []
    # Each batch is checked after the next one was staged (one ahead), then dropped.
    for host, out in zip(batches, DeviceBatches(batches, CPU, MEAN, STD)):
        assert torch.equal(out["images"], normalize_on_device(host["images"], m, s))
        pointers.append(out["images"].data_ptr())
        del out
    assert len(set(pointers)) < len(pointers)   # the pool did hand memory out again


def test_every_batch_comes_out_once_in_order(tmp_path):
    files = write_jpegs(tmp_path, "RGB", n=5)
    batches = list(DeviceBatches(host_batches(files, uint8_transform("eval"), 2), CPU, MEAN, STD))
    assert [b["indices"].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert [b["targets"].tolist() for b in batches] == [[0, 1], [2, 3], [4]]


def test_mixup_drops_the_odd_image_out(tmp_path):
    files = write_jpegs(tmp_path, "RGB", n=3)
    mix = Mixup(mixup_alpha=0.8, num_classes=10)
    batches = list(DeviceBatches(host_batches(files, uint8_transform("train"), 3), CPU, MEAN, STD, mixup=mix))
    assert batches[0]["images"].shape[0] == 2 and batches[0]["targets"].shape == (2, 10)


def test_batches_below_the_minimum_are_left_out(tmp_path):
    files = write_jpegs(tmp_path, "RGB", n=3)
    batches = list(DeviceBatches(host_batches(files, uint8_transform("eval"), 2), CPU, MEAN, STD, min_images=2))
    assert [b["indices"].tolist() for b in batches] == [[0, 1]]


def test_channels_last_changes_the_layout_not_the_values():
    images = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    dense = normalize_on_device(images, mean, std)
    last = normalize_on_device(images, mean, std, channels_last=True)
    assert last.is_contiguous(memory_format=torch.channels_last) and dense.is_contiguous()
    assert torch.equal(dense, last)


def _with_corrupt_file(tmp_path: Path) -> List[Path]:
    files = write_jpegs(tmp_path, "RGB", n=3)
    files[1].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return files


def test_corrupt_file_stops_the_run_naming_it(tmp_path):
    files = _with_corrupt_file(tmp_path)
    with pytest.raises(DatasetError, match=files[1].name):
        list(DeviceBatches(host_batches(files, uint8_transform("eval"), 3), CPU, MEAN, STD))


def test_skipped_corrupt_file_is_counted_and_left_out(tmp_path):
    files = _with_corrupt_file(tmp_path)
    batches = DeviceBatches(host_batches(files, uint8_transform("eval"), 3), CPU, MEAN, STD, on_corrupt="skip")
    assert [b["indices"].tolist() for b in batches] == [[0, 2]]
    assert batches.n_skipped == 1


def test_passes_given_one_pool_reuse_each_others_memory():
    host = [{"images": _every_value_per_channel(), "targets": torch.zeros(2), "indices": torch.arange(2),
             "errors": []}]
    pool = BufferPool()
    first = [b["images"].data_ptr() for b in DeviceBatches(host, CPU, MEAN, STD, pool=pool)]
    second = [b["images"].data_ptr() for b in DeviceBatches(host, CPU, MEAN, STD, pool=pool)]
    assert first == second   # the next epoch starts in the memory the last one left
