"""Top-1 accuracy under each test set's rule, per-image records for the side file, summed across ranks."""
from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from probes.classification.datasets import ImageSet

HeadKey = Tuple[str, bool]   # (head key, EMA weights?)


def ranked_classes(logits: torch.Tensor, class_subset: Optional[Sequence[int]] = None, k: int = 5) -> torch.Tensor:
    """The k best class indices per image (best first); IN-A / IN-R rank only their 200 classes."""
    if class_subset is None:
        return logits.topk(min(k, logits.shape[1]), dim=1).indices
    subset = torch.as_tensor(class_subset, device=logits.device)
    return subset[logits.index_select(1, subset).topk(min(k, len(subset)), dim=1).indices]


def correct_mask(top1: torch.Tensor, indices: torch.Tensor, image_set: ImageSet, score: str
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """(correct, scored) per image of a batch under the rule of `score` (ReaL: in the label set; empty = unscored)."""
    pred = top1.cpu().tolist()
    rows = indices.tolist()
    if score == "IN-ReaL":
        labels = [image_set.real_labels[i] for i in rows]
        return (np.array([p in ls for p, ls in zip(pred, labels)], dtype=bool),
                np.array([bool(ls) for ls in labels], dtype=bool))
    targets = [image_set.targets[i] for i in rows]
    return np.array([p == t for p, t in zip(pred, targets)], dtype=bool), np.ones(len(rows), dtype=bool)


class Top1Table:
    """Correct / scored counts for every (head key, ema, score) of one evaluation; optionally per-image records."""

    def __init__(self, record: bool = False) -> None:
        self.counts: Dict[Tuple[str, bool, str], list] = {}
        self.record = record
        self.rows: List[np.ndarray] = []                       # positions in the set, batch by batch
        self.top5: Dict[HeadKey, List[np.ndarray]] = {}

    def ensure(self, keys: Iterable[HeadKey], scores: Iterable[str]) -> None:
        """Create zero counts so every rank reduces the same table, even one that saw no image."""
        for score in scores:
            for key, ema in keys:
                self.counts.setdefault((key, ema, score), [0, 0])

    def update(self, logits: Mapping[HeadKey, torch.Tensor], indices: torch.Tensor, image_set: ImageSet,
               scores: Iterable[str]) -> None:
        """Add one batch of every head's logits."""
        if self.record:
            self.rows.append(indices.cpu().numpy())
        for (key, ema), out in logits.items():
            ranked = ranked_classes(out, image_set.class_subset)
            if self.record:
                self.top5.setdefault((key, ema), []).append(ranked.cpu().numpy().astype(np.int16))
            for score in scores:
                correct, scored = correct_mask(ranked[:, 0], indices, image_set, score)
                entry = self.counts.setdefault((key, ema, score), [0, 0])
                entry[0] += int((correct & scored).sum())
                entry[1] += int(scored.sum())

    def all_reduce(self, reduce_fn, gather_fn=None) -> None:
        """Sum counts over ranks with `reduce_fn`; gather per-image records with `gather_fn` (a no-op in one process)."""
        keys = sorted(self.counts)
        if keys:
            flat = reduce_fn(torch.tensor([self.counts[k] for k in keys], dtype=torch.float64))
            for k, row in zip(keys, flat.tolist()):
                self.counts[k] = [int(round(row[0])), int(round(row[1]))]
        if self.record and gather_fn is not None:
            gathered = gather_fn((self.rows, self.top5))
            self.rows = [r for rows, _ in gathered for r in rows]
            self.top5 = {key: [t for _, top5 in gathered for t in top5.get(key, [])] for key in self.top5}

    def top1(self, key: str, ema: bool, score: str) -> Tuple[float, int]:
        """(top-1 in percent, images scored)."""
        c, n = self.counts.get((key, ema, score), (0, 0))
        return (100.0 * c / n if n else float("nan")), n

    def per_image(self, key: HeadKey) -> Tuple[np.ndarray, np.ndarray]:
        """(positions in the set, top-5 classes) of one head, sorted by position."""
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, dtype=np.int64)
        top5 = np.concatenate(self.top5[key]) if self.top5.get(key) else np.zeros((0, 5), dtype=np.int16)
        order = np.argsort(rows, kind="stable")
        return rows[order], top5[order]
