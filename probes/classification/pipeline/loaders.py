"""The loaders of one run's images and the device-side step that turns their batches into model input."""
from __future__ import annotations

from functools import partial
from multiprocessing.context import BaseContext
from typing import Callable, Dict, Optional, Sequence, Set, Tuple

import torch
from timm.data import Mixup
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from probes.classification.datasets import ImageSet
from probes.classification.distributed import DistInfo, ShardSampler, all_gather_objects
from probes.classification.pipeline.batch_memory import BatchRing, BufferPool
from probes.classification.pipeline.device_batches import DeviceBatches
from probes.classification.pipeline.image_paths import CropPaths
from probes.classification.pipeline.images import collate, keep_pillow_blocks
from probes.classification.pipeline.preprocessing import Preprocessing
from probes.runtime import default_workers


PREFETCH = 4   # batches each worker may have in flight (DataLoader's prefetch_factor)


def loader_workers(workers: Optional[int]) -> int:
    """The DataLoader workers of a run (None: the cores available, see `default_workers`)."""
    return default_workers() if workers is None else int(workers)


def _start_worker(pillow_blocks: int, worker_id: int) -> None:
    keep_pillow_blocks(pillow_blocks)


def data_loader(dataset, batch: int, sampler, drop_last: bool, collate_fn: Optional[Callable],
                workers: Optional[int], device: torch.device, persistent: bool = False,
                context: Optional[BaseContext] = None, pillow_blocks: bool = True) -> DataLoader:
    """A DataLoader with the run's workers (None: the cores available, see `default_workers`).

    Each worker lets Pillow reuse the memory of a batch's images (`keep_pillow_blocks`: a batch's crops
    plus a few intermediates). ``persistent``: workers kept across passes; ``context``: their start method;
    ``pillow_blocks=False``: Pillow's default (benchmarks read the workers' CPU time and compare).
    """
    workers = loader_workers(workers)
    return DataLoader(dataset, batch_size=batch, sampler=sampler, drop_last=drop_last,
                      num_workers=workers, collate_fn=collate_fn, multiprocessing_context=context if workers else None,
                      worker_init_fn=partial(_start_worker, batch + 8) if pillow_blocks else None,
                      pin_memory=device.type == "cuda", persistent_workers=persistent and workers > 0,
                      prefetch_factor=PREFETCH if workers else None)


def ring_for(batch: int, image_size: int, workers: int, prefetch: int = PREFETCH,
             context: Optional[BaseContext] = None) -> BatchRing:
    """Slots for every uint8 batch a DataLoader can have in flight, plus the one its consumer is reading.

    A DataLoader has at most ``prefetch * workers`` batches sent and not yet handed over (in order or
    not), and DeviceBatches copies a batch out before it asks for the next: with one more slot a
    worker finds a free one in the steady state. (When none is free it takes fresh memory: slower, not wrong.)
    """
    return BatchRing(prefetch * workers + 1, batch * 3 * image_size * image_size, context)


class GroupedMixup:
    """timm's Mixup/CutMix applied to each group of `group` images of a batch, in place.

    The official run calls its Mixup on each GPU's 16-image batch: one lambda and one CutMix box per 16
    images, each image mixed with its mirror in the group. Drawing per group of the same size keeps that
    granularity whatever the process batch (1,024 images on one GPU are 64 groups, not one draw).
    """

    def __init__(self, mixup: Mixup, group: int) -> None:
        self.mixup, self.group = mixup, int(group)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        soft = []
        for chunk, labels in zip(images.split(self.group), targets.split(self.group)):
            mixed, chunk_soft = self.mixup(chunk, labels)
            if mixed.data_ptr() != chunk.data_ptr():   # timm mixes in place; never lose a copy if it did not
                chunk.copy_(mixed)
            soft.append(chunk_soft)
        return images, torch.cat(soft)

    def partners(self, flags: torch.Tensor) -> torch.Tensor:
        """Each sample's flag OR its Mixup partner's (the mirror image in its group)."""
        return flags | torch.cat([chunk.flip(0) for chunk in flags.split(self.group)])


class ImagePipeline:
    """Training and evaluation batches of uint8 crops, made device batches (normalised, Mixup on training).

    Built by :func:`probes.classification.pipeline.build_pipeline`; it also counts the files left out
    (data.on_corrupt='skip') per set over every pass of the run.
    """

    def __init__(self, paths: CropPaths, train_set: Dataset, sampler: DistributedSampler,
                 mixup: Optional[GroupedMixup], pre: Preprocessing, workers: Optional[int], on_corrupt: str,
                 dist: DistInfo, batch: int, eval_batch: int) -> None:
        self.paths, self.train_set, self.sampler, self.mixup, self.pre = paths, train_set, sampler, mixup, pre
        self.workers, self.on_corrupt, self.dist = workers, on_corrupt, dist
        self.batch, self.eval_batch = batch, eval_batch
        self.skipped: Dict[str, Set[str]] = {}
        self.logged: Set[str] = set()   # one log line per file, though several sets and epochs read it
        self.pool = BufferPool()         # float batches on a CPU, reused across the run's passes

    def loader(self, dataset, batch: int, sampler, drop_last: bool, collate_fn: Callable) -> DataLoader:
        """A loader over `dataset` with this run's workers and pinning (worker crops written into lent slots).

        Each loader (one pass: an epoch, or one evaluation set) has its own ring, freed with it: at most
        the memory of the batches a pass can have in flight, as with fresh memory, and its pages are faulted
        once per pass (first-touching 1 GiB of shared memory took 0.37 s, timed once on the VM of
        benchmarks/RESULTS.md: about a second per 2.5 GB).
        """
        workers = loader_workers(self.workers)
        if workers and collate_fn is collate:   # worker crops: the other ways hand over other batches
            collate_fn = partial(collate, ring=ring_for(batch, self.pre.size, workers))
        return data_loader(dataset, batch, sampler, drop_last, collate_fn, workers, self.dist.device)

    def device_batches(self, name: str, loader: DataLoader, mixup: Optional[GroupedMixup], min_images: int,
                       decode: Optional[Callable] = None) -> DeviceBatches:
        """The device-side step over `loader`: decode/resample hook, normalisation, Mixup, skipped files."""
        return DeviceBatches(loader, self.dist.device, self.pre.mean, self.pre.std, on_corrupt=self.on_corrupt,
                             mixup=mixup, min_images=min_images, decode=decode,
                             skipped=self.skipped.setdefault(name, set()), logged=self.logged, pool=self.pool)

    def train_batches(self, epoch: int) -> DeviceBatches:
        """One epoch of training device batches (Mixup/CutMix per group when the recipe asks)."""
        self.sampler.set_epoch(epoch)
        loader = self.loader(self.train_set, self.batch, self.sampler, drop_last=True,
                             collate_fn=self.paths.train.collate)
        # Heads with BatchNorm need two images; Mixup pairs images (odd batches lose one).
        return self.device_batches("train", loader, self.mixup, min_images=2, decode=self.paths.train.hook)

    def eval_batches(self, image_set: ImageSet) -> DeviceBatches:
        """Device batches of `image_set` with the evaluation transform, sharded over ranks."""
        dataset = self.paths.eval_set(image_set)
        sampler = ShardSampler(len(dataset), self.dist.rank, self.dist.world)
        loader = self.loader(dataset, self.eval_batch, sampler, drop_last=False, collate_fn=self.paths.eval.collate)
        return self.device_batches(image_set.name, loader, None, 1, decode=self.paths.eval.hook)

    def skipped_counts(self, names: Sequence[str]) -> Dict[str, int]:
        """Distinct files left out per set over the run, on every process (sets are read once per epoch,
        and a training file may reach different processes in different epochs: files, not reads, count)."""
        gathered = all_gather_objects({n: sorted(self.skipped.get(n, ())) for n in names}, self.dist)
        return {n: len(set().union(*(g[n] for g in gathered))) for n in names}
