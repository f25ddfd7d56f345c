"""uint8 image batches from the loader → normalised float batches on the accelerator.

Workers stop at uint8 (see :mod:`probes.classification.pipeline.images`); here each batch is pinned, copied
with ``non_blocking=True`` and turned into float32, normalised on the device. On CUDA the copy of
the next batch runs on a side stream while the consumer works on the current one (the pattern of
timm's ``PrefetchLoader``); on other devices the same one-ahead loop simply runs in order.

On a CPU the normalisation is a table look-up (:class:`~probes.classification.pipeline.normalisation.PixelTable`:
the 256 uint8 values put through the very float32 operations of :func:`normalize_on_device`, so the same
values bit for bit) written into reused memory (:class:`~probes.classification.pipeline.batch_memory.BufferPool`).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, MutableSet, Optional, Sequence, Tuple

import torch

from probes.classification.pipeline.batch_memory import BufferPool, LentBatch
from probes.classification.pipeline.images import check_errors
from probes.classification.pipeline.normalisation import IMAGE_DTYPE, PixelTable, normalize_on_device

__all__ = ["DeviceBatches", "IMAGE_DTYPE", "normalize_on_device"]

HostBatch = Mapping[str, Any]
Mix = Callable[[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]


class DeviceBatches:
    """Iterate a loader of :func:`~probes.classification.pipeline.images.collate` batches on ``device``.

    Yields ``{"images": float32 NCHW normalised, "targets": on device, "indices": positions
    (host)}``. Corrupt files are raised or counted (``n_skipped``, this pass) per ``on_corrupt``; a
    skipped file's error is added to ``skipped`` and logged unless in ``logged`` (sets shared across passes); batches
    left with fewer than ``min_images`` are not yielded (training heads with BatchNorm want 2).
    With ``mixup`` (a timm ``Mixup``), the normalised batch is mixed (the official order) and
    ``targets`` are soft; odd batches lose their last image, since Mixup pairs images.
    ``decode``, when given, turns each host batch into a batch whose ``images`` are uint8 already
    on the device (:mod:`~probes.classification.pipeline.device_crops`,
    :mod:`~probes.classification.pipeline.gpu_decode`). On a CPU the float batches come from ``pool``
    (a run passes one pool to all its passes; None: this object's own).
    """

    def __init__(self, loader: Iterable[HostBatch], device: torch.device, mean: Sequence[float],
                 std: Sequence[float], on_corrupt: str = "error", mixup: Optional[Mix] = None,
                 min_images: int = 1, channels_last: bool = False,
                 decode: Optional[Callable[[HostBatch], HostBatch]] = None,
                 skipped: Optional[MutableSet[str]] = None, logged: Optional[MutableSet[str]] = None,
                 pool: Optional[BufferPool] = None) -> None:
        self.loader = loader
        self.device = torch.device(device)
        self.mean = torch.tensor(mean, dtype=IMAGE_DTYPE, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=IMAGE_DTYPE, device=self.device).view(1, -1, 1, 1)
        # CPU only: on CUDA the arithmetic is four elementwise kernels at the GPU's bandwidth, and a
        # gather there was never timed (no GPU lent yet); its pixels would be the same either way.
        cpu = self.device.type == "cpu"
        self._pool: Optional[BufferPool] = (pool if pool is not None else BufferPool()) if cpu else None
        self._table = PixelTable(self.mean, self.std) if self._pool is not None else None
        self.on_corrupt = on_corrupt
        self.mixup = mixup
        self.min_images = max(min_images, 2 if mixup is not None else 1)
        self.channels_last = channels_last
        self.decode = decode
        self.n_skipped = 0
        self.skipped: MutableSet[str] = set() if skipped is None else skipped
        self.logged = logged
        self._cuda = self.device.type == "cuda"
        # One side stream for the object's life: the caching allocator pools blocks per stream.
        self._stream = torch.cuda.Stream(device=self.device) if self._cuda else None

    def __len__(self) -> int:
        """Host batches in the loader (an upper bound: emptied batches are skipped)."""
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        pending = None
        for host in self.loader:
            staged = self._stage(host)
            if staged is None:
                continue
            if pending is not None:
                yield self._finish(pending)
            pending = staged
        if pending is not None:
            yield self._finish(pending)

    def _side(self):
        if self._stream is None:
            return contextlib.nullcontext()
        # Blocks the consumer freed may be handed to this stream's allocations: wait for the
        # consumer's queued work on them first.
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        return torch.cuda.stream(self._stream)

    def _stage(self, host: HostBatch) -> Optional[Dict[str, Any]]:
        """Count errors, trim, start the copy and normalisation (on the side stream on CUDA)."""
        with self._side():
            batch = self.decode(host) if self.decode is not None else host
            self.n_skipped += check_errors(batch, self.on_corrupt, self.logged)
            self.skipped.update(batch["errors"])
            images, targets = batch["images"], batch["targets"]
            n = len(images) - len(images) % 2 if self.mixup is not None else len(images)
            if n < self.min_images:
                return None
            if isinstance(images, LentBatch):
                images = self._from_slot(images, n)
            else:
                images = self._normalize(self._pinned(images[:n]))
            staged = {"images": images,
                      "targets": self._pinned(targets[:n]).to(self.device, non_blocking=True),
                      "indices": batch["indices"][:n]}
            if self._stream is not None:
                staged["ready"] = torch.cuda.Event()
                staged["ready"].record(self._stream)
        return staged

    def _from_slot(self, lent: LentBatch, n: int) -> torch.Tensor:
        """The first ``n`` images of a batch in a lent slot, normalised; the slot is freed once copied out of.

        On a CPU the copy out is the normalisation itself (the table writes float batches of the pool);
        elsewhere a page-locked copy (CUDA, when the DataLoader did not pin) or a plain one comes first.
        """
        with lent.borrowed() as pixels:
            if self._pool is not None:
                return self._normalize(pixels[:n])
            pixels = pixels[:n].pin_memory() if self._cuda else pixels[:n].clone()
        return self._normalize(pixels)

    def _normalize(self, images: torch.Tensor) -> torch.Tensor:
        if self._pool is not None and images.device.type == "cpu" and images.dtype == torch.uint8:
            out = self._pool.take(tuple(images.shape), self.channels_last)
            return self._table(images, out)
        return normalize_on_device(images, self.mean, self.std, self.channels_last)

    def _pinned(self, tensor: torch.Tensor) -> torch.Tensor:
        # Only page-locked host memory copies asynchronously; a pinning DataLoader did it already.
        if self._cuda and tensor.device.type == "cpu" and not tensor.is_pinned():
            return tensor.pin_memory()
        return tensor

    def _finish(self, staged: Dict[str, Any]) -> Dict[str, Any]:
        """Make the consumer's stream wait for this batch only, then mix it there."""
        ready = staged.pop("ready", None)
        if ready is not None:
            torch.cuda.current_stream(self.device).wait_event(ready)
        if self.mixup is not None:
            staged["images"], staged["targets"] = self.mixup(staged["images"], staged["targets"])
        return staged
