"""mmseg's IoUMetric that also keeps each image's per-class counts, for the run's side file (intervals, comparisons)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from mmseg.evaluation.metrics import IoUMetric

from probes.sidefiles import write_segmentation_counts


class PerImageIoUMetric(IoUMetric):
    """IoUMetric whose every evaluation also writes per-image intersect / union / label pixel counts.

    mmseg accumulates exactly these counts per image and sums them over the split (gathered from every
    process first); the metric itself is unchanged. The file is rewritten at each evaluation, so it holds
    the final one when training ends.
    """

    def __init__(self, counts_file: Optional[str] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.counts_file = counts_file

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """IoUMetric's per-image counts, each tagged with its image's file name."""
        first = len(self.results)
        super().process(data_batch, data_samples)
        for i, sample in enumerate(data_samples):
            self.results[first + i] = (*self.results[first + i], Path(sample["img_path"]).name)

    def compute_metrics(self, results: list) -> dict:
        """Write the side file (main process), then compute IoUMetric's numbers from the counts."""
        counts = [r[:4] for r in results]
        if self.counts_file and results:
            stack = [np.stack([np.rint(r[k].cpu().numpy()).astype(np.int64) for r in counts]) for k in (0, 1, 3)]
            write_segmentation_counts(self.counts_file, [r[4] for r in results], *stack,
                                      class_names=list(self.dataset_meta["classes"]))
        return super().compute_metrics(counts)
