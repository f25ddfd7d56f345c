"""Top-1 accuracy under each test set's rule, accumulated batch by batch and summed across ranks."""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Tuple

import torch

from probes.classification.datasets import ImageSet


def predictions(logits: torch.Tensor, class_subset=None) -> torch.Tensor:
    """Argmax class index; IN-A / IN-R keep only their 200 logits first (sorted-wnid order)."""
    if class_subset is None:
        return logits.argmax(dim=1)
    subset = torch.as_tensor(class_subset, device=logits.device)
    return subset[logits.index_select(1, subset).argmax(dim=1)]


def correct_and_counted(logits: torch.Tensor, indices: torch.Tensor, image_set: ImageSet,
                        score: str) -> Tuple[int, int]:
    """(correct, scored) for one batch of ``image_set`` under the rule of ``score``."""
    if score == "IN-ReaL":
        pred = predictions(logits).tolist()
        correct = counted = 0
        for p, i in zip(pred, indices.tolist()):
            labels = image_set.real_labels[i]
            if labels:  # empty ReaL lists are left out of the mean
                counted += 1
                correct += int(p in labels)
        return correct, counted
    pred = predictions(logits, image_set.class_subset).cpu()
    targets = torch.as_tensor([image_set.targets[i] for i in indices.tolist()])
    return int((pred == targets).sum()), len(targets)


class Top1Table:
    """Correct / scored counts for every (head key, ema flag, score) of one evaluation."""

    def __init__(self) -> None:
        self.counts: Dict[Tuple[str, bool, str], list] = {}

    def ensure(self, keys: Iterable[Tuple[str, bool]], scores: Iterable[str]) -> None:
        """Create zero counts so every rank reduces the same table, even one that saw no image."""
        for score in scores:
            for key, ema in keys:
                self.counts.setdefault((key, ema, score), [0, 0])

    def update(self, logits: Mapping[Tuple[str, bool], torch.Tensor], indices: torch.Tensor,
               image_set: ImageSet, scores: Iterable[str]) -> None:
        """Add one batch of every head's logits."""
        for score in scores:
            for (key, ema), out in logits.items():
                c, n = correct_and_counted(out, indices, image_set, score)
                entry = self.counts.setdefault((key, ema, score), [0, 0])
                entry[0] += c
                entry[1] += n

    def all_reduce(self, reduce_fn) -> None:
        """Sum counts over ranks with ``reduce_fn`` (a tensor all-reduce); a no-op in one process."""
        keys = sorted(self.counts)
        if not keys:
            return
        flat = torch.tensor([self.counts[k] for k in keys], dtype=torch.float64)
        flat = reduce_fn(flat)
        for k, row in zip(keys, flat.tolist()):
            self.counts[k] = [int(round(row[0])), int(round(row[1]))]

    def top1(self, key: str, ema: bool, score: str) -> Tuple[float, int]:
        """(top-1 in percent, images scored)."""
        c, n = self.counts.get((key, ema, score), (0, 0))
        return (100.0 * c / n if n else float("nan")), n
