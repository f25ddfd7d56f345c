"""Memory for image batches: shared memory a worker hands over, and reused float batches on a CPU.

A batch is megabytes of fresh memory, and each 4 KiB page of fresh memory costs a page fault when first
written. On the 2-core VM of benchmarks/RESULTS.md (data_pipeline) a fault cost about 2 µs: filling fresh
shared memory took 0.85 ms per 0.8 MB, 0.25 ms when its pages were asked for in one call first (Linux's
MADV_POPULATE_WRITE, :func:`prefault`). The float batches a CPU consumer
writes (4 bytes per pixel) are reused instead (:class:`BufferPool`): no fault at all after the first.
Neither changes a value.
"""
from __future__ import annotations

import ctypes
import mmap
import sys
import weakref
from typing import List, Tuple

import numpy as np
import torch
from torch.utils.data import get_worker_info

MADV_POPULATE_WRITE = 23   # linux/mman.h, Linux >= 5.14
_madvise = None            # libc's madvise once looked up; False where there is none to call


def _libc_madvise():
    global _madvise
    if _madvise is None:
        _madvise = False
        if sys.platform.startswith("linux"):
            try:
                fn = ctypes.CDLL(None, use_errno=True).madvise
                fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
                _madvise = fn
            except (OSError, AttributeError):
                pass
    return _madvise


def prefault(tensor: torch.Tensor) -> torch.Tensor:
    """Back ``tensor``'s CPU pages in one call rather than one fault per page; a no-op where Linux cannot."""
    global _madvise
    fn = _libc_madvise()
    size = tensor.untyped_storage().nbytes()
    if not fn or tensor.device.type != "cpu" or size < 1 << 20:
        return tensor
    start = tensor.untyped_storage().data_ptr()
    aligned = start - start % mmap.PAGESIZE
    if fn(aligned, start + size - aligned, MADV_POPULATE_WRITE) != 0:
        _madvise = False   # an older kernel (EINVAL): faults page by page, as without this call
    return tensor


def shared_bytes(n: int) -> torch.Tensor:
    """n uint8 that a DataLoader worker hands over without a copy (shared memory, as default_collate)."""
    if n and get_worker_info() is not None:
        return prefault(torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(n)))
    return torch.empty(n, dtype=torch.uint8)


class BufferPool:
    """float32 CPU tensors of one shape, reused once nothing refers to the tensor handed out before.

    Each tensor handed out wraps a numpy view of a buffer kept here; the view lives exactly as long as
    some tensor (or view, or ``.numpy()`` array) over that memory does, so a dead weak reference to it
    means no one can see the buffer any more. At most ``size`` buffers are kept; beyond, a fresh tensor.
    Three are in use at a time in steady state (the batch being staged, the one about to be yielded and
    the consumer's previous one, which it holds until its next ``next()`` returns); one more lets train
    and evaluation shapes alternate without freeing and re-faulting memory every pass.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._buffers: List[Tuple[np.ndarray, "weakref.ref[np.ndarray]"]] = []

    def take(self, shape: Tuple[int, ...], channels_last: bool = False) -> torch.Tensor:
        """An uninitialised float32 tensor of ``shape`` (NCHW; channels-last memory when asked)."""
        layout = (shape[0], *shape[2:], shape[1]) if channels_last else tuple(shape)
        for i, (buffer, handed) in enumerate(self._buffers):
            if buffer.shape == layout and handed() is None:
                return self._hand_out(i, buffer, channels_last)
        if len(self._buffers) >= self.size:
            self._buffers = [b for b in self._buffers if b[1]() is not None]   # forget the other shapes
        if len(self._buffers) >= self.size:
            fresh = torch.empty(layout, dtype=torch.float32)
            return prefault(fresh).permute(0, 3, 1, 2) if channels_last else prefault(fresh)
        buffer = prefault(torch.empty(layout, dtype=torch.float32)).numpy()
        self._buffers.append((buffer, weakref.ref(buffer)))
        return self._hand_out(len(self._buffers) - 1, buffer, channels_last)

    def _hand_out(self, i: int, buffer: np.ndarray, channels_last: bool) -> torch.Tensor:
        view = buffer.view()
        self._buffers[i] = (buffer, weakref.ref(view))
        out = torch.from_numpy(view)
        return out.permute(0, 3, 1, 2) if channels_last else out
