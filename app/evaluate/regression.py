"""Regression metrics, with scikit-learn: `regression_metrics` gives a summary (mae, mse, rmse,
r2) and the detail a report draws (predicted against actual, residuals and their histogram).

It takes targets and predictions as NumPy arrays and knows nothing of runs. Importing this
module does not import TensorFlow or scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

HISTOGRAM_BINS = 30


def regression_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    max_points: int = 2000,
    seed: int = 0,
    rows: Sequence[int] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Summary (mae, mse, rmse, r2) and detail (points of predicted against actual and of
    residuals, at most `max_points`; a histogram of every residual) of a regression, with
    scikit-learn. Several values per sample (a forecast horizon) count as one each.

    Args:
        y_true, y_pred: the targets and predictions, (n,) or (n, k).
        max_points: the most points kept for charts (an even random subset).
        seed: the seed of that subset.
        rows: each sample's row in the dataset, kept with its points (default: 0..n-1).
    """
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    actual = np.asarray(y_true, dtype=np.float64).reshape(-1)
    predicted = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    mse = mean_squared_error(actual, predicted)
    summary = {
        "mae": float(mean_absolute_error(actual, predicted)),
        "mse": float(mse),
        "rmse": float(math.sqrt(mse)),
    }
    if len(actual) > 1:
        summary["r2"] = float(r2_score(actual, predicted))
    residuals = actual - predicted
    samples = len(np.asarray(y_true))
    per_sample = max(1, len(actual) // max(samples, 1))
    rows = list(range(samples)) if rows is None else list(rows)
    kept = np.arange(len(actual))
    if len(kept) > max_points:
        kept = np.sort(np.random.default_rng(seed).choice(len(kept), max_points, replace=False))
    counts, edges = np.histogram(residuals, bins=HISTOGRAM_BINS)
    detail = {
        "points": {
            "rows": [int(rows[k // per_sample]) for k in kept],
            "actual": actual[kept].tolist(),
            "predicted": predicted[kept].tolist(),
            "residual": residuals[kept].tolist(),
            "total": len(actual),
        },
        "residual_histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        "residual_mean": float(residuals.mean()),
        "residual_std": float(residuals.std()),
    }
    return summary, detail
