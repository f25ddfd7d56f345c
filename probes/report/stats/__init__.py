"""Statistics for the report: paired image bootstrap, version comparisons, per-class changes.

Typical use (one ``Bootstrap`` for the whole report, so every image list is resampled once and
identically for every head, score and version; the key names the images, so IN-1K and IN-ReaL, two
scores of the ImageNet val images, share one key and ReaL passes the images it scores)::

    boot = Bootstrap(n_resamples=1000, seed=0)
    val = boot.accuracies("val", {"1k": lin_1k, "real": lin_real}, scored={"real": has_label_set})
    v2 = boot.accuracy("IN-V2", lin_v2)
    avg = Samples.mean([val["1k"], val["real"], v2])       # IN-1K and ReaL move together
    low, high = interval(avg)
    result = compare(avg_of_a, avg_of_b)                   # paired B - A, p-value
    marked = adjust({"avg": result, ...})                  # Holm over one comparison's cells
"""
from probes.report.stats.bootstrap import Bootstrap, Samples, StatsError, interval
from probes.report.stats.changes import (ClassChanges, accuracy_class_changes, classification_class_changes,
                                         segmentation_class_changes)
from probes.report.stats.compare import (Comparison, adjust, compare, compare_accuracy, compare_classification,
                                         compare_segmentation, covers, shared_images)
from probes.report.stats.metrics import aacc, class_ratio, macc, mean_class_ratio, miou
from probes.report.stats.multiplicity import holm

__all__ = [
    "Bootstrap", "Samples", "StatsError", "interval",
    "ClassChanges", "accuracy_class_changes", "classification_class_changes", "segmentation_class_changes",
    "Comparison", "adjust", "compare", "covers", "holm", "compare_accuracy", "compare_classification",
    "compare_segmentation", "shared_images", "aacc", "class_ratio", "macc", "mean_class_ratio", "miou",
]
