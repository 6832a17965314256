import json

import numpy as np
import pytest

from app.data.splits import make_splits


def _labels(counts: dict[str, int], seed: int = 0) -> list[str]:
    labels = [name for name, count in counts.items() for _ in range(count)]
    return list(np.random.default_rng(seed).permutation(labels))


def test_split_sizes_follow_the_fractions():
    splits = make_splits(1000, fractions=(0.7, 0.2, 0.1), seed=3)

    assert [len(splits[name]) for name in ("train", "validation", "test")] == [700, 200, 100]


def test_splits_are_disjoint_and_cover_every_row():
    splits = make_splits(257, seed=1)

    rows = splits["train"] + splits["validation"] + splits["test"]
    assert sorted(rows) == list(range(257))


def test_stratified_split_keeps_each_class_within_one_sample_of_its_share():
    counts = {"common": 331, "middle": 123, "rare": 47}
    labels = np.array(_labels(counts))
    fractions = (0.7, 0.2, 0.1)

    splits = make_splits(len(labels), labels, fractions=fractions, seed=5)

    for name, fraction in zip(("train", "validation", "test"), fractions, strict=True):
        held = labels[splits[name]]
        for label, count in counts.items():
            assert abs(int((held == label).sum()) - fraction * count) <= 1, (name, label)


def test_stratified_split_puts_a_lone_sample_of_a_class_in_train():
    labels = ["a"] * 40 + ["b"] * 40 + ["lonely"]

    splits = make_splits(len(labels), labels, seed=0)

    assert labels.index("lonely") in splits["train"]


def test_same_seed_gives_the_same_split():
    labels = _labels({"x": 60, "y": 40})

    assert make_splits(100, labels, seed=7) == make_splits(100, labels, seed=7)


def test_another_seed_gives_another_split():
    assert make_splits(100, seed=1)["test"] != make_splits(100, seed=2)["test"]


def test_ordered_split_keeps_time_order():
    splits = make_splits(10, fractions=(0.6, 0.2, 0.2), shuffle=False)

    assert splits == {"train": [0, 1, 2, 3, 4, 5], "validation": [6, 7], "test": [8, 9]}


def test_split_survives_json():
    splits = make_splits(50, _labels({"a": 25, "b": 25}), seed=0)

    assert json.loads(json.dumps(splits)) == splits


@pytest.mark.parametrize(
    "fractions",
    [(0.7, 0.2, 0.2), (0.8, 0.2, 0.0), (1.0, 0.0, 0.0), (0.5, 0.5), (-0.1, 0.6, 0.5), "70/20/10"],
)
def test_invalid_fractions_are_refused_naming_the_setting(fractions):
    with pytest.raises(ValueError, match=r"`fractions`.*Received: fractions="):
        make_splits(100, fractions=fractions)


def test_labels_must_match_the_number_of_rows():
    with pytest.raises(ValueError, match="labels"):
        make_splits(10, labels=["a"] * 9)


def test_too_few_rows_for_a_split_is_refused():
    with pytest.raises(ValueError, match="test split would be empty"):
        make_splits(4, fractions=(0.7, 0.2, 0.1))


def test_rows_not_kept_are_in_no_split_and_the_rest_split_as_usual():
    labels = _labels({"a": 60, "b": 40})
    keep = [i % 10 != 3 for i in range(100)]
    splits = make_splits(100, labels, keep=keep)
    used = sorted(sum(splits.values(), []))
    assert used == [i for i in range(100) if i % 10 != 3]
    assert {k: len(v) for k, v in splits.items()} == {"train": 63, "validation": 18, "test": 9}
    kept = [i for i in range(100) if keep[i]]
    inner = make_splits(90, [labels[i] for i in kept])
    assert splits == {k: [kept[i] for i in v] for k, v in inner.items()}
