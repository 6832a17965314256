"""Curves as a report keeps them: ROC and precision-recall curves cut to at most CURVE_POINTS
evenly spread points (classification and anomaly detection draw them alike)."""

from __future__ import annotations

import numpy as np

CURVE_POINTS = 200  # points kept per ROC or precision-recall curve


def thin(**curves: np.ndarray) -> dict[str, list[float]]:
    """Curves cut to at most CURVE_POINTS evenly spread points, the first and last kept."""
    length = len(next(iter(curves.values())))
    if length > CURVE_POINTS:
        keep = np.unique(np.linspace(0, length - 1, CURVE_POINTS).round().astype(int))
        curves = {name: values[keep] for name, values in curves.items()}
    return {name: np.asarray(values, dtype=float).tolist() for name, values in curves.items()}
