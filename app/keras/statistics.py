"""Statistics of an array for the event log: mean, std, min, max and a histogram of its finite
values, rounded to 6 significant digits so that the log stays small."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def array_stats(values: np.ndarray, bins: int = 30) -> dict[str, Any]:
    """Mean, std, min, max and histogram {edges, counts} of an array's finite values.

    Non-finite values are left out and counted in "nonfinite", present only when there are
    any; with no finite value at all, the statistics are None."""
    values = np.asarray(values).ravel()
    low, high = (values.min(), values.max()) if values.size else (np.nan, np.nan)
    nonfinite = 0
    if not (np.isfinite(low) and np.isfinite(high)):  # min and max propagate NaN: one check
        finite = values[np.isfinite(values)]
        nonfinite = values.size - finite.size
        values = finite
        if not values.size:
            empty = dict.fromkeys(("mean", "std", "min", "max", "hist"))
            return {**empty, "nonfinite": nonfinite} if nonfinite else empty
        low, high = values.min(), values.max()
    counts, edges = histogram(values, float(low), float(high), bins)
    stats = {
        "mean": significant(values.mean()),
        "std": significant(values.std()),
        "min": significant(low),
        "max": significant(high),
        "hist": {"edges": [significant(edge) for edge in edges], "counts": counts.tolist()},
    }
    if nonfinite:
        stats["nonfinite"] = nonfinite
    return stats


def histogram(values: np.ndarray, low: float, high: float, bins: int) -> tuple:
    """np.histogram(values, bins, range=(low, high)) for finite values within the range, up
    to float rounding at bin edges, in a fraction of its time on small arrays."""
    low, high = float(low), float(high)
    if low == high:  # as numpy does: one unit around the value
        low, high = low - 0.5, high + 0.5
    width = high - low
    if not (math.isfinite(width) and width > 0):
        # weights that blew up past float range: every value in one bin says so plainly
        counts = np.zeros(bins, dtype=np.intp)
        counts[0] = values.size
        return counts, np.linspace(low, high, bins + 1) if math.isfinite(width) else np.full(
            bins + 1, np.nan
        )
    index = ((values - low) * (bins / width)).astype(np.intp)
    counts = np.bincount(np.minimum(index, bins - 1, out=index), minlength=bins)
    return counts, np.linspace(low, high, bins + 1)


def significant(value: Any) -> float:
    """`value` as a float rounded to 6 significant digits."""
    return float(f"{float(value):.6g}")
