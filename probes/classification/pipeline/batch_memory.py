"""Memory for image batches: shared memory a worker hands over, and reused float batches on a CPU.

A batch is megabytes of fresh memory, and each 4 KiB page of fresh memory costs a page fault when first
written. On the 2-core VM of benchmarks/RESULTS.md (data_pipeline) a fault cost about 2 µs: filling fresh
shared memory took 0.85 ms per 0.8 MB, 0.25 ms when its pages were asked for in one call first (Linux's
MADV_POPULATE_WRITE, :func:`prefault`). The float batches a CPU consumer
writes (4 bytes per pixel) are reused instead (:class:`BufferPool`), and so is the shared memory workers
write into when the main process lends them slots (:class:`BatchRing`): no fault after a slot's first use.
None of them changes a value.
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import mmap
import multiprocessing
import os
import sys
import weakref
from multiprocessing.context import BaseContext
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import get_worker_info

MADV_POPULATE_WRITE = 23   # linux/mman.h, Linux >= 5.14
_LOCK_WAIT_S = 10.0        # a BatchRing's lock is held for microseconds; past this its holder died
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


class BatchRing:
    """Slots of shared memory the main process lends its DataLoader workers, one uint8 batch each, reused.

    Why: fresh shared memory for every batch (:func:`shared_bytes`) cost a worker ~150 page faults and
    0.2-0.5 ms of CPU per 448 px image on the VM of benchmarks/RESULTS.md (``benchmarks/data_pipeline.py``'s
    step table), plus the main process mapping and freeing it; a slot's pages are faulted once per ring (a
    run makes one per pass over a set). Safety: a worker writes only a slot it took while it was free (under
    a lock shared with every worker), and only the one :class:`LentBatch` the main process received for
    that slot frees it, after the bytes were copied out of it. When no slot is free, or a batch does not
    fit, the worker takes fresh shared memory as before: a ring too small is slower, never wrong. The ring
    is made in the main process before the workers start (they inherit or unpickle it), with the start
    method of the DataLoader's workers.
    """

    def __init__(self, slots: int, slot_bytes: int, context: Optional[BaseContext] = None) -> None:
        if slots < 1 or slot_bytes < 1:
            raise ValueError(f"BatchRing: need at least one slot of one byte, got {slots} x {slot_bytes}")
        self.slots, self.slot_bytes = int(slots), int(slot_bytes)
        # Pages are backed on first write (ftruncate'd shared memory), so unused slots cost no memory.
        self.memory = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(slots * slot_bytes))
        self.state = torch.zeros(slots + 2, dtype=torch.int64).share_memory_()   # per slot 1 = lent; lends; fresh
        # The DataLoader's start method (``context``; None: the default one, as a DataLoader's default).
        self._lock = (context or multiprocessing).Lock()
        self.token = int.from_bytes(os.urandom(8), "little")
        _RINGS[self.token] = self

    def lend(self, shape: Tuple[int, ...]) -> Optional["LentBatch"]:
        """A free slot viewed as a uint8 tensor of ``shape`` (in a worker), or None: take fresh memory."""
        slot = -1
        if self._lock.acquire(timeout=_LOCK_WAIT_S):
            try:
                free = (self.state[:self.slots] == 0).nonzero()
                if len(free) and math.prod(shape) <= self.slot_bytes:
                    slot = int(free[0])
                    self.state[slot] = 1
                self.state[self.slots if slot >= 0 else self.slots + 1] += 1
            finally:
                self._lock.release()
        return LentBatch(self.token, slot, tuple(shape), self) if slot >= 0 else None

    def view(self, slot: int, shape: Tuple[int, ...]) -> torch.Tensor:
        """Slot ``slot``'s memory as a uint8 tensor of ``shape``."""
        start = slot * self.slot_bytes
        return self.memory[start:start + math.prod(shape)].view(shape)

    def give_back(self, slot: int) -> None:
        """Mark ``slot`` free: called once per lent slot, after its bytes were copied out."""
        # A worker killed while holding the lock must not hang the run: the slot then stays lent (unused).
        if not self._lock.acquire(timeout=_LOCK_WAIT_S):
            return
        try:
            if int(self.state[slot]) != 1:
                raise RuntimeError(f"BatchRing: slot {slot} given back but not lent")
            self.state[slot] = 0
        finally:
            self._lock.release()

    def counts(self) -> Dict[str, int]:
        """Batches written into slots, batches that took fresh memory, slots lent out now."""
        return {"lent": int(self.state[self.slots]), "fresh": int(self.state[self.slots + 1]),
                "out": int(self.state[:self.slots].sum())}


# The rings this process made, by token: a LentBatch arriving from a worker finds its slot's memory here.
_RINGS: "weakref.WeakValueDictionary[int, BatchRing]" = weakref.WeakValueDictionary()


def _received(token: int, slot: int, shape: Tuple[int, ...]) -> "LentBatch":
    ring = _RINGS.get(token)
    if ring is None:
        raise RuntimeError("a batch arrived in a BatchRing slot that this process no longer holds "
                           "(the ring is made in the process that reads the loader)")
    return LentBatch(token, slot, shape, ring, received=True)


class LentBatch:
    """A uint8 batch in a :class:`BatchRing` slot: written by a worker, read once by the main process.

    The main process copies the pixels out (:meth:`borrowed`, or :meth:`pin_memory` from a pinning
    DataLoader) and the slot is freed at that moment; a received batch dropped unread frees its slot too.
    """

    def __init__(self, token: int, slot: int, shape: Tuple[int, ...], ring: BatchRing, received: bool = False) -> None:
        self.token, self.slot, self.shape = token, slot, shape
        self._ring: Optional[BatchRing] = ring
        self._received = received   # only the main process's copy frees the slot (the worker's is a sender)

    def __reduce__(self):
        return _received, (self.token, self.slot, self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def view(self) -> torch.Tensor:
        """The slot as a uint8 tensor of ``shape`` (the worker writes into it; readers use :meth:`borrowed`)."""
        if self._ring is None:
            raise RuntimeError(f"BatchRing slot {self.slot} was read already and has been given back")
        return self._ring.view(self.slot, self.shape)

    @contextlib.contextmanager
    def borrowed(self) -> Iterator[torch.Tensor]:
        """The pixels, valid inside the block only: the slot is freed on leaving it (copy them out first)."""
        try:
            yield self.view
        finally:
            self.release()

    def pin_memory(self) -> torch.Tensor:
        """A page-locked copy (what a pinning DataLoader's thread calls); the slot is freed."""
        with self.borrowed() as pixels:
            return pixels.pin_memory()

    def release(self) -> None:
        """Free the slot (once; later calls do nothing)."""
        ring, self._ring = self._ring, None
        if ring is not None and self._received:
            ring.give_back(self.slot)

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:   # interpreter shutdown: the ring may be gone already
            pass
