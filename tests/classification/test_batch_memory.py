"""Batch memory: reused float buffers are never handed out while anything still sees them; prefaulting
and shared memory change no value."""
from __future__ import annotations

import gc
import resource

import numpy as np
import pytest
import torch

from probes.classification.pipeline import batch_memory
from probes.classification.pipeline.batch_memory import BufferPool, prefault, shared_bytes

SHAPE = (2, 3, 4, 5)


def test_a_buffer_comes_back_only_once_everything_over_it_is_gone():
    pool = BufferPool(size=2)
    first = pool.take(SHAPE)
    ptr = first.data_ptr()
    view, array = first[:1], first.numpy()
    del first
    assert pool.take(SHAPE).data_ptr() != ptr          # a view and a numpy array still see it
    del view
    assert pool.take(SHAPE).data_ptr() != ptr          # the numpy array still does
    del array
    gc.collect()
    again = pool.take(SHAPE)
    assert again.data_ptr() == ptr and again.shape == SHAPE and again.dtype == torch.float32


def test_a_full_pool_hands_out_fresh_tensors_and_forgets_free_buffers_of_other_shapes():
    pool = BufferPool(size=2)
    held = [pool.take(SHAPE), pool.take(SHAPE)]
    extra = pool.take(SHAPE)
    assert len({t.data_ptr() for t in held + [extra]}) == 3
    del held[0]
    other = pool.take((1, 3, 4, 5))   # the free buffer of the other shape makes room
    assert other.shape == (1, 3, 4, 5) and len(pool._buffers) == 2


def test_channels_last_buffers_have_the_shape_asked_and_channels_last_memory():
    out = BufferPool().take(SHAPE, channels_last=True)
    assert out.shape == SHAPE and out.is_contiguous(memory_format=torch.channels_last)


def test_prefault_and_shared_bytes_keep_values():
    big = torch.arange(1 << 21, dtype=torch.int32)
    assert torch.equal(prefault(big), torch.arange(1 << 21, dtype=torch.int32))
    raw = shared_bytes(3 << 20)
    raw.copy_(torch.from_numpy(np.arange(3 << 20, dtype=np.int64) % 251).to(torch.uint8))
    assert raw.numel() == 3 << 20 and int(raw[1000]) == 1000 % 251


def test_prefaulted_memory_is_written_without_page_faults():
    fresh = torch.empty(64 << 20, dtype=torch.uint8)   # above glibc's largest mmap threshold: new pages
    prefault(fresh)
    if not batch_memory._madvise:
        pytest.skip("no MADV_POPULATE_WRITE here (not Linux >= 5.14): prefault is a no-op")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fresh.fill_(7)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 200   # of 16,384 pages
