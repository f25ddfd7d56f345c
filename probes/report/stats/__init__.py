"""Statistics for the report: paired image bootstrap, version comparisons, per-class changes.

Typical use (one ``Bootstrap`` for the whole report, so every set is resampled once and identically
for every head and version)::

    boot = Bootstrap(n_resamples=1000, seed=0)
    cells = {s: boot.accuracies(s, {"linear": lin[s], "attention_pooling": att[s]}) for s in TEST_SETS}
    avg_lin = Samples.mean([cells[s]["linear"] for s in TEST_SETS])
    delta = Samples.mean([cells[s]["attention_pooling"] for s in TEST_SETS]) - avg_lin
    low, high = interval(delta)
"""
from probes.report.stats.bootstrap import Bootstrap, Samples, StatsError, interval
from probes.report.stats.changes import (ClassChanges, accuracy_class_changes, classification_class_changes,
                                         segmentation_class_changes)
from probes.report.stats.compare import (Comparison, compare, compare_accuracy, compare_classification,
                                         compare_segmentation, shared_images)
from probes.report.stats.metrics import aacc, class_ratio, macc, mean_class_ratio, miou

__all__ = [
    "Bootstrap", "Samples", "StatsError", "interval",
    "ClassChanges", "accuracy_class_changes", "classification_class_changes", "segmentation_class_changes",
    "Comparison", "compare", "compare_accuracy", "compare_classification", "compare_segmentation",
    "shared_images", "aacc", "class_ratio", "macc", "mean_class_ratio", "miou",
]
