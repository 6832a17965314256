"""Segmentation metrics: `segmentation_metrics` gives IoU and Dice per class, their means and
pixel accuracy from a pixel confusion matrix (which `predict_split` adds up batch by batch,
so that no test split's masks need to be held whole).

It knows nothing of runs. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def segmentation_metrics(
    confusion: np.ndarray, classes: Sequence[str]
) -> tuple[dict[str, float], dict[str, Any]]:
    """IoU and Dice per class, their means and pixel accuracy, from a pixel confusion matrix
    (rows: true class, columns: predicted). A class neither present nor predicted has no IoU
    or Dice and is left out of the means.

    Args:
        confusion: (classes, classes) pixel counts.
        classes: the class names (mask values), in id order.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    count = len(confusion)
    names = list(classes) if len(classes) == count else [str(i) for i in range(count)]
    tp = np.diag(confusion)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        dice = np.where(union > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    summary = {
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        "mean_dice": float(np.nanmean(dice)) if np.isfinite(dice).any() else None,
        "pixel_accuracy": float(tp.sum() / max(confusion.sum(), 1)),
    }
    per_class = [
        {
            "class": names[c],
            "iou": None if np.isnan(iou[c]) else float(iou[c]),
            "dice": None if np.isnan(dice[c]) else float(dice[c]),
            "pixels": int(confusion[c].sum()),
            "predicted_pixels": int(confusion[:, c].sum()),
        }
        for c in range(count)
    ]
    detail = {
        "classes": names,
        "per_class": per_class,
        "confusion": {"labels": names, "matrix": confusion.astype(np.int64).tolist()},
    }
    return {k: v for k, v in summary.items() if v is not None}, detail
