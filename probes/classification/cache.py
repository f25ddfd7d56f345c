"""Feature cache: frozen features written once to memory-mapped ``.npy`` files, then read by many heads.

Per split a folder holds ``pooled.npy`` (class ⊕ mean-patch, float32, for linear heads),
``tokens.npy`` (all tokens as bf16 bit patterns in int16, for attention pooling), ``valid.npy``
(1 where the image was decoded) and ``meta.json`` (written last: its presence marks a finished store).
Features are computed with the evaluation transform: a cached run has no augmentation
(``protocol=cached`` in its rows).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from timm.data.mixup import mixup_target
from torch import nn

from probes.classification.config import CacheSpec, ClassifyConfig, TrainRecipe
from probes.classification.datasets import ImageSet
from probes.classification.distributed import DistInfo, barrier
from probes.classification.heads import linear_input
from probes.classification.live import LiveSource, per_rank_batch
from probes.classification.pipeline import Preprocessing
from probes.classification.sweep import FeatureNeeds, head_seed, replica_feature
from probes.classification.training import fingerprint
from probes.errors import ConfigError, DatasetError
from probes.io import write_text_atomic
from probes.progress import Progress
from probes.run_identity import slug

log = logging.getLogger(__name__)
Features = Dict[str, torch.Tensor]


class FeatureStore:
    """The cached features of one split, memory-mapped."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pooled: Optional[np.ndarray] = None
        self.tokens: Optional[np.ndarray] = None
        self.valid: Optional[np.ndarray] = None
        self.num_prefix_tokens = 0

    def finished_meta(self) -> Optional[Dict[str, Any]]:
        """The meta of a finished store, or None."""
        path = self.folder / "meta.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def open(self, mode: str = "r") -> "FeatureStore":
        """Map the arrays (``r`` to read, ``r+`` for another rank to fill its rows)."""
        for name in ("pooled", "tokens", "valid"):
            path = self.folder / f"{name}.npy"
            setattr(self, name, np.load(path, mmap_mode=mode) if path.is_file() else None)
        return self

    def create(self, n: int, pooled_dim: Optional[int], token_shape: Optional[Tuple[int, int]]) -> None:
        """Allocate the arrays on disk (main rank); an old store in the folder is replaced."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "meta.json").unlink(missing_ok=True)
        fmt = np.lib.format
        if pooled_dim is not None:
            fmt.open_memmap(self.folder / "pooled.npy", "w+", np.float32, (n, pooled_dim)).flush()
        else:
            (self.folder / "pooled.npy").unlink(missing_ok=True)
        if token_shape is not None:
            fmt.open_memmap(self.folder / "tokens.npy", "w+", np.int16, (n, *token_shape)).flush()
        else:
            (self.folder / "tokens.npy").unlink(missing_ok=True)
        fmt.open_memmap(self.folder / "valid.npy", "w+", np.uint8, (n,)).flush()

    def write(self, indices: np.ndarray, feats: Mapping[str, torch.Tensor]) -> None:
        """Store one batch of features at the rows of its images."""
        if self.pooled is not None:
            self.pooled[indices] = feats["pooled"].float().cpu().numpy()
        if self.tokens is not None:
            # numpy has no bfloat16: keep the 16-bit patterns and view them back as bf16 on read.
            self.tokens[indices] = feats["tokens"].to(torch.bfloat16).cpu().view(torch.int16).numpy()
        self.valid[indices] = 1

    def flush(self) -> None:
        """Write dirty pages to disk."""
        for arr in (self.pooled, self.tokens, self.valid):
            if arr is not None:
                arr.flush()

    def read(self, indices: np.ndarray, need_pooled: bool, need_tokens: bool,
             device: torch.device) -> Features:
        """The heads' inputs for the given rows (pooled rebuilt from tokens when not stored)."""
        feats: Features = {}
        tokens = None
        if need_tokens or (need_pooled and self.pooled is None):
            tokens = torch.from_numpy(np.ascontiguousarray(self.tokens[indices])).view(torch.bfloat16)
            # bf16 matmuls are slow on CPU; GPUs take bf16 as is under autocast.
            tokens = tokens.to(device) if device.type == "cuda" else tokens.float()
        if need_pooled:
            if self.pooled is not None:
                feats["pooled"] = torch.from_numpy(np.ascontiguousarray(self.pooled[indices])).to(device)
            else:
                feats["pooled"] = linear_input(tokens, self.num_prefix_tokens).float().to(device)
        if need_tokens:
            feats["tokens"] = tokens.to(device)
        return feats

    def valid_rows(self) -> np.ndarray:
        """Rows whose image was decoded."""
        return np.flatnonzero(np.asarray(self.valid))


def store_meta(encoder: nn.Module, image_set: ImageSet, pre: Preprocessing, kinds: Sequence[str]) -> Dict[str, Any]:
    """What a store must match to be reused: encoder, preprocessing, the exact file list, the kinds."""
    import hashlib

    files = hashlib.sha256("\n".join(map(str, image_set.files)).encode()).hexdigest()[:16]
    return {"encoder_version": encoder.version, "encoder_source": str(getattr(encoder, "source", "")),
            "weights": str(getattr(encoder, "fingerprint", "")), "num_layers": int(encoder.num_layers),
            "image_size": pre.size, "interpolation": pre.interpolation, "crop_pct": pre.crop_pct,
            "mean": list(pre.mean), "std": list(pre.std), "n": len(image_set), "files_sha": files,
            "kinds": sorted(kinds), "num_prefix_tokens": int(encoder.num_prefix_tokens)}


def build_store(folder: Path, image_set: ImageSet, live: LiveSource, dist: DistInfo, kinds: Sequence[str],
                show_progress: bool, log_interval_s: float) -> FeatureStore:
    """Reuse a finished store with the same meta, else compute the features (sharded over ranks)."""
    meta = store_meta(live.encoder, image_set, live.pre, kinds)
    store = FeatureStore(folder)
    store.num_prefix_tokens = meta["num_prefix_tokens"]
    if store.finished_meta() == meta:
        log.info("feature cache: reusing %s (%d images)", folder, len(image_set))
        return store.open("r")
    needs = FeatureNeeds(pooled="pooled" in kinds, tokens="tokens" in kinds)
    # One dummy image tells the feature shapes before any rank writes.
    size = live.pre.size
    with torch.inference_mode(), live.autocast():
        dummy = live.encoder.forward_features(torch.zeros(1, 3, size, size, device=dist.device,
                                                          dtype=next(live.encoder.parameters()).dtype))
    pooled_dim = linear_input(dummy, live.encoder.num_prefix_tokens).shape[1] if needs.pooled else None
    token_shape = tuple(dummy.shape[1:]) if needs.tokens else None
    if dist.is_main:
        store.create(len(image_set), pooled_dim, token_shape)
    barrier(dist)
    store.open("r+")
    for feats, indices in Progress(live.eval_batches(image_set, needs), None, f"Cache({image_set.name})",
                                   show_progress and dist.is_main, log_interval_s):
        store.write(indices.numpy(), feats)
    store.flush()
    barrier(dist)
    if dist.is_main:
        write_text_atomic(folder / "meta.json", json.dumps(meta, indent=1))
    barrier(dist)
    return store.open("r")


def order_seed(seed: int, epoch: int, replica: int) -> int:
    """The shuffle seed of replica r > 0 in one epoch: a stable hash, far from replica 0's stream."""
    return head_seed(int(seed), f"order\0{epoch}\0{replica}")


class CachedSource:
    """Train and eval batches read from feature stores: no backbone, no augmentation."""

    def __init__(self, stores: Mapping[str, FeatureStore], train: ImageSet, cache: CacheSpec, recipe: TrainRecipe,
                 num_classes: int, dist: DistInfo, needs: FeatureNeeds) -> None:
        self.stores, self.train, self.dist, self.needs = stores, train, dist, needs
        self.seed, self.smoothing, self.num_classes = recipe.seed, recipe.smoothing, num_classes
        self.seeds = int(recipe.seeds)   # training replicas: each reads the stored features in its own order
        self.batch = per_rank_batch(cache.batch_size, dist.world, "cache.batch_size")
        self.eval_batch = per_rank_batch(recipe.eval_batch_size or cache.batch_size, dist.world,
                                         "train.eval_batch_size")
        self.train_rows = stores["train"].valid_rows()
        self.iters_per_epoch = (len(self.train_rows) // dist.world) // self.batch
        if self.iters_per_epoch == 0:
            raise DatasetError(f"train at {train.root}: {len(self.train_rows)} cached images, fewer "
                               f"than one batch of {self.batch} per process (lower cache.batch_size).")
        self.targets = torch.as_tensor(train.targets)
        # A store's rows left empty are its skipped files (the stores are shared: the same on every process).
        self.n_skipped = {name: int(len(s.valid) - len(s.valid_rows())) for name, s in stores.items()}

    def skipped_counts(self, names: Sequence[str]) -> Dict[str, int]:
        """Files left out per set; 'train' counts the held-out split too (both are training images)."""
        counts = {n: self.n_skipped.get(n, 0) for n in names}
        if "train" in counts:
            counts["train"] += sum(c for n, c in self.n_skipped.items() if n == "heldout")
        return counts

    def _order(self, epoch: int, replica: int) -> np.ndarray:
        """This process's rows of one epoch, in the order of one replica (replica 0: a 1-seed run's order)."""
        seed = int(self.seed) * 1_000_003 + epoch if replica == 0 else order_seed(self.seed, epoch, replica)
        gen = torch.Generator().manual_seed(seed)
        order = self.train_rows[torch.randperm(len(self.train_rows), generator=gen).numpy()]
        return order[self.dist.rank::self.dist.world][: self.iters_per_epoch * self.batch]

    def _batch(self, rows: np.ndarray) -> Tuple[Features, torch.Tensor]:
        rows = np.sort(rows)  # sorted rows read the memmap faster
        feats = self.stores["train"].read(rows, self.needs.pooled, self.needs.tokens, self.dist.device)
        targets = self.targets[rows].to(self.dist.device)
        return feats, mixup_target(targets, self.num_classes, 1.0, self.smoothing)

    def train_batches(self, epoch: int) -> Iterator[Tuple[Features, Any, None]]:
        """One shuffled epoch of stored train features with label-smoothed targets (no held-out image in it).

        With `seeds` K > 1 each replica r > 0 reads its own shuffle: its features under
        ``replica_feature(name, r)`` and the targets as {replica: targets}.
        """
        orders = [self._order(epoch, r) for r in range(self.seeds)]
        for start in range(0, len(orders[0]), self.batch):
            feats, targets = self._batch(orders[0][start:start + self.batch])
            if self.seeds == 1:
                yield feats, targets, None
                continue
            by_replica = {0: targets}
            for r in range(1, self.seeds):
                more, by_replica[r] = self._batch(orders[r][start:start + self.batch])
                feats.update({replica_feature(name, r): value for name, value in more.items()})
            yield feats, by_replica, None

    def eval_batches(self, image_set: ImageSet) -> Iterator[Tuple[Features, torch.Tensor]]:
        """Stored features of an evaluation split, sharded over ranks."""
        store = self.stores[image_set.name]
        rows = store.valid_rows()[self.dist.rank::self.dist.world]
        for start in range(0, len(rows), self.eval_batch):
            chunk = rows[start:start + self.eval_batch]
            yield (store.read(chunk, self.needs.pooled, self.needs.tokens, self.dist.device),
                   torch.as_tensor(chunk))


def cached_source(cfg: ClassifyConfig, encoder: nn.Module, train: ImageSet, heldout: ImageSet,
                  tests: Sequence[ImageSet], live: LiveSource, dist: DistInfo, needs: FeatureNeeds
                  ) -> Tuple[CachedSource, Dict[str, FeatureStore]]:
    """Build (or reuse) the stores of every split; returns the source and the stores."""
    kinds = list(cfg.cache.store)
    if needs.layers:
        raise ConfigError("probe.layers needs a live run (the feature cache stores the last block only).")
    if needs.tokens and "tokens" not in kinds:
        raise ConfigError("cache.store lacks 'tokens', which attention-pooling heads read; add it "
                          "or train only linear heads.")
    # One folder per encoder checkpoint and preprocessing, so several encoders can share a cache dir.
    where = fingerprint({"source": str(getattr(encoder, "source", "")), "layers": encoder.num_layers,
                         "weights": str(getattr(encoder, "fingerprint", ""))})[:8]
    root = Path(cfg.cache.dir) / slug(f"{encoder.version}_{live.pre.size}px_{where}", 80)
    stores = {s.name: build_store(root / slug(s.name, 80), s, live, dist, kinds, cfg.runtime.progress,
                                  cfg.runtime.log_interval_s)
              for s in [train, heldout, *tests]}
    source = CachedSource(stores, train, cfg.cache, cfg.train, cfg.probe.num_classes, dist, needs)
    return source, stores
