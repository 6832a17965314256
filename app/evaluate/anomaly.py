"""Anomaly detection metrics, with scikit-learn: an autoencoder's reconstruction error is its
anomaly score, and a row whose error is above a threshold is flagged anomalous.

`reconstruction_errors` gives each row's error (the mean squared difference between the
model's output and its input), `error_threshold` the threshold (a percentile of the errors of
normal validation rows) and `anomaly_metrics` a summary (threshold, rate flagged; with labels,
ROC AUC and average precision of the error against "anomalous", and precision, recall and F1
of the flags) and the detail a report draws (the error distribution of normal and anomalous
rows, ROC and precision-recall curves, the confusion at the threshold).

It takes NumPy arrays and knows nothing of runs. Importing this module does not import
TensorFlow or scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.evaluate.curves import thin

HISTOGRAM_BINS = 40
DEFAULT_PERCENTILE = 95.0
LABELS = ("normal", "anomalous")


def reconstruction_errors(outputs: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Each row's mean squared difference between the model's output and its input."""
    count = len(inputs)
    difference = np.asarray(outputs, dtype=np.float64).reshape(count, -1) - np.asarray(
        inputs, dtype=np.float64
    ).reshape(count, -1)
    return (difference**2).mean(axis=1)


def error_threshold(normal_errors: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> float:
    """The error above which a row is anomalous: the `percentile`th percentile of the errors
    of normal rows (linear interpolation, NumPy's default)."""
    if len(normal_errors) == 0:
        raise ValueError("No normal rows to set the anomaly threshold on")
    return float(np.percentile(np.asarray(normal_errors, dtype=np.float64), percentile))


def anomaly_metrics(
    errors: np.ndarray, anomalous: np.ndarray | None, threshold: float
) -> tuple[dict[str, float], dict[str, Any]]:
    """Summary and detail of anomaly scores against a threshold, with scikit-learn.

    Args:
        errors: each row's reconstruction error (n,): the higher, the more anomalous.
        anomalous: whether each row is truly anomalous (n,) booleans, or None without labels.
        threshold: rows with an error above it are flagged anomalous.

    Returns:
        (summary: threshold, flagged_rate, error_mean and, with labels, roc_auc and
        average_precision (when both kinds of rows are there), precision, recall and f1 of
        the flags; detail: threshold, histogram {edges, normal and anomalous counts, or all},
        and with labels the confusion {labels, matrix: true rows, flagged columns}, roc and
        pr curves of "anomalous", as classification_metrics gives them).
    """
    from sklearn.metrics import (
        average_precision_score,
        confusion_matrix,
        precision_recall_curve,
        precision_recall_fscore_support,
        roc_auc_score,
        roc_curve,
    )

    errors = np.asarray(errors, dtype=np.float64).reshape(-1)
    flagged = errors > threshold
    summary: dict[str, float] = {
        "threshold": float(threshold),
        "flagged_rate": float(flagged.mean()),
        "error_mean": float(errors.mean()),
    }
    edges = np.histogram_bin_edges(errors, bins=HISTOGRAM_BINS)
    detail: dict[str, Any] = {"threshold": float(threshold), "histogram": {"edges": edges.tolist()}}
    if anomalous is None:
        detail["histogram"]["all"] = np.histogram(errors, edges)[0].tolist()
        return summary, detail
    truth = np.asarray(anomalous, dtype=bool).reshape(-1)
    detail["histogram"]["normal"] = np.histogram(errors[~truth], edges)[0].tolist()
    detail["histogram"]["anomalous"] = np.histogram(errors[truth], edges)[0].tolist()
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, flagged, average="binary", zero_division=0
    )
    summary.update(precision=float(precision), recall=float(recall), f1=float(f1))
    detail["confusion"] = {
        "labels": list(LABELS),
        "matrix": confusion_matrix(truth, flagged, labels=[False, True]).tolist(),
    }
    detail["roc"], detail["pr"] = [], []
    if truth.min() != truth.max():  # AUC needs both normal and anomalous rows
        summary["roc_auc"] = float(roc_auc_score(truth, errors))
        summary["average_precision"] = float(average_precision_score(truth, errors))
        fpr, tpr, _ = roc_curve(truth, errors)
        curve_precision, curve_recall, _ = precision_recall_curve(truth, errors)
        detail["roc"].append(
            {"class": LABELS[1], "auc": summary["roc_auc"], **thin(fpr=fpr, tpr=tpr)}
        )
        detail["pr"].append(
            {
                "class": LABELS[1],
                "average_precision": summary["average_precision"],
                "prevalence": float(truth.mean()),
                **thin(precision=curve_precision, recall=curve_recall),
            }
        )
    return summary, detail
