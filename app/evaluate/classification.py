"""Classification metrics, with scikit-learn: `classification_metrics` gives a summary
(accuracy, balanced accuracy, macro precision, recall and F1, weighted F1, ROC AUC, average
precision, log loss, ECE, top-k accuracy) and the detail a report draws (per-class table,
confusion matrix, ROC and precision-recall curves), `calibration_detail` the reliability
curve and expected calibration error.

Both take class ids and class probabilities as NumPy arrays and know nothing of runs.
Importing this module does not import TensorFlow or scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.evaluate.curves import thin
from app.evaluate.predictions import EPSILON
from app.evaluate.settings import TOP_K_METRIC

CALIBRATION_BINS = 10


def classification_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    top_k: int = 3,
    bins: int = CALIBRATION_BINS,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Summary and detail of a classifier's predictions, with scikit-learn.

    Args:
        y_true: class ids (n,).
        probabilities: (n, classes) class probabilities.
        classes: the class names, in id order.
        top_k: top-k accuracy's k; computed when there are more than k classes.
        bins: the calibration bins.

    Returns:
        (summary: accuracy, balanced_accuracy, precision/recall/f1 macro, f1_weighted,
        roc_auc and average_precision (positive class for two classes, macro one-vs-rest
        over the classes present otherwise), log_loss, ece and top_k_accuracy;
        detail: per_class, confusion, roc, pr, calibration).
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        balanced_accuracy_score,
        confusion_matrix,
        log_loss,
        precision_recall_curve,
        precision_recall_fscore_support,
        roc_auc_score,
        roc_curve,
        top_k_accuracy_score,
    )

    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    count = probabilities.shape[1]
    names = list(classes) if len(classes) == count else [str(i) for i in range(count)]
    labels = list(range(count))
    y_pred = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    summary: dict[str, float] = {
        "accuracy": accuracy_score(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "f1_weighted": precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average="weighted", zero_division=0
        )[2],
        "log_loss": log_loss(y_true, _normalized(probabilities), labels=labels),
    }
    if count > top_k:
        summary[TOP_K_METRIC] = top_k_accuracy_score(y_true, probabilities, k=top_k, labels=labels)
    # Binary: the positive class (id 1); more classes: each one against the rest.
    curve_classes = [1] if count == 2 else labels
    roc, pr, aucs, precisions = [], [], {}, {}
    for c in curve_classes:
        truth = (y_true == c).astype(int)
        if truth.min() == truth.max():
            continue  # AUC is undefined for a class the split lacks (or holds alone)
        fpr, tpr, _ = roc_curve(truth, probabilities[:, c])
        aucs[c] = roc_auc_score(truth, probabilities[:, c])
        roc.append({"class": names[c], "auc": aucs[c], **thin(fpr=fpr, tpr=tpr)})
        curve_precision, curve_recall, _ = precision_recall_curve(truth, probabilities[:, c])
        precisions[c] = average_precision_score(truth, probabilities[:, c])
        pr.append(
            {
                "class": names[c],
                "average_precision": precisions[c],
                "prevalence": float(truth.mean()),
                **thin(precision=curve_precision, recall=curve_recall),
            }
        )
    if aucs:
        summary["roc_auc"] = float(np.mean(list(aucs.values())))
        summary["average_precision"] = float(np.mean(list(precisions.values())))
    calibration = calibration_detail(y_true, probabilities, bins)
    summary["ece"] = calibration["ece"]
    per_class = [
        {
            "class": names[c],
            "precision": precision[c],
            "recall": recall[c],
            "f1": f1[c],
            "support": int(support[c]),
            "roc_auc": aucs.get(c),
            "average_precision": precisions.get(c),
        }
        for c in labels
    ]
    detail = {
        "classes": names,
        "top_k": top_k,
        "per_class": per_class,
        "confusion": {
            "labels": names,
            "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
        "roc": roc,
        "pr": pr,
        "calibration": calibration,
    }
    return {k: float(v) for k, v in summary.items()}, detail


def _normalized(probabilities: np.ndarray) -> np.ndarray:
    """Rows summing to 1 exactly (float32 softmax rows are off by about 1e-7, which
    log_loss warns of)."""
    clipped = np.clip(probabilities, EPSILON, 1)
    return clipped / clipped.sum(axis=1, keepdims=True)


def calibration_detail(
    y_true: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS
) -> dict[str, Any]:
    """The reliability curve and expected calibration error (ECE): for two classes of the
    positive class's probability, for more of the top class's (its confidence) against being
    right. ECE is the mean of |observed - predicted| over `bins` equal-width bins, weighted by
    the samples in each."""
    from sklearn.calibration import calibration_curve

    if probabilities.shape[1] == 2:
        kind, outcome, predicted = "positive class", y_true == 1, probabilities[:, 1]
    else:
        kind = "top class"
        outcome = probabilities.argmax(axis=1) == y_true
        predicted = probabilities.max(axis=1)
    outcome = outcome.astype(int)
    observed, mean_predicted = calibration_curve(outcome, predicted, n_bins=bins)
    # The bins calibration_curve uses, to count the samples in each.
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], predicted)
    counts = np.bincount(ids, minlength=bins)
    filled = counts > 0
    ece = float(np.sum(counts[filled] / len(predicted) * np.abs(observed - mean_predicted)))
    return {
        "kind": kind,
        "bins": bins,
        "observed": observed.tolist(),
        "predicted": mean_predicted.tolist(),
        "counts": counts[filled].tolist(),
        "ece": ece,
    }
