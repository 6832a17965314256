"""Train / validation / test splits, stored as lists of row indices.

A split is made once per dataset version and saved beside it (JSON), so every run on that
version trains, validates and tests on the same rows. The same `n`, labels, fractions and seed
always give the same split. Rows that are not to be used (those without a target) are in none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

SPLIT_NAMES = ("train", "validation", "test")


def make_splits(
    n: int,
    labels: Sequence | None = None,
    fractions: Sequence[float] = (0.7, 0.2, 0.1),
    seed: int = 0,
    shuffle: bool = True,
    keep: Sequence[bool] | None = None,
) -> dict[str, list[int]]:
    """Split the rows 0..n-1 into train, validation and test.

    With `labels` (classification) the split is stratified: each class is divided by the
    fractions on its own, so every split holds each class within one sample of its expected
    count, and the split sizes are kept as close to `fractions * n` as that allows.

    Args:
        n: the number of rows.
        labels: one class label per row, to stratify on; None for a plain random split.
        fractions: the train, validation and test fractions; each in (0, 1), summing to 1.
        seed: the seed of the shuffle.
        shuffle: False keeps the rows in order (train first, then validation, then test),
            as a time series needs so that no split sees the future of another.
        keep: which rows to split, one flag per row (default: all); the others are in no
            split, and the fractions apply to the rows kept.

    Returns:
        {"train": [...], "validation": [...], "test": [...]}, each list sorted.
    """
    if keep is not None:
        if len(keep) != n:
            raise ValueError(f"Received {len(keep)} `keep` flags for n={n} rows; one per row")
        kept = np.flatnonzero(np.asarray(keep, dtype=bool))
        kept_labels = None if labels is None else [labels[i] for i in kept]
        split = make_splits(len(kept), kept_labels, fractions, seed, shuffle)
        return {name: [int(kept[i]) for i in rows] for name, rows in split.items()}
    fractions = _checked_fractions(fractions)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(
            f"Received an invalid value for `n`, expected a positive integer. Received: n={n!r}"
        )
    n = int(n)
    if labels is not None and len(labels) != n:
        raise ValueError(
            f"Received {len(labels)} labels for n={n} rows; `labels` needs one label per row"
        )
    sizes = _apportion(n, fractions)
    for name, size in zip(SPLIT_NAMES, sizes, strict=True):
        if size == 0:
            raise ValueError(
                f"The {name} split would be empty with n={n} rows and fractions={fractions}; "
                "use more rows or a larger fraction for it"
            )
    rng = np.random.default_rng(seed)
    if not shuffle:
        if labels is not None:
            raise ValueError(
                "Received `labels` with shuffle=False; an ordered split cannot be stratified, "
                "pass labels=None"
            )
        parts = np.split(np.arange(n), np.cumsum(sizes)[:-1])
    elif labels is None:
        parts = np.split(rng.permutation(n), np.cumsum(sizes)[:-1])
    else:
        parts = _stratified(labels, fractions, sizes, rng)
    return {
        name: sorted(int(i) for i in part) for name, part in zip(SPLIT_NAMES, parts, strict=True)
    }


def _checked_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        values = ()
    valid = (
        len(values) == 3
        and all(0.0 < f < 1.0 for f in values)
        and math.isclose(sum(values), 1.0, abs_tol=1e-6)
    )
    if not valid:
        raise ValueError(
            "Received an invalid value for `fractions`, expected three numbers (train, "
            "validation, test), each between 0 and 1 (exclusive), summing to 1. "
            f"Received: fractions={tuple(fractions) if _iterable(fractions) else fractions!r}"
        )
    return values  # type: ignore[return-value]


def _iterable(value: object) -> bool:
    try:
        iter(value)  # type: ignore[call-overload]
    except TypeError:
        return False
    return True


def _apportion(n: int, fractions: Sequence[float]) -> list[int]:
    """Whole counts summing to n, each the floor or ceiling of fraction * n (largest remainder,
    ties to the earlier split)."""
    exact = [f * n for f in fractions]
    counts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(exact)), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in by_remainder[: n - sum(counts)]:
        counts[k] += 1
    return counts


def _stratified(
    labels: Sequence,
    fractions: Sequence[float],
    sizes: list[int],
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Per class: floor(fraction * class size) rows to each split, then the class's leftover
    rows (fewer than three) one each to the splits furthest below their overall size. Every
    class count thus stays within one of its expected value, which a two-step
    `train_test_split` does not promise for the third split, and a class with rows always has
    one in train."""
    # factorize gives missing labels the code -1: they form a class of their own.
    codes, _ = pd.factorize(pd.Series(list(labels), dtype=object), use_na_sentinel=True)
    classes = [np.flatnonzero(codes == code) for code in np.unique(codes)]
    members = [rng.permutation(rows) for rows in classes]
    counts = [[math.floor(f * len(rows)) for f in fractions] for rows in members]
    missing = [size - sum(c[k] for c in counts) for k, size in enumerate(sizes)]
    leftovers = [len(rows) - sum(c) for rows, c in zip(members, counts, strict=True)]
    # Classes with the most leftover rows first, then in a seeded order: a greedy fill in this
    # order (Havel-Hakimi) meets every split's size whenever that is possible.
    order = sorted(rng.permutation(len(members)), key=lambda i: -leftovers[i])
    for i in order:
        exact = [f * len(members[i]) for f in fractions]
        # Only splits whose expected count has a fractional part may take a leftover row.
        eligible = [k for k in range(len(fractions)) if exact[k] - counts[i][k] > 1e-9]
        ranked = sorted(eligible, key=lambda k: (-missing[k], -(exact[k] - counts[i][k]), k))
        if counts[i][0] == 0:
            # A class the train split would not see could not be learned: train goes first.
            ranked = [0] + [k for k in ranked if k != 0]
        for k in ranked[: leftovers[i]]:
            counts[i][k] += 1
            missing[k] -= 1
    _rebalance(members, fractions, counts, missing)
    parts: list[list[int]] = [[] for _ in fractions]
    for rows, class_counts in zip(members, counts, strict=True):
        bounds = np.cumsum(class_counts)[:-1]
        for k, chunk in enumerate(np.split(rows, bounds)):
            parts[k].extend(chunk.tolist())
    return [np.asarray(part, dtype=np.int64) for part in parts]


def _rebalance(
    members: list[np.ndarray],
    fractions: Sequence[float],
    counts: list[list[int]],
    missing: list[int],
) -> None:
    """Move leftover rows from splits above their size to splits below it, one class at a
    time, where that keeps the class within one of its expected count (the greedy fill can
    miss by a row when few splits could take a class's leftovers)."""
    moved = True
    while moved and any(missing):
        moved = False
        for i, rows in enumerate(members):
            floors = [math.floor(f * len(rows)) for f in fractions]
            exact = [f * len(rows) for f in fractions]
            over = [j for j in range(len(fractions)) if missing[j] < 0 and counts[i][j] > floors[j]]
            under = [
                k
                for k in range(len(fractions))
                if missing[k] > 0 and counts[i][k] == floors[k] and exact[k] - floors[k] > 1e-9
            ]
            if over and under and not (over[0] == 0 and counts[i][0] == 1):
                counts[i][over[0]] -= 1
                counts[i][under[0]] += 1
                missing[over[0]] += 1
                missing[under[0]] -= 1
                moved = True
