"""What the model makes of a test split: `predict_split` predicts it a batch at a time and
keeps only what the report needs (Predictions: targets, probabilities or values, masks and a
loss per sample), and `probabilities`, which turns a model's outputs into class probabilities.
A Keras model is called on inputs by data name with the runtime's helpers
(app.runtime.predictor: `structured`, `first_output`, `keras_predict`).

Importing this module does not import TensorFlow; `predict_split` imports it, through the
input pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.evaluate.anomaly import reconstruction_errors
from app.evaluate.subject import Inputs, Subject
from app.runtime.predictor import first_output, keras_predict, structured

BATCH = 64  # predictions on the test split, and the batch of the batch checks
HOLD_BYTES = 256 * 2**20  # test inputs up to this size stay in memory; larger are read again
EPSILON = 1e-12


@dataclass
class Predictions:
    """What the model made of the test split, position by position."""

    rows: list[int]
    targets: np.ndarray  # class ids (n,), values (n, k), or masks (n, h, w)
    outputs: np.ndarray | None = None  # classification probabilities, regression values
    masks: np.ndarray | None = None  # segmentation: predicted class ids (n, h, w)
    losses: np.ndarray | None = None  # per sample: the loss that orders best and worst
    confidence: np.ndarray | None = None  # segmentation: mean top probability per image
    pixel_accuracy: np.ndarray | None = None
    confusion: np.ndarray | None = None  # segmentation: pixel confusion matrix
    inputs: Inputs | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def probabilities(values: np.ndarray, from_logits: bool) -> np.ndarray:
    """Class probabilities on the last axis: one sigmoid unit becomes two columns."""
    values = values.astype(np.float64)
    if values.shape[-1] == 1:
        positive = 1 / (1 + np.exp(-values[..., 0])) if from_logits else values[..., 0]
        positive = np.clip(positive, 0.0, 1.0)
        return np.stack([1 - positive, positive], axis=-1)
    if from_logits:
        shifted = np.exp(values - values.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return values


def predict_split(model, subject: Subject, done: Callable[[float], None]) -> Predictions:
    """Predict the test split a batch at a time, keeping only what the report needs."""
    from sklearn.metrics import confusion_matrix

    from app.keras.pipeline import make_dataset
    from app.runtime.transform import input_spec, window_starts

    config, state = subject.config, subject.state
    rows = subject.rows
    if config.window is not None:
        rows = [subject.rows[p] for p in window_starts(config, subject.rows)]
    per_sample = sum(
        int(np.prod(shape)) * (8 if dtype == "int64" else 4)
        for shape, dtype in input_spec(config, state).values()
    )
    hold = config.window is not None or per_sample * len(rows) <= HOLD_BYTES
    dataset = make_dataset(config, state, subject.source, subject.rows, batch_size=BATCH)
    held: dict[str, list[np.ndarray]] = {}
    targets, outputs, masks, losses, confidence, accuracy = [], [], [], [], [], []
    classes = max(len(subject.classes), 2)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    total = max(1, math.ceil(len(rows) / BATCH))
    for step, batch in enumerate(dataset):
        x, y = batch if isinstance(batch, tuple) else (batch, None)  # no target: inputs alone
        x = {name: np.asarray(values) for name, values in x.items()}
        y = None if y is None else np.asarray(y)
        if hold:
            for name, values in x.items():
                held.setdefault(name, []).append(values)
        out = first_output(model.predict_on_batch(structured(model, x)))
        if subject.kind == "segmentation":
            probs = probabilities(out, not subject.probabilities)
            predicted = probs.argmax(axis=-1)
            true = y.astype(np.int64)
            confusion += confusion_matrix(
                true.ravel(), predicted.ravel(), labels=list(range(classes))
            )
            p_true = np.take_along_axis(probs, np.clip(true, 0, classes - 1)[..., None], -1)
            losses.append(-np.log(np.clip(p_true[..., 0], EPSILON, 1)).mean(axis=(1, 2)))
            confidence.append(probs.max(axis=-1).mean(axis=(1, 2)))
            accuracy.append((predicted == true).mean(axis=(1, 2)))
            masks.append(predicted.astype(np.uint8 if classes <= 256 else np.int32))
            targets.append(true.astype(np.uint8 if classes <= 256 else np.int32))
        elif subject.kind == "anomaly":
            outputs.append(reconstruction_errors(out, _reconstructed(subject, x)))
            targets.append(np.full(len(out), -1) if y is None else y)
        else:
            outputs.append(out)
            targets.append(y)
        done((step + 1) / total)
    predictions = Predictions(rows=rows, targets=np.concatenate(targets))
    if subject.kind == "segmentation":
        predictions.masks = np.concatenate(masks)
        predictions.losses = np.concatenate(losses)
        predictions.confidence = np.concatenate(confidence)
        predictions.pixel_accuracy = np.concatenate(accuracy)
        predictions.confusion = confusion
    elif subject.kind == "classification":
        values = np.concatenate(outputs)
        probs = probabilities(values.reshape(len(values), -1), not subject.probabilities)
        predictions.outputs = probs
        true = predictions.targets.astype(np.int64).reshape(-1)
        predictions.targets = true
        p_true = probs[np.arange(len(true)), np.clip(true, 0, probs.shape[1] - 1)]
        predictions.losses = -np.log(np.clip(p_true, EPSILON, 1))
    elif subject.kind == "anomaly":
        predictions.outputs = predictions.losses = np.concatenate(outputs)
        predictions.targets = predictions.targets.astype(np.int64).reshape(-1)
        predictions.extra["normal_errors"] = normal_validation_errors(model, subject)
    else:
        values = np.concatenate(outputs).astype(np.float64)
        predictions.outputs = values.reshape(len(values), -1)
        predictions.targets = predictions.targets.astype(np.float64).reshape(len(values), -1)
        predictions.losses = np.abs(predictions.outputs - predictions.targets).mean(axis=1)
    predictions.inputs = Inputs(
        subject, rows, {k: np.concatenate(v) for k, v in held.items()} if hold else None
    )
    return predictions


def _reconstructed(subject: Subject, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The model input an autoencoder reconstructs, from the inputs by data name."""
    return inputs[next(iter(inputs))] if len(inputs) == 1 else inputs[subject.reconstructs]


def normal_validation_errors(model, subject: Subject) -> dict[str, Any]:
    """An autoencoder's reconstruction errors on the normal rows of the validation split
    (the split its threshold is set on; the train split when there is no validation split):
    {split, rows, normal (the class, None without labels), errors}."""
    from app.data.anomaly import normal_rows
    from app.runtime.transform import transform

    splits = subject.dataset.splits
    split = "validation" if splits.get("validation") else "train"
    fitting = {name: splits[name] for name in {"train", split}}
    cut, normal = normal_rows(
        subject.config, subject.state, subject.source, fitting, subject.normal_class
    )
    inputs, _ = transform(subject.config, subject.state, subject.source, cut[split])
    out = first_output(keras_predict(model, inputs, batch_size=BATCH))
    return {
        "split": split,
        "rows": len(cut[split]),
        "normal": None if normal is None else subject.classes[normal],
        "errors": reconstruction_errors(out, _reconstructed(subject, inputs)),
    }
