"""The report's statistics on synthetic predictions: coverage, paired tests, mIoU resampling, class changes."""
from __future__ import annotations

import numpy as np
import pytest

from probes.errors import ConfigError
from probes.report.class_names import imagenet_class_names, segmentation_class_names
from probes.report.stats import (Bootstrap, Comparison, Samples, StatsError, accuracy_class_changes, adjust,
                                 classification_class_changes, compare, compare_accuracy, compare_segmentation, holm,
                                 interval, miou, segmentation_class_changes)
from probes.report.stats.indices import UniformIndices
from probes.sidefiles import HeadPredictions, SegmentationCounts, SetPredictions


def _paired_outcomes(rng, n, only_a, only_b, both=0.6):
    """Per-image correct vectors of A and B: right in both with prob ``both``, A only / B only as given."""
    cell = rng.choice(4, size=n, p=[both, only_a, only_b, 1 - both - only_a - only_b])
    return np.isin(cell, (0, 1)), np.isin(cell, (0, 2))


# ----------------------------------------------------------------------------- bootstrap intervals
def test_accuracy_interval_covers_the_true_accuracy_about_95_times_in_100():
    p, n, covered = 0.7, 2000, 0
    for seed in range(100):
        correct = np.random.default_rng(1000 + seed).random(n) < p
        low, high = Bootstrap(seed=seed).accuracy("IN-A", correct).interval(0.95)
        covered += low <= 100 * p <= high
    assert 90 <= covered <= 99


def test_point_estimate_is_the_plain_accuracy_and_values_are_resampled_accuracies():
    correct = np.array([1, 1, 1, 0, 0], dtype=bool)
    boot = Bootstrap(n_resamples=20, seed=3)
    samples = boot.accuracy("toy", correct)
    assert samples.point == 60.0
    expected = 100.0 * correct[boot.indices("toy", 5)].mean(axis=1)
    np.testing.assert_allclose(samples.values, expected, rtol=0, atol=1e-12)


def test_many_heads_on_one_set_each_get_their_own_resampled_accuracy():
    rng = np.random.default_rng(0)
    heads = {f"h{k}": rng.random(1000) < k / 10 for k in range(9)}  # 10-bit fields: 6 heads share a word
    boot = Bootstrap(n_resamples=30, seed=2)
    samples = boot.accuracies("IN-R", heads)
    drawn = boot.indices("IN-R", 1000)
    for name, correct in heads.items():
        np.testing.assert_array_equal(samples[name].values, 100.0 * np.count_nonzero(correct[drawn], axis=1) / 1000)


def test_resample_indices_depend_on_seed_set_and_size_not_on_chunking():
    small_chunks = Bootstrap(n_resamples=50, seed=1, chunk_elements=7).indices("IN-R", 30)
    assert np.array_equal(small_chunks, Bootstrap(n_resamples=50, seed=1).indices("IN-R", 30))
    assert not np.array_equal(small_chunks, Bootstrap(n_resamples=50, seed=2).indices("IN-R", 30))
    assert not np.array_equal(small_chunks, Bootstrap(n_resamples=50, seed=1).indices("IN-A", 30))


def test_two_heads_scored_in_separate_calls_share_resamples():
    rng = np.random.default_rng(0)
    a, b = _paired_outcomes(rng, 500, 0.05, 0.08)
    boot = Bootstrap(n_resamples=200)
    together = boot.accuracies("IN-V2", {"a": a, "b": b})
    np.testing.assert_array_equal(boot.accuracy("IN-V2", a).values, together["a"].values)
    np.testing.assert_array_equal(boot.accuracy("IN-V2", b).values, together["b"].values)


def test_delta_of_two_identical_heads_has_a_zero_width_interval():
    correct = np.random.default_rng(0).random(3000) < 0.8
    boot = Bootstrap()
    heads = boot.accuracies("IN-1K", {"linear": correct, "attention_pooling": correct.copy()})
    assert interval(heads["attention_pooling"] - heads["linear"]) == (0.0, 0.0)


def test_average_of_one_set_is_that_set():
    samples = Bootstrap().accuracy("IN-A", np.random.default_rng(0).random(100) < 0.5)
    avg = Samples.mean([samples])
    assert avg.point == samples.point
    np.testing.assert_array_equal(avg.values, samples.values)


def test_average_over_sets_is_the_per_resample_mean_of_independently_resampled_sets():
    rng = np.random.default_rng(0)
    boot = Bootstrap(n_resamples=300)
    first, second = boot.accuracy("IN-A", rng.random(400) < 0.5), boot.accuracy("IN-R", rng.random(400) < 0.7)
    avg = Samples.mean([first, second])
    np.testing.assert_allclose(avg.values, (first.values + second.values) / 2, rtol=0, atol=1e-12)
    assert avg.point == pytest.approx((first.point + second.point) / 2)
    assert abs(np.corrcoef(first.values, second.values)[0, 1]) < 0.2  # independent streams


def test_delta_from_paired_resamples_is_narrower_than_from_independent_ones():
    a, b = _paired_outcomes(np.random.default_rng(0), 5000, 0.01, 0.01)
    paired = Bootstrap().accuracies("IN-1K", {"a": a, "b": b})
    unpaired = Bootstrap(seed=7).accuracy("IN-1K", b).values - paired["a"].values
    low, high = interval(paired["b"] - paired["a"])
    unpaired_low, unpaired_high = np.percentile(unpaired, [2.5, 97.5])
    assert high - low < 0.5 * (unpaired_high - unpaired_low)


def test_combining_unpaired_resamples_of_one_set_is_refused():
    boot = Bootstrap(n_resamples=10)
    with pytest.raises(StatsError, match="unpaired"):
        boot.accuracy("IN-A", np.ones(100, bool)) - boot.accuracy("IN-A", np.ones(99, bool))
    with pytest.raises(StatsError, match="unpaired"):
        other_seed = Bootstrap(n_resamples=10, seed=5)
        boot.accuracy("IN-A", np.ones(100, bool)) - other_seed.accuracy("IN-A", np.ones(100, bool))


def _val_scores(n=300, seed=0):
    """IN-1K and IN-ReaL correct vectors on the same val images (ReaL lenient, 10% of images unlabelled)."""
    rng = np.random.default_rng(seed)
    in1k = rng.random(n) < 0.7
    real = in1k | (rng.random(n) < 0.15)
    labelled = rng.random(n) < 0.9
    return in1k, real, labelled


def test_a_score_of_some_images_is_resampled_with_the_same_draws_as_the_whole_list():
    in1k, real, labelled = _val_scores()
    boot = Bootstrap(n_resamples=200, seed=1)
    samples = boot.accuracies("val", {"1k": in1k, "real": real}, scored={"real": labelled})
    for r, drawn in enumerate(boot.indices("val", len(in1k))):  # brute force, image draw by image draw
        assert samples["1k"].values[r] == pytest.approx(100 * in1k[drawn].mean(), abs=1e-9)
        assert samples["real"].values[r] == pytest.approx(100 * real[drawn][labelled[drawn]].mean(), abs=1e-9)
    assert samples["real"].point == pytest.approx(100 * real[labelled].mean())
    # Alone (another call) the ReaL score lands on the same resamples.
    np.testing.assert_array_equal(boot.accuracy("val", real, labelled).values, samples["real"].values)
    assert np.corrcoef(samples["1k"].values, samples["real"].values)[0, 1] > 0.5  # one draw drives both


def test_an_average_over_two_scores_of_one_image_list_counts_each_image_once():
    in1k, real, labelled = _val_scores()
    boot = Bootstrap(n_resamples=50)
    a = boot.accuracies("val", {"1k": in1k, "real": real}, scored={"real": labelled})
    b = boot.accuracies("val", {"1k": ~in1k, "real": ~real}, scored={"real": labelled})
    assert a["real"].n_images == int(labelled.sum()) and a["1k"].n_images == 300
    other = boot.accuracy("IN-A", np.ones(40, bool))
    result = compare(Samples.mean([a["1k"], a["real"], other]), Samples.mean([b["1k"], b["real"], other]))
    assert result.n == 300 + 40
    assert compare(a["real"], b["real"]).n == int(labelled.sum())


def test_a_score_of_no_image_is_refused():
    with pytest.raises(StatsError, match="scores no image"):
        Bootstrap(n_resamples=5).accuracy("val", np.ones(4, bool), np.zeros(4, bool))


# ----------------------------------------------------------------------------- paired comparison
def test_planted_two_percent_gain_is_significant():
    rng = np.random.default_rng(0)
    a = rng.random(5000) < 0.7
    b = a.copy()
    b[rng.choice(np.flatnonzero(~a), size=100, replace=False)] = True  # B right where A is wrong on 2%
    ids = np.array([f"img{i:05d}.jpg" for i in range(5000)])
    result = compare_accuracy(ids, a, ids[::-1], b[::-1], "IN-V2")  # B listed in another order
    assert result.difference == pytest.approx(2.0)
    assert result.significant and result.p_value < 0.01 and result.ci_low > 0 and result.n == 5000


def test_identical_predictions_are_not_significant():
    a = np.random.default_rng(0).random(5000) < 0.7
    ids = np.arange(5000).astype(str)
    result = compare_accuracy(ids, a, ids, a.copy(), "IN-V2")
    assert (result.difference, result.ci_low, result.ci_high, result.p_value, result.significant) == (0, 0, 0, 1, False)


def test_equal_rate_random_flips_are_not_significant_in_at_least_90_of_100_seeds():
    ids = np.arange(2000).astype(str)
    calm = 0
    for seed in range(100):
        a, b = _paired_outcomes(np.random.default_rng(seed), 2000, 0.05, 0.05)
        calm += compare_accuracy(ids, a, ids, b, "IN-V2", Bootstrap(seed=seed)).p_value > 0.05
    assert calm >= 90


def test_comparison_uses_only_images_both_versions_scored():
    ids_a = np.array(["x", "y", "z", "w"])
    ids_b = np.array(["z", "y", "v"])
    result = compare_accuracy(ids_a, np.array([0, 0, 1, 1], bool), ids_b, np.array([1, 1, 1], bool), "IN-A")
    assert (result.n, result.a, result.b) == (2, 50.0, 100.0)


def test_compare_refuses_statistics_of_different_sets():
    boot = Bootstrap(n_resamples=10)
    with pytest.raises(StatsError, match="same sets"):
        compare(boot.accuracy("IN-A", np.ones(5, bool)), boot.accuracy("IN-R", np.ones(5, bool)))


# ----------------------------------------------------------------------------- multiplicity
def test_holm_matches_hand_computed_adjusted_p_values():
    # m = 4 tests (NaN is no test). Sorted: 0.005, 0.01, 0.03, 0.04 -> 4 x 0.005 = 0.02, 3 x 0.01 = 0.03,
    # 2 x 0.03 = 0.06, 1 x 0.04 = 0.04 -> running max 0.02, 0.03, 0.06, 0.06.
    adjusted = holm([0.01, 0.04, 0.03, 0.005, float("nan")])
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adjusted[4])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # 2 x 0.5 = 1, capped; 0.6 < 1 raised to it
    np.testing.assert_allclose(holm([0.02, 0.02, 0.02]), [0.06, 0.06, 0.06])  # ties
    np.testing.assert_allclose(holm([0.2]), [0.2])  # a family of one is not adjusted
    assert holm([]).shape == (0,)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])


def _result(p_value: float) -> Comparison:
    """A comparison whose interval excludes 0, with the given p-value (as `compare` returns it alone)."""
    return Comparison(a=50.0, b=51.0, difference=1.0, ci_low=0.2, ci_high=1.8, p_value=p_value, p_adjusted=p_value,
                      significant=p_value < 0.05, n=100)


def test_adjust_marks_on_the_adjusted_p_value_and_passes_notes_through():
    # m = 3: 0.001, 0.03, 0.5 -> 3 x 0.001 = 0.003, 2 x 0.03 = 0.06, 0.5 -> 0.003, 0.06, 0.5.
    family = adjust({"strong": _result(0.001), "weak": _result(0.03), "null": _result(0.5),
                     "none": "no per-image predictions: no interval"})
    assert family["none"] == "no per-image predictions: no interval"  # not a test: m stays 3
    assert family["strong"].p_adjusted == pytest.approx(0.003) and family["strong"].significant
    weak = family["weak"]
    assert (weak.p_value, weak.p_adjusted, weak.significant) == (0.03, pytest.approx(0.06), False)
    assert weak.ci_low > 0  # its own interval still excludes 0: it just does not survive the family
    assert family["null"].p_adjusted == 0.5 and not family["null"].significant
    alone = compare_accuracy(np.arange(4).astype(str), np.ones(4, bool), np.arange(4).astype(str), np.ones(4, bool),
                             "IN-A")
    assert alone.p_adjusted == alone.p_value  # one compare() is a family of one


def test_holm_marks_keep_the_family_wise_error_at_5_percent_over_null_families():
    # 300 families of 26 null cells (a comparison's size: 15 classification + 11 segmentation), each
    # cell two versions with equal-rate flips on 200 images, all through the report's bootstrap.
    families, m, raw, adjusted = 300, 26, 0, 0
    for f in range(families):
        rng = np.random.default_rng(f)
        vectors = {}
        for c in range(m):
            vectors[(c, "a")], vectors[(c, "b")] = _paired_outcomes(rng, 200, 0.1, 0.1)
        samples = Bootstrap(n_resamples=1000, seed=f).accuracies(f"family {f}", vectors)
        cells = {c: compare(samples[(c, "a")], samples[(c, "b")]) for c in range(m)}
        raw += any(c.significant for c in cells.values())  # a family of one each: unadjusted marks
        adjusted += any(c.significant for c in adjust(cells).values())
    error = np.sqrt(0.05 * 0.95 / families)  # Monte-Carlo standard error at 5%
    assert adjusted / families <= 0.05 + 2 * error
    assert raw / families > 0.5  # without the adjustment most null comparisons carry a false mark


# ----------------------------------------------------------------------------- mIoU
def _hand_made_counts():
    # 6 images x 4 classes; class 3 never appears (union 0: skipped), class 2 only in image 4.
    intersect = np.array([[5, 0, 0, 0], [3, 2, 0, 0], [0, 7, 0, 0], [1, 1, 0, 0], [0, 0, 4, 0], [2, 0, 0, 0]])
    union = np.array([[8, 1, 0, 0], [3, 5, 0, 0], [2, 9, 0, 0], [4, 3, 1, 0], [1, 0, 6, 0], [2, 1, 0, 0]])
    return intersect, union


def test_miou_point_matches_mmseg_iou_metric():
    from probes.segmentation.mm_compat import import_mmseg

    import_mmseg()
    import torch
    from mmseg.evaluation.metrics import IoUMetric

    intersect, union = _hand_made_counts()
    label, pred = intersect, union  # consistent areas: union = pred + label - intersect
    metrics = IoUMetric.total_area_to_metrics(*(torch.tensor(x.sum(0), dtype=torch.float64)
                                                for x in (intersect, union, pred, label)), ["mIoU"])
    assert miou(intersect, union) == pytest.approx(100 * float(np.nanmean(metrics["IoU"])), abs=1e-9)


def test_miou_bootstrap_equals_a_brute_force_loop_over_images():
    intersect, union = _hand_made_counts()
    boot = Bootstrap(n_resamples=200, seed=4)
    samples = boot.miou("ADE20K", intersect, union)
    for r, drawn in enumerate(boot.indices("ADE20K", len(intersect))):
        inter, uni = [0] * 4, [0] * 4
        for i in drawn.tolist():
            for c in range(4):
                inter[c] += int(intersect[i, c])
                uni[c] += int(union[i, c])
        ious = [100.0 * x / u for x, u in zip(inter, uni) if u > 0]
        assert samples.values[r] == pytest.approx(sum(ious) / len(ious), abs=1e-9)
    assert samples.point == pytest.approx((100 * 11 / 20 + 100 * 10 / 19 + 100 * 4 / 7) / 3, abs=1e-9)


def test_segmentation_comparison_pairs_images_by_id():
    intersect, union = _hand_made_counts()
    ids = np.array([f"val_{i}.png" for i in range(6)])
    label = np.maximum(intersect, union - 1)
    a = SegmentationCounts(ids, ("a", "b", "c", "d"), intersect, union, label, np.zeros(4))
    flipped = SegmentationCounts(ids[::-1], a.class_names, intersect[::-1], union[::-1], label[::-1], np.zeros(4))
    result = compare_segmentation(a, flipped, "ADE20K")
    assert (result.difference, result.ci_low, result.ci_high, result.n) == (0.0, 0.0, 0.0, 6)


# ----------------------------------------------------------------------------- per-class changes
def _set(ids, labels, correct):
    top5 = np.zeros((len(ids), 5), dtype=np.int16)
    return SetPredictions(np.array(ids), np.array(labels), {"h": HeadPredictions(top5, np.array(correct, bool))})


def test_classification_class_changes_list_gains_and_losses_in_order_with_names():
    # class 0: A 1/2 -> B 2/2 (+50); class 1: 2/2 -> 1/2 (-50); class 2: 2/4 -> 3/4 (+25); class 3: 1/1 both.
    labels = [0, 0, 1, 1, 2, 2, 2, 2, 3]
    correct_a = [1, 0, 1, 1, 1, 1, 0, 0, 1]
    correct_b = [1, 1, 1, 0, 1, 1, 1, 0, 1]
    ids = [f"i{k}" for k in range(9)]
    a = _set(ids, labels, correct_a)
    # B lists its images in reverse and holds one extra image A never scored (left out).
    b = _set(ids[::-1] + ["extra"], labels[::-1] + [1], correct_b[::-1] + [0])
    names = ["tench", "goldfish", "shark", "hen"]
    changes = classification_class_changes(a, "h", b, "h", class_names=names, k=10)
    assert changes.gains.to_dict("list") == {"class_index": [0, 2], "class_name": ["tench", "shark"],
                                             "a": [50.0, 50.0], "b": [100.0, 75.0], "change": [50.0, 25.0],
                                             "n": [2, 4]}
    assert changes.losses.to_dict("list") == {"class_index": [1], "class_name": ["goldfish"], "a": [100.0],
                                              "b": [50.0], "change": [-50.0], "n": [2]}
    assert list(changes.classes["class_index"]) == [0, 2, 3, 1]
    assert list(classification_class_changes(a, "h", b, "h", class_names=names, k=1).gains["class_index"]) == [0]


def test_accuracy_class_changes_skip_classes_without_images():
    changes = accuracy_class_changes(np.array([0, 0, 2]), np.array([0, 0, 1], bool), np.array([1, 0, 1], bool),
                                     class_names=["a", "b", "c"])
    assert list(changes.classes["class_index"]) == [0, 2]


def test_segmentation_class_changes_use_summed_counts_over_shared_images():
    ids = np.array(["a.png", "b.png", "c.png"])
    label = np.array([[10, 4, 0], [10, 0, 0], [0, 4, 5]])
    union_a = np.array([[10, 4, 0], [10, 0, 0], [0, 4, 5]])
    inter_a = np.array([[5, 4, 0], [5, 0, 0], [0, 4, 5]])     # IoU: 50, 100, 100
    union_b = np.array([[10, 8, 0], [10, 0, 0], [0, 4, 5]])
    inter_b = np.array([[10, 2, 0], [6, 0, 0], [0, 4, 5]])    # IoU: 80, 50, 100
    a = SegmentationCounts(ids, ("wall", "sky", "tree"), inter_a, union_a, label, np.zeros(3))
    b = SegmentationCounts(ids, ("wall", "sky", "tree"), inter_b, union_b, label, np.zeros(3))
    changes = segmentation_class_changes(a, b, k=5)
    assert changes.gains.to_dict("list") == {"class_index": [0], "class_name": ["wall"], "a": [50.0], "b": [80.0],
                                             "change": [30.0], "n": [20]}
    assert changes.losses.to_dict("list") == {"class_index": [1], "class_name": ["sky"], "a": [100.0],
                                              "b": [50.0], "change": [-50.0], "n": [8]}


# ----------------------------------------------------------------------------- class names
def test_imagenet_class_names_are_unique_and_in_class_index_order():
    names = imagenet_class_names()
    assert len(names) == 1000 == len(set(names))
    assert (names[0], names[1], names[134], names[517]) == ("tench", "goldfish", "crane (n02012849)",
                                                             "crane (n03126707)")


def test_segmentation_class_names_come_from_mmseg_metainfo():
    ade, coco = segmentation_class_names("ADE20K"), segmentation_class_names("COCO-Stuff")
    assert (len(ade), ade[0], len(coco), coco[0]) == (150, "wall", 171, "person")
    with pytest.raises(ConfigError, match="ADE"):
        segmentation_class_names("ade")


# ----------------------------------------------------------------------------- index stream
def test_index_stream_is_the_same_however_it_is_split_even_with_many_rejections():
    n = (1 << 31) + 1  # 2**32 mod n = 2**31 - 1: about half of all draws are rejected and replaced
    whole = UniformIndices(np.random.SeedSequence(5), n).take(1001)
    pieces = UniformIndices(np.random.SeedSequence(5), n)
    split = np.concatenate([pieces.take(k) for k in (1, 0, 7, 500, 493)])
    np.testing.assert_array_equal(split, whole)
    assert whole.min() >= 0 and whole.max() < n


def test_index_stream_is_uniform():
    counts = np.bincount(UniformIndices(np.random.SeedSequence(0), 7).take(700_000), minlength=7)
    # chi-square with 6 degrees of freedom: 22.5 is its 0.999 quantile
    assert ((counts - 100_000) ** 2 / 100_000).sum() < 22.5


def test_index_stream_rejects_the_draws_that_would_bias_multiply_shift():
    # n = 3 * 2**30: plain (u * n) >> 32 would give indices divisible by 3 half of the time, not a third.
    drawn = UniformIndices(np.random.SeedSequence(1), 3 << 30).take(30_000)
    assert abs(np.mean(drawn % 3 == 0) - 1 / 3) < 0.02
