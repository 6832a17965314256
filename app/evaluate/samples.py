"""The samples a report shows: `choose_samples` picks the best and worst predicted test
samples (by their loss) and the misclassified ones, and `describe_samples` says what a page
shows of each: its row, target, prediction, confidence, loss, raw values and PNGs of its
image and masks.

Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.evaluate.images import image_png, mask_png
from app.evaluate.predictions import Predictions
from app.evaluate.settings import TestSettings
from app.evaluate.subject import Subject


def choose_samples(
    subject: Subject, predictions: Predictions, settings: TestSettings
) -> dict[str, list[dict[str, Any]]]:
    """The best and worst predicted samples (by their loss: cross-entropy of the true class,
    absolute error, mean pixel cross-entropy, reconstruction error) and the misclassified ones
    (for anomaly detection: flagged wrongly), worst first."""
    count = settings.samples
    order = np.argsort(predictions.losses, kind="stable")
    best = [int(p) for p in order[:count]]
    worst = [int(p) for p in order[::-1][:count]]
    wrong: list[int] = []
    if subject.kind == "classification":
        predicted = predictions.outputs.argmax(axis=1)
        wrong = [int(p) for p in order[::-1] if predicted[p] != predictions.targets[p]]
        wrong = wrong[: 2 * count]
    normal = (predictions.extra.get("normal_errors") or {}).get("normal")
    if subject.kind == "anomaly" and normal is not None:  # flagged wrongly, either way
        flagged = predictions.outputs > predictions.extra["threshold"]
        anomalous = predictions.targets != subject.classes.index(normal)
        wrong = [int(p) for p in order[::-1] if flagged[p] != anomalous[p]][: 2 * count]
    chosen = sorted(set(best + worst + wrong))
    described = describe_samples(subject, predictions, chosen)
    return {
        "best": [described[p] for p in best],
        "worst": [described[p] for p in worst],
        "misclassified": [described[p] for p in wrong],
    }


def describe_samples(
    subject: Subject, predictions: Predictions, positions: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Position -> what a page shows of the sample: row, target, prediction, confidence,
    loss, its raw values (a table row) and PNGs of its image and masks."""
    if not positions:
        return {}
    images = image_specs(subject)
    inputs = predictions.inputs.take(positions) if images else {}
    described = {}
    for i, p in enumerate(positions):
        entry: dict[str, Any] = {
            "index": predictions.rows[p],
            "loss": float(predictions.losses[p]),
        }
        if subject.kind == "classification":
            probs = predictions.outputs[p]
            true, guess = int(predictions.targets[p]), int(probs.argmax())
            entry.update(
                target=_class_name(subject.classes, true),
                prediction=_class_name(subject.classes, guess),
                confidence=float(probs[guess]),
                true_confidence=float(probs[true]) if 0 <= true < len(probs) else None,
                correct=true == guess,
            )
        elif subject.kind == "anomaly":
            error, threshold = float(predictions.outputs[p]), predictions.extra.get("threshold")
            true = int(predictions.targets[p])
            entry.update(
                target=_class_name(subject.classes, true) if true >= 0 else None,
                prediction=None
                if threshold is None
                else ("anomalous" if error > threshold else "normal"),
                error=error,
                confidence=None,
            )
        elif subject.kind == "regression":
            target, output = predictions.targets[p], predictions.outputs[p]
            entry.update(
                target=_scalar_or_list(target),
                prediction=_scalar_or_list(output),
                error=_scalar_or_list(output - target),
                confidence=None,
            )
        else:
            entry.update(
                target=None,
                prediction=None,
                confidence=float(predictions.confidence[p]),
                pixel_accuracy=float(predictions.pixel_accuracy[p]),
                mask=mask_png(predictions.masks[p]),
                target_mask=mask_png(predictions.targets[p]),
            )
        if images:  # the first image input stands for the sample
            name, spec = next(iter(images.items()))
            entry["image"] = image_png(inputs[name][i], spec)
        values = _raw_values(subject, predictions.rows[p])
        if values:
            entry["values"] = values
        described[p] = entry
    return described


def _class_name(classes: Sequence[str], class_id: int) -> str:
    return classes[class_id] if 0 <= class_id < len(classes) else str(class_id)


def _scalar_or_list(values: np.ndarray) -> float | list[float]:
    values = np.asarray(values, dtype=float).reshape(-1)
    return float(values[0]) if len(values) == 1 else values.tolist()


def image_specs(subject: Subject) -> dict[str, Any]:
    """Model input name -> FeatureSpec of each image feature."""
    from app.runtime.config import input_names

    names = input_names(subject.config)
    return {names[s.column]: s for s in subject.config.features if s.kind == "image"}


def _raw_values(subject: Subject, row: int, limit: int = 20) -> dict[str, Any]:
    """A row's values as read (a table's columns, an image's path and label), for display."""
    source = subject.source
    if source.sampled or source.frame is None or row >= len(source.frame):
        return {}
    values = {}
    for column, value in list(source.frame.iloc[row].items())[:limit]:
        if isinstance(value, float | np.floating):
            values[str(column)] = None if math.isnan(value) else float(value)
        elif isinstance(value, int | np.integer | bool | np.bool_):
            values[str(column)] = value.item() if hasattr(value, "item") else value
        else:
            values[str(column)] = str(value)
    return values
