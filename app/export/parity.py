"""Parity: whether an export predicts as the model does.

`parity` converts a Keras model to formats and compares each one's predictions with the
model's (the test suite's export checks); `check_parity` compares an export's predictions on raw
rows of the test split with LayerFlow's (transform, then the trained model), within
`TOLERANCES`; `compare` is the comparison both use. `representative` draws the train rows that
calibrate an int8 TFLite export.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import one_line
from app.export.formats import MODEL_FORMATS, write_model
from app.export.options import ExportError
from app.runtime.predictor import (
    Predictor,
    as_feed,
    input_specs,
    keras_predict,
    named,
    output_names,
)
from app.runtime.serving import raw_inputs

PARITY_ROWS = 64
REPRESENTATIVE_ROWS = 100
# How far an export's predictions may be from the model's: this much, times the largest
# |prediction| when that is above 1 (so that it is relative for values in the hundreds).
TOLERANCES: dict[str | None, float] = {None: 1e-3, "float16": 1e-2, "dynamic": 5e-2, "int8": 0.15}


def parity(
    model,
    inputs: dict[str, np.ndarray],
    formats: Sequence[str] = ("savedmodel", "tflite", "onnx"),
    atol: float = 1e-3,
) -> list[dict[str, Any]]:
    """Convert a Keras model to each format (float32, in a temporary folder), predict `inputs`
    with each format's own runtime and compare with `model.predict`.

    Args:
        model: a Keras functional model.
        inputs: a batch by input name.
        formats: some of keras, savedmodel, tflite, onnx.
        atol: the largest absolute difference allowed.

    Returns:
        One dict per format: {"format", "passed", "max_abs_diff" (None when the conversion or
        the prediction failed), "detail"}.
    """
    unknown = [fmt for fmt in formats if fmt not in MODEL_FORMATS]
    if unknown:
        raise ValueError(
            f"Received an invalid value for `formats`, expected some of "
            f"{', '.join(MODEL_FORMATS)}. Received: formats={list(formats)!r}"
        )
    specs = input_specs(model)
    names = output_names(model)
    feed = as_feed(specs, inputs)
    expected = keras_predict(model, feed, names)
    results = []
    with tempfile.TemporaryDirectory(prefix="layerflow-parity-") as tmp:
        for fmt in formats:
            folder = Path(tmp) / fmt
            try:
                write_model(model, fmt, folder, sample=feed)
                found = Predictor.load(folder, fmt, specs, names).predict_all(feed)
            except Exception as err:  # noqa: BLE001 - reported as this format's failure
                results.append(
                    {
                        "format": fmt,
                        "passed": False,
                        "max_abs_diff": None,
                        "detail": f"{fmt}: {one_line(err)}",
                    }
                )
                continue
            passed, diff, detail = compare(expected, found, atol)
            results.append(
                {
                    "format": fmt,
                    "passed": passed,
                    "max_abs_diff": diff,
                    "detail": f"{fmt}: {detail}",
                }
            )
    return results


def compare(
    expected: Mapping[str, np.ndarray], found: Mapping[str, np.ndarray], tolerance: float
) -> tuple[bool, float | None, str]:
    """(passed, the largest absolute difference, one line saying so) between two sets of
    predictions by output name."""
    largest = 0.0
    for name, reference in expected.items():
        if name not in found:
            return False, None, f"output {name!r} is missing"
        reference = np.asarray(reference, dtype=np.float64)
        other = np.asarray(found[name], dtype=np.float64)
        if other.shape != reference.shape:
            return (
                False,
                None,
                f"output {name!r} has shape {other.shape}, expected {reference.shape}",
            )
        if np.isnan(other).any() != np.isnan(reference).any():
            return False, None, f"output {name!r} holds NaN where the model's does not"
        if reference.size:
            largest = max(largest, float(np.nanmax(np.abs(other - reference))))
    verb = "<=" if largest <= tolerance else ">"
    return largest <= tolerance, largest, f"max |difference| {largest:.3g} {verb} {tolerance:.3g}"


def parity_sample(dataset, config, state, source) -> tuple[dict, dict, str]:
    """(raw inputs, the model inputs `transform` gives, the split) of the rows the parity check
    uses: the first of the test split (else validation, else train), enough for the windows of
    a time series."""
    from app.runtime.transform import transform

    extra = config.window.size + config.window.horizon - 1 if config.window else 0
    for split in ("test", "validation", "train"):
        rows = sorted(dataset.splits.get(split) or [])[: PARITY_ROWS + extra]
        if rows:
            inputs, _ = transform(config, state, source, rows)
            return raw_inputs(config, state, source, rows), inputs, split
    raise ExportError(f"Dataset '{dataset.name}' has no rows to check the export on")


def check_parity(predictor: Predictor, trained, sample, quantize: str | None, doc) -> dict:
    """The export's predictions on raw rows (`parity_sample`) against LayerFlow's: transform,
    then the trained model."""
    raw, inputs, split = sample
    model_inputs = [node.id for node in doc.nodes if node.component == "Input"]
    if len(model_inputs) == 1 and len(inputs) == 1:
        x: Any = next(iter(inputs.values()))
    else:
        x = {node: inputs[node] for node in model_inputs}
    expected = named(trained.predict(x, verbose=0), predictor.outputs)
    rows = len(next(iter(raw.values())))
    scale = max([1.0, *(float(np.nanmax(np.abs(v))) for v in expected.values() if v.size)])
    tolerance = TOLERANCES[quantize] * scale
    try:
        found = predictor.predict_all(raw)
    except Exception as err:  # noqa: BLE001 - an export that cannot predict fails parity
        return {
            "passed": False,
            "max_abs_diff": None,
            "tolerance": tolerance,
            "rows": rows,
            "split": split,
            "detail": f"it cannot predict raw {split} rows: {one_line(err)}",
        }
    passed, diff, detail = compare(expected, found, tolerance)
    return {
        "passed": passed,
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "rows": rows,
        "split": split,
        "detail": f"{detail} on {rows} raw {split} rows",
    }


def representative(dataset, config, state, source) -> dict[str, np.ndarray]:
    """Up to REPRESENTATIVE_ROWS raw rows of the train split, drawn with a fixed seed."""
    train = list(dataset.splits.get("train") or [])
    if not train:
        raise ExportError(f"Dataset '{dataset.name}' has no train rows to calibrate int8 on")
    if config.window is None:
        rng = np.random.default_rng(0)
        picked = sorted(rng.choice(train, min(REPRESENTATIVE_ROWS, len(train)), replace=False))
    else:
        picked = sorted(train)[: REPRESENTATIVE_ROWS + config.window.size + config.window.horizon]
    return raw_inputs(config, state, source, picked)
