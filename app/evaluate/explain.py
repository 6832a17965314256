"""Explanations of a model's test predictions: saliency maps for image inputs
(`saliency_maps`: the gradient of the top score with respect to the pixels) and permutation
importance for tabular ones (`permutation_importance`: the drop of the main metric when one
column is shuffled). `explain` chooses between them by the inputs.

Importing this module does not import TensorFlow; `saliency_maps` imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.evaluate.anomaly import reconstruction_errors
from app.evaluate.images import image_png, saliency_png
from app.evaluate.predictions import Predictions, probabilities
from app.evaluate.samples import describe_samples, image_specs
from app.evaluate.settings import TestSettings
from app.evaluate.subject import Subject
from app.runtime.predictor import first_output, keras_predict, structured


def explain(
    model, subject: Subject, predictions: Predictions, settings: TestSettings
) -> dict[str, Any]:
    images = image_specs(subject)
    if images:
        return saliency_maps(model, subject, predictions, settings, images)
    held = predictions.inputs.held or {}
    if "features" in held:
        return permutation_importance(model, subject, predictions, settings)
    if "features" in subject.dataset.input_spec():
        return {"method": None, "detail": "the test inputs are too large to permute in memory"}
    return {"method": None, "detail": "no explanation for these inputs (text) yet"}


def saliency_maps(
    model,
    subject: Subject,
    predictions: Predictions,
    settings: TestSettings,
    images: dict[str, Any],
) -> dict[str, Any]:
    """Saliency maps of a few samples, the worst predicted and the best: the gradient of the
    top class score (the output, for regression; for segmentation the sum over pixels of the
    predicted class's score) with respect to the image, absolute, maximum over channels,
    scaled to [0, 1] per image, laid over the image."""
    import tensorflow as tf

    count = settings.explain_samples
    order = np.argsort(predictions.losses, kind="stable")
    chosen = list(dict.fromkeys([*order[::-1][: (count + 1) // 2], *order[: count // 2]]))
    chosen = [int(p) for p in chosen][:count]
    if not chosen:
        return {"method": "saliency", "saliency": [], "detail": "no samples asked for"}
    name, spec = next(iter(images.items()))
    inputs = predictions.inputs.take(chosen)
    tensors = {k: tf.convert_to_tensor(v) for k, v in inputs.items()}
    with tf.GradientTape() as tape:
        tape.watch(tensors[name])
        out = model(structured(model, tensors), training=False)
        if isinstance(out, dict):
            out = next(iter(out.values()))
        elif isinstance(out, list | tuple):
            out = out[0]
        score = tf.reduce_max(out, axis=-1) if out.shape[-1] > 1 else out[..., 0]
        total = tf.reduce_sum(score)
    gradients = tape.gradient(total, tensors[name])
    saliency = np.max(np.abs(np.asarray(gradients)), axis=-1)
    described = describe_samples(subject, predictions, chosen)
    items = []
    for i, p in enumerate(chosen):
        peak = saliency[i].max()
        scaled = saliency[i] / peak if peak > 0 else saliency[i]
        entry = {
            key: described[p].get(key)
            for key in ("index", "target", "prediction", "confidence", "loss", "pixel_accuracy")
        }
        entry["input"] = image_png(inputs[name][i], spec)
        entry["image"] = saliency_png(inputs[name][i], scaled, spec)
        entry["caption"] = _caption(entry)
        items.append(entry)
    return {
        "method": "saliency",
        "input": name,
        "detail": "gradient of the top score with respect to the input pixels (absolute, "
        "maximum over channels), for the worst and the best predicted samples",
        "saliency": items,
    }


def _caption(sample: dict[str, Any]) -> str:
    """'row 12: true 3, predicted 5 (0.61)'."""
    text = f"row {sample['index']}"
    if sample.get("target") is not None:
        text += f": true {sample['target']}, predicted {sample['prediction']}"
        if sample.get("confidence") is not None:
            text += f" ({sample['confidence']:.2f})"
    elif sample.get("pixel_accuracy") is not None:
        text += f": pixel accuracy {sample['pixel_accuracy']:.3f}"
    return text


def feature_columns(config: Any, state: Any) -> list[tuple[str, list[int]]]:
    """Each tabular feature's column and the columns of the "features" input it fills, in
    order (a one-hot category fills several)."""
    from app.runtime.config import TABULAR_KINDS
    from app.runtime.transform import feature_width

    groups, start = [], 0
    for spec in config.features:
        if spec.kind in TABULAR_KINDS:
            width = feature_width(spec, state.columns[spec.column])
            groups.append((spec.column, list(range(start, start + width))))
            start += width
    return groups


def permutation_importance(
    model, subject: Subject, predictions: Predictions, settings: TestSettings
) -> dict[str, Any]:
    """How much the main metric (accuracy; r2 for regression; for anomaly detection the ROC
    AUC of the reconstruction error) drops when one original column's values are shuffled
    among the test rows, `importance_repeats` times each; the columns a feature fills in the
    "features" input (one-hot categories: several) are shuffled together. At most
    `max_points` rows are used."""
    inputs = predictions.inputs.held
    count = len(predictions.rows)
    rng = np.random.default_rng(settings.seed)
    positions = np.arange(count)
    if count > settings.max_points:
        positions = np.sort(rng.choice(count, settings.max_points, replace=False))
    inputs = {name: values[positions] for name, values in inputs.items()}
    targets = predictions.targets[positions]
    metric = {"classification": "accuracy", "anomaly": "roc_auc"}.get(subject.kind, "r2")
    normal = (predictions.extra.get("normal_errors") or {}).get("normal")
    anomalous = None if normal is None else targets != subject.classes.index(normal)
    if metric == "roc_auc" and (anomalous is None or anomalous.min() == anomalous.max()):
        return {"method": None, "detail": "no labels of both kinds for permutation importance"}

    def score(values: dict[str, np.ndarray]) -> float:
        out = first_output(keras_predict(model, values, batch_size=1024))
        if subject.kind == "anomaly":  # how well the error still tells anomalies apart
            from sklearn.metrics import roc_auc_score

            errors = reconstruction_errors(out, values["features"])
            return float(roc_auc_score(anomalous, errors))
        if subject.kind == "classification":
            probs = probabilities(out.reshape(len(out), -1), not subject.probabilities)
            return float((probs.argmax(axis=1) == targets).mean())
        from sklearn.metrics import r2_score

        return float(r2_score(targets.reshape(-1), out.reshape(-1).astype(np.float64)))

    if metric == "r2" and len(targets.reshape(-1)) < 2:
        return {"method": None, "detail": "too few test rows for permutation importance"}
    baseline = score(inputs)
    items = []
    for column, columns in feature_columns(subject.config, subject.state):
        drops = []
        for _ in range(settings.importance_repeats):
            order = rng.permutation(len(positions))
            shuffled = dict(inputs)
            features = inputs["features"].copy()
            features[..., columns] = inputs["features"][order][..., columns]
            shuffled["features"] = features
            drops.append(baseline - score(shuffled))
        items.append(
            {
                "feature": column,
                "importance": float(np.mean(drops)),
                "std": float(np.std(drops)),
                "columns": len(columns),
            }
        )
    items.sort(key=lambda item: item["importance"], reverse=True)
    return {
        "method": "permutation_importance",
        "metric": metric,
        "baseline": baseline,
        "repeats": settings.importance_repeats,
        "rows": len(positions),
        "detail": f"drop of {metric} when a column's values are shuffled among the test rows",
        "permutation_importance": items,
    }
