"""Shared memory lent to DataLoader workers: the same batches as fresh memory, and a slot is never rewritten
while the main process has not read it."""
from __future__ import annotations

import multiprocessing
from functools import partial
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from probes.classification.pipeline.batch_memory import BatchRing, LentBatch
from probes.classification.pipeline.device_batches import DeviceBatches
from probes.classification.pipeline.images import ImageFiles, build_eval_transform, collate
from probes.classification.pipeline.loaders import ring_for

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIZE, BATCH = 16, 2


def _images(folder: Path, n: int) -> ImageFiles:
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        path = folder / f"img_{i}.png"
        Image.fromarray(rng.integers(0, 256, (20 + i % 3, 18, 3), dtype=np.uint8)).save(path)
        files.append(path)
    return ImageFiles(files, list(range(n)), build_eval_transform(SIZE, crop_pct=1.0))


def _expected(dataset: ImageFiles) -> List[torch.Tensor]:
    """Each batch's uint8 pixels, collated in this process into fresh memory."""
    return [collate([dataset[i] for i in range(s, min(s + BATCH, len(dataset)))])["images"]
            for s in range(0, len(dataset), BATCH)]


def _loader(dataset, ring, workers: int = 2, prefetch: int = 2, **kw) -> DataLoader:
    return DataLoader(dataset, batch_size=BATCH, num_workers=workers, prefetch_factor=prefetch,
                      collate_fn=partial(collate, ring=ring), **kw)


def test_device_batches_through_lent_slots_equal_those_through_fresh_memory(tmp_path):
    dataset = _images(tmp_path, 9)
    ring = ring_for(BATCH, SIZE, workers=2, prefetch=2)
    lent = [b["images"].clone() for b in DeviceBatches(_loader(dataset, ring), torch.device("cpu"), MEAN, STD)]
    fresh = [b["images"].clone() for b in DeviceBatches(_loader(dataset, None), torch.device("cpu"), MEAN, STD)]
    assert len(lent) == len(fresh) == 5 and all(torch.equal(a, b) for a, b in zip(lent, fresh))
    counts = ring.counts()
    assert counts["lent"] == 5 and counts["fresh"] == 0 and counts["out"] == 0   # every slot came back


def test_a_slot_is_not_rewritten_while_its_batch_is_unread(tmp_path):
    dataset = _images(tmp_path, 14)
    expected = _expected(dataset)
    ring = BatchRing(2, BATCH * 3 * SIZE * SIZE)   # fewer slots than batches in flight: some take fresh memory
    held = None
    for k, batch in enumerate(_loader(dataset, ring, workers=2, prefetch=2)):
        images = batch["images"]
        if k == 0:
            assert isinstance(images, LentBatch)
            held = images          # not read: its slot stays lent while the other 6 batches go through
            continue
        if isinstance(images, LentBatch):
            with images.borrowed() as pixels:
                assert torch.equal(pixels, expected[k])
        else:
            assert torch.equal(images, expected[k])
    counts = ring.counts()
    assert counts["fresh"] > 0 and counts["lent"] >= 2 and counts["out"] == 1
    with held.borrowed() as pixels:
        assert torch.equal(pixels, expected[0])
    assert ring.counts()["out"] == 0
    with pytest.raises(RuntimeError, match="read already"):
        held.view


def test_a_pass_left_early_frees_what_it_received_and_the_next_pass_is_whole(tmp_path):
    dataset = _images(tmp_path, 10)
    expected = _expected(dataset)
    ring = ring_for(BATCH, SIZE, workers=2, prefetch=2)
    loader = _loader(dataset, ring)
    for k, batch in enumerate(loader):
        if k == 1:
            break   # the batches received and dropped unread free their slots
    del batch
    got = [b["images"] for b in DeviceBatches(loader, torch.device("cpu"), MEAN, STD)]
    again = [b["images"] for b in DeviceBatches(_loader(dataset, None), torch.device("cpu"), MEAN, STD)]
    assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, again))


def test_batches_below_the_minimum_give_their_slot_back(tmp_path):
    dataset = _images(tmp_path, 5)   # the last batch holds one image
    ring = ring_for(BATCH, SIZE, workers=1, prefetch=2)
    out = list(DeviceBatches(_loader(dataset, ring, workers=1), torch.device("cpu"), MEAN, STD, min_images=2))
    assert len(out) == 2 and ring.counts() == {"lent": 3, "fresh": 0, "out": 0}


def test_without_workers_and_for_batches_too_large_the_memory_is_fresh(tmp_path):
    dataset = _images(tmp_path, 4)
    ring = BatchRing(4, 3 * SIZE * SIZE)   # room for one image: a batch of two does not fit
    in_process = [b["images"] for b in _loader(dataset, ring, workers=0, prefetch=None)]
    assert all(isinstance(t, torch.Tensor) for t in in_process) and ring.counts()["lent"] == 0
    from_workers = [b["images"] for b in _loader(dataset, ring, workers=1)]
    assert all(isinstance(t, torch.Tensor) for t in from_workers) and ring.counts()["fresh"] == 2


def test_a_slot_cannot_be_given_back_twice_or_unlent():
    ring = BatchRing(1, 8)
    with pytest.raises(RuntimeError, match="not lent"):
        ring.give_back(0)
    with pytest.raises(ValueError, match="at least one slot"):
        BatchRing(0, 8)


@pytest.mark.parametrize("context", ["spawn"])
def test_workers_started_by_spawn_write_into_the_same_slots(tmp_path, context):
    dataset = _images(tmp_path, 4)
    ring = ring_for(BATCH, SIZE, workers=1, prefetch=2, context=multiprocessing.get_context(context))
    got = [b["images"] for b in DeviceBatches(_loader(dataset, ring, workers=1, multiprocessing_context=context),
                                              torch.device("cpu"), MEAN, STD)]
    want = [b["images"] for b in DeviceBatches(_loader(dataset, None), torch.device("cpu"), MEAN, STD)]
    assert all(torch.equal(a, b) for a, b in zip(got, want)) and ring.counts()["lent"] == 2


def test_a_pinning_loader_copies_the_slot_out_and_frees_it(tmp_path, monkeypatch):
    from torch.utils.data._utils.pin_memory import pin_memory as pin_batch

    # No accelerator here: stand a copy in for page-locking; what is checked is who copies and frees.
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a, **k: self.clone())
    dataset = _images(tmp_path, 2)
    ring = ring_for(BATCH, SIZE, workers=1, prefetch=2)
    (batch,) = list(_loader(dataset, ring, workers=1))
    pinned = pin_batch(batch)
    assert isinstance(pinned["images"], torch.Tensor) and torch.equal(pinned["images"], _expected(dataset)[0])
    assert ring.counts()["out"] == 0


class _BlocksSeen(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple:
        return Image.core.get_blocks_max(), Image.core.get_block_size()


def test_run_loader_workers_let_pillow_keep_a_batch_of_blocks(monkeypatch):
    from probes.classification.pipeline.loaders import data_loader

    monkeypatch.delenv("PILLOW_BLOCKS_MAX", raising=False)
    monkeypatch.delenv("PILLOW_BLOCK_SIZE", raising=False)
    (blocks, size), = list(data_loader(_BlocksSeen(), 2, None, False, None, 1, torch.device("cpu")))
    assert blocks.tolist() == [10, 10] and size.tolist() == [1 << 20] * 2   # the batch (2) + 8; 1 MiB each
    monkeypatch.setenv("PILLOW_BLOCKS_MAX", "3")   # the user's settings win (Pillow read them at import)
    monkeypatch.setenv("PILLOW_BLOCK_SIZE", "4m")
    (blocks, size), = list(data_loader(_BlocksSeen(), 2, None, False, None, 1, torch.device("cpu")))
    assert blocks.tolist() == [Image.core.get_blocks_max()] * 2 and size.tolist() == [Image.core.get_block_size()] * 2


def test_a_run_lends_each_pass_of_worker_crops_its_own_ring(tmp_path, tiny_cfg):
    import probes.classification.pipeline as pipeline
    from probes.classification.datasets import ImageSet
    from probes.classification.distributed import DistInfo

    dataset = _images(tmp_path, 4)
    images = ImageSet("val", tmp_path, dataset.files, dataset.targets)
    pre = pipeline.Preprocessing(SIZE, "bicubic", 1.0, MEAN, STD)
    cpu = DistInfo(0, 1, torch.device("cpu"))
    for crop_on, lends in (("worker", True), ("device", False)):
        cfg = tiny_cfg(data__crop_on=crop_on, data__workers=1)
        built = pipeline.build_pipeline(images, pre, cfg.train, cfg.data, 4, cpu, 2, 2)
        first, second = (built.loader(built.paths.eval_set(images), 2, None, False, built.paths.eval.collate)
                         for _ in range(2))
        ring = getattr(first.collate_fn, "keywords", {}).get("ring")
        assert (ring is not None) == lends
        if lends:
            assert ring is not second.collate_fn.keywords["ring"] and ring.slots == 4 * 1 + 1
            assert [len(b["images"]) for b in first] == [2, 2] and ring.counts()["lent"] == 2
