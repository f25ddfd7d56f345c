"""Class metadata comes from timm's bundled files and agrees with itself."""
from probes.classification import imagenet_info as info


def test_wnids_are_the_sorted_1000():
    wnids = info.imagenet_wnids()
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids)
    assert info.wnid_to_index()["n01440764"] == 0


def test_lemmas_follow_class_order():
    assert info.lemmas()[0] == "tench"
    assert len(info.lemmas()) == 1000


def test_in_a_and_in_r_are_different_200_class_sets_sharing_86():
    a, r = info.imagenet_a_indices(), info.imagenet_r_indices()
    assert len(a) == len(r) == 200
    assert list(a) == sorted(a) and list(r) == sorted(r)
    assert len(set(a) & set(r)) == 86


def test_bundled_real_labels_have_3163_empty_lists():
    real = info.bundled_real_labels()
    assert len(real) == 50_000
    assert sum(1 for x in real if not x) == 3163
