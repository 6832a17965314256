"""Exports of a trained run: its model as a .keras file, a TF SavedModel, a TFLite flatbuffer
(float32, or quantized: dynamic range, float16 or int8), an ONNX graph, or a standalone project
that predicts with it and retrains it without LayerFlow.

Every export takes raw data. The preprocessing fitted on the run's dataset goes in front of the
trained model as Keras layers (app.runtime.preprocessing.keras_preprocessing_model), after a step
that turns a missing number into the train mean, so that a raw row or image gives the prediction
LayerFlow gives (transform, then the trained model).

An export is refused unless the run passed its tests (`<run>/test/report.json`, which
`layerflow test` writes) and what was exported predicts as the run's model does on rows of the
test split (parity); forcing it is written into its metadata. An export lives in
`models/<model>/exports/<run-id>-<format>[-<quantize>]/`:

  metadata.json   run, model, format, quantize, data {name, version}, test summary, gates,
                  forced (and why), created, files, parity, inputs, outputs, classes
  model.keras | saved_model/ | model.tflite | model.onnx | the project's files

It is written into a staging folder, renamed into place (replacing an older export of the same
name whole) and recorded as a DVC version (app.workspace.versions).

Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.files import atomic_write_text, swap_in
from app.keras import builder
from app.paths import inside, workspace_root
from app.workspace import runs, versions

FORMATS = ("keras", "savedmodel", "tflite", "onnx", "project")
MODEL_FORMATS = ("keras", "savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("dynamic", "float16", "int8")
MODEL_FILES = {
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "onnx": "model.onnx",
    "project": "model/model.keras",
}
METADATA = "metadata.json"
REPORT = Path("test") / "report.json"
SIGNATURE = "serving_default"
ONNX_OPSET = 17
PARITY_ROWS = 64
REPRESENTATIVE_ROWS = 100
# How far an export's predictions may be from the model's: this much, times the largest
# |prediction| when that is above 1 (so that it is relative for values in the hundreds).
TOLERANCES: dict[str | None, float] = {None: 1e-3, "float16": 1e-2, "dynamic": 5e-2, "int8": 0.15}
PROJECT_TEMPLATES = "project"
WEIGHTS = "weights"  # in an exported project: the Backbones' weights files, by workspace path


class ExportError(ValueError):
    """An export that cannot be made; one line naming the run (or file) and the fault."""


# Exporting a run


def export_run(
    run: str | os.PathLike,
    fmt: str,
    quantize: str | None = None,
    force: bool = False,
    root: Path | None = None,
) -> Path:
    """Export a run's best checkpoint, with its preprocessing, and return the export folder.

    Refused (ExportError) when the run has no passing test report or when the export does not
    predict as the model does on the test split, unless `force`, which the metadata records.

    Args:
        run: the run's id or directory.
        fmt: keras, savedmodel, tflite, onnx or project.
        quantize: for tflite only: dynamic (dynamic-range int8 weights), float16, or int8
            (weights and activations, calibrated on rows of the train split); None for float32.
        force: export even when the tests or the parity check failed.
        root: the workspace (default: the current one).
    """
    from app.graph.document import load

    root = root or workspace_root()
    check_format(fmt, quantize)
    folder = runs.find_run(run, root)
    info = runs.read_info(folder)
    gate = check_gate(folder)
    if not gate["passed"] and not force:
        raise ExportError(f"{gate['reason']} (--force exports it anyway)")
    dataset = _dataset_of(folder, root)
    config, state = dataset.preprocessing()
    doc = load(folder / runs.GRAPH)
    trained = builder.load_run_model(folder, "best")
    model = with_preprocessing(trained, doc, config, state)
    name = f"{info['id']}-{fmt}" + (f"-{quantize}" if quantize else "")
    exports = runs.models_dir(root) / info["model"] / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    _keep_out_of_workspace_pipelines(exports)
    final = exports / name
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=exports))
    try:
        source = dataset.source()  # read once: the parity rows, calibration, the project
        sample = _parity_sample(dataset, config, state, source)
        if fmt == "project":
            files = write_project(staging, folder, model, dataset, source)
        else:
            representative = None
            if quantize == "int8":
                representative = _representative(dataset, config, state, source)
            files = write_model(
                model, fmt, staging, quantize, representative=representative, sample=sample[0]
            )
        specs = input_specs(model, _raw_columns(config, state))
        outputs = output_names(model)
        checked = _check_parity(
            Predictor(staging, fmt, specs, outputs), trained, sample, quantize, doc
        )
        if not checked["passed"] and not force:
            raise ExportError(
                f"Run '{info['id']}': the {_label(fmt, quantize)} export does not predict as the "
                f"model does: {checked['detail']} (--force exports it anyway)"
            )
        # What force overrode, if anything: a failed test report, a failed parity check.
        reasons = [gate["reason"]]
        if not checked["passed"]:
            reasons.append(f"the export does not predict as the model does: {checked['detail']}")
        metadata = {
            "run": info["id"],
            "model": info["model"],
            "graph_name": info.get("graph_name"),
            "format": fmt,
            "quantize": quantize,
            "checkpoint": "best",
            "data": dict(info["data"]),
            "test": gate["test"],
            "gates": gate["gates"],
            "forced": bool(force and any(reasons)),
            "forced_reason": "; ".join(r for r in reasons if r) or None,
            "created": time.time(),
            "files": _file_list(staging, files),
            "parity": checked,
            "inputs": specs,
            "outputs": outputs,
            "classes": state.classes,
            "preprocessing": "in the model: raw inputs, missing numbers become the train mean",
        }
        atomic_write_text(staging / METADATA, json.dumps(metadata, indent=2, default=str) + "\n")
        swap_in(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _record(root, final, f"export of run {info['id']} as {_label(fmt, quantize)}")
    return final


def list_exports(model: str, root: Path | None = None) -> list[dict[str, Any]]:
    """The exports of a model (its name or slug), newest first: each one's metadata, with
    "folder" its path."""
    exports = runs.models_dir(root) / runs.model_slug(model) / "exports"
    found = []
    for path in exports.glob(f"*/{METADATA}"):
        found.append({**json.loads(path.read_text()), "folder": str(path.parent)})
    return sorted(found, key=lambda meta: meta.get("created") or 0, reverse=True)


def check_format(fmt: str, quantize: str | None = None) -> None:
    """Raise ExportError for an unknown format or quantization, or a quantized non-TFLite one."""
    if fmt not in FORMATS:
        raise ExportError(
            f"Received an invalid value for `format`, expected one of {', '.join(FORMATS)}. "
            f"Received: format={fmt!r}"
        )
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(
            f"Received an invalid value for `quantize`, expected one of "
            f"{', '.join(QUANTIZATIONS)} or None. Received: quantize={quantize!r}"
        )
    if quantize is not None and fmt != "tflite":
        raise ExportError(
            f"Received an invalid value for `quantize`: only tflite exports are quantized. "
            f"Received: quantize={quantize!r} with format={fmt!r}"
        )


def _label(fmt: str, quantize: str | None) -> str:
    return fmt + (f" ({quantize})" if quantize else "")


# The gate: the run's test report


def check_gate(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Whether the run passed its tests, from `<run>/test/report.json`.

    Returns {"passed", "reason" (one line naming the run and what failed, None when passed),
    "test" ({passed, summary, created} of the report, or None), "gates" (the report's gates,
    with its failed checks)}.
    """
    folder = Path(run_dir)
    run_id = folder.name
    path = folder / REPORT
    if not path.is_file():
        return {
            "passed": False,
            "reason": f"Run '{run_id}' has no test report; run `layerflow test {run_id}` first",
            "test": None,
            "gates": None,
        }
    try:
        report = json.loads(path.read_text())
        passed = report["passed"]
        results = (report.get("gates") or {}).get("results") or []
        checks = report.get("checks") or []
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        return {
            "passed": False,
            "reason": f"Run '{run_id}': {REPORT} cannot be read ({type(err).__name__}: {err}); "
            f"run `layerflow test {run_id}` again",
            "test": None,
            "gates": None,
        }
    failed_gates = [_gate_text(result) for result in results if not result.get("passed")]
    # a check with passed None was skipped or is informational: not a failure
    failed_checks = [str(check.get("name")) for check in checks if check.get("passed") is False]
    reason = None
    if passed is not True:
        named = [f"gate {text}" for text in failed_gates] + [f"check {c}" for c in failed_checks]
        reason = f"Run '{run_id}' did not pass its tests ({', '.join(named) or 'passed: false'})"
    return {
        "passed": passed is True,
        "reason": reason,
        "test": {
            "passed": passed,
            "summary": report.get("summary", {}),
            "created": report.get("created"),
        },
        "gates": {
            "passed": (report.get("gates") or {}).get("passed"),
            "results": results,
            "failed_checks": failed_checks,
        },
    }


def _gate_text(result: dict[str, Any]) -> str:
    """'accuracy >= 0.9 (actual 0.612)'."""
    actual = result.get("actual")
    shown = f"{actual:.4g}" if isinstance(actual, int | float) else str(actual)
    return f"{result.get('metric')} {result.get('op')} {result.get('value')} (actual {shown})"


# The model that takes raw data


def serving_model(run: str | os.PathLike, which: str = "best", root: Path | None = None):
    """The run's Keras model behind its dataset's preprocessing: it takes raw inputs (one per
    table column, or the decoded image, or the text) and gives what the trained model gives.

    Raises ExportError when the dataset is no longer at the version the run was trained on.
    """
    from app.graph.document import load

    folder = runs.find_run(run, root)
    config, state = _dataset_of(folder, root).preprocessing()
    trained = builder.load_run_model(folder, which)
    return with_preprocessing(trained, load(folder / runs.GRAPH), config, state)


def with_preprocessing(trained, doc, config, state):
    """A Keras model of raw inputs: the preprocessing as Keras layers, missing numbers made the
    train mean first, then the trained model. Its inputs are those of `raw_input_spec`, named
    as `keras_preprocessing_model` names them; its outputs are named by Output node id.

    Args:
        trained: the trained Keras model (`builder.load_run_model`).
        doc: the graph it was built from (for its Input and Output node ids).
        config, state: the dataset's preprocessing settings and their fitted state.
    """
    import keras

    from app.runtime.preprocessing import _identifier, preprocessed, raw_input_spec

    means = _raw_means(config, state)
    raw, filled = {}, {}
    for key, (shape, dtype) in raw_input_spec(config, state).items():
        value = keras.Input(shape=tuple(shape), dtype=dtype, name=_identifier(key))
        raw[value.name] = value
        if key in means:
            mean = np.asarray(means[key], dtype=np.float32)
            value = keras.ops.where(keras.ops.isnan(value), mean, value)
        filled[key] = value
    features = preprocessed(filled, config, state)
    inputs = [node.id for node in doc.nodes if node.component == "Input"]
    outputs = [node.id for node in doc.nodes if node.component == "Output"]
    if len(inputs) == 1 and len(features) == 1:
        x = next(iter(features.values()))
    else:
        x = {node: features[node] for node in inputs}
    y = trained(x)
    if isinstance(y, dict):
        named: Any = {node: keras.layers.Identity(name=node)(y[node]) for node in outputs}
    else:
        named = keras.layers.Identity(name=outputs[0])(y)
    return keras.Model(inputs=raw, outputs=named, name=re.sub(r"\W+", "_", trained.name))


def _raw_means(config, state) -> dict[str, Any]:
    """Raw number input -> the train mean that stands in for a missing value."""
    if config.window is not None:
        return {"features": [float(state.columns[s.column].mean) for s in config.features]}
    means = {}
    for spec in config.features:
        if spec.kind in ("numeric", "passthrough"):
            column = state.columns[spec.column]
            mean = np.asarray(column.mean, dtype=np.float32)
            means[spec.column] = mean.reshape(column.shape) if column.shape else mean.reshape(1)
    return means


def _raw_columns(config, state) -> dict[str, str]:
    """Raw input name (as the exported model names it) -> the column (or array) it reads."""
    from app.runtime.preprocessing import _identifier, input_names, raw_input_spec

    if config.window is not None:
        return {"features": "features"}
    names = input_names(config)
    columns = {
        names[spec.column] if spec.kind in ("image", "text") else spec.column: spec.column
        for spec in config.features
    }
    return {_identifier(name): columns[name] for name in raw_input_spec(config, state)}


def raw_inputs(config, state, source, index: Sequence[int]) -> dict[str, np.ndarray]:
    """Rows of a source as an exported model takes them (raw_input_spec), by input name:
    numbers float32 as read (missing ones NaN); categories as strings, or int64 for whole-number
    categories; images decoded, at the settings' size and channels, pixel values unscaled;
    text as strings; with a window, the windows of raw numbers that `transform` gives.

    Args:
        config, state: the preprocessing settings and their fitted state.
        source: the data, as `read_source` gives it.
        index: the rows, in order.
    """
    from app.runtime.images import decode_images, resize_image_array
    from app.runtime.preprocessing import _category_key, input_names, raw_input_spec, window_starts

    index = np.asarray(index, dtype=np.int64)
    columns = _raw_columns(config, state)
    spec_of = {spec.column: spec for spec in config.features}
    frame = source.frame.iloc[index].reset_index(drop=True)
    arrays = {name: array[index] for name, array in (source.arrays or {}).items()}

    def values(column: str) -> Any:
        return arrays[column] if column in arrays else frame[column]

    def numbers(column: str) -> np.ndarray:
        value = values(column)
        if isinstance(value, np.ndarray):
            return value.astype(np.float32).reshape(len(value), -1)
        return _table_numbers(value)

    if config.window is not None:
        matrix = np.concatenate([numbers(spec.column) for spec in config.features], axis=1)
        starts = window_starts(config, index)
        return {"features": matrix[starts[:, None] + np.arange(config.window.size)]}
    names = input_names(config)
    shapes = raw_input_spec(config, state)
    raw: dict[str, np.ndarray] = {}
    for name, column in columns.items():
        spec = spec_of[column]
        shape = shapes[names[column] if spec.kind in ("image", "text") else column][0]
        if spec.kind in ("numeric", "passthrough"):
            raw[name] = numbers(column).reshape(len(index), *shape)
        elif spec.kind == "categorical":
            categories = state.columns[column].categories or []
            keys = [_category_key(v) for v in _listed(values(column))]
            if categories and isinstance(categories[0], int):
                unseen = min(-1, min(categories) - 1)
                ids = [k if isinstance(k, int) else unseen for k in keys]
                raw[name] = np.asarray(ids, dtype=np.int64).reshape(-1, 1)
            else:
                text = ["" if k is None else str(k) for k in keys]
                raw[name] = np.asarray(text, dtype=object).reshape(-1, 1)
        elif spec.kind == "text":
            texts = ["" if _category_key(v) is None else str(v) for v in _listed(values(column))]
            raw[name] = np.asarray(texts, dtype=object).reshape(-1, 1)
        else:
            unscaled = spec.model_copy(update={"normalize": False})
            value = values(column)
            if isinstance(value, np.ndarray):
                raw[name] = resize_image_array(value, unscaled)
            else:
                paths = [os.path.join(source.root, str(v)) for v in value.tolist()]
                raw[name] = decode_images(paths, unscaled)
    return raw


def _table_numbers(values) -> np.ndarray:
    """A table column as float32 (n, 1); what is not a number becomes NaN."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float32).reshape(-1, 1)
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.to_numpy(dtype=np.float32, na_value=np.nan).reshape(-1, 1)


def _listed(values) -> list:
    if isinstance(values, np.ndarray):
        return (
            values.reshape(len(values), -1)[:, 0].tolist() if values.ndim > 1 else values.tolist()
        )
    return values.tolist()


# Writing a Keras model in a format


def input_specs(model, columns: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The model's inputs: name, the column it reads, shape without the batch axis (None for
    any size) and dtype."""
    columns = columns or {}
    return [
        {
            "name": tensor.name,
            "column": columns.get(tensor.name, tensor.name),
            "shape": list(tensor.shape[1:]),
            "dtype": str(tensor.dtype),
        }
        for tensor in model.inputs
    ]


def output_names(model) -> list[str]:
    """The names of the model's outputs, in the order predictions are given."""
    if isinstance(model.output, dict):
        return list(model.output)
    return list(model.output_names)


def write_model(
    model,
    fmt: str,
    folder: str | os.PathLike,
    quantize: str | None = None,
    representative: Mapping[str, np.ndarray] | None = None,
    sample: Mapping[str, np.ndarray] | None = None,
) -> list[str]:
    """Write a Keras model into `folder` in one format; returns the paths written, relative.

    Args:
        model: any Keras functional model (one or more named inputs).
        fmt: keras, savedmodel (signature serving_default, inputs and outputs by name), tflite
            or onnx (checked by running a batch in onnxruntime).
        quantize: tflite only: dynamic, float16 or int8.
        representative: int8 only: inputs by name, a row per sample, to calibrate activations.
        sample: onnx: a batch of inputs by name for the onnxruntime check (default: zeros).
    """
    check_format(fmt, quantize)
    if fmt not in MODEL_FORMATS:
        raise ExportError(
            f"Received an invalid value for `fmt`, expected one of {', '.join(MODEL_FORMATS)}. "
            f"Received: fmt={fmt!r}"
        )
    if quantize == "int8" and not representative:
        raise ExportError(
            "Received quantize='int8' without `representative`; int8 needs rows of training "
            "data to calibrate the activations"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MODEL_FILES[fmt]
    if fmt == "keras":
        model.save(target)
    elif fmt == "savedmodel":
        _write_saved_model(model, target)
    elif fmt == "tflite":
        target.write_bytes(_tflite_bytes(model, quantize, representative))
    else:
        _write_onnx(model, target, sample)
    return [MODEL_FILES[fmt]]


def _signature(model) -> dict[str, Any]:
    """Input name -> tf.TensorSpec (any batch size)."""
    import tensorflow as tf

    return {
        t.name: tf.TensorSpec((None, *t.shape[1:]), tf.as_dtype(t.dtype), name=t.name)
        for t in model.inputs
    }


def _serving_function(model):
    """inputs by name -> outputs by name: what the SavedModel signature, the TFLite signature
    and the ONNX graph compute."""
    names = output_names(model)

    def serve(inputs: dict) -> dict:
        outputs = model(_structured(model, inputs), training=False)
        if isinstance(outputs, dict):
            return {name: outputs[name] for name in names}
        if isinstance(outputs, list | tuple):
            return dict(zip(names, outputs, strict=True))
        return {names[0]: outputs}

    return serve


def _structured(model, inputs: Mapping[str, Any]) -> Any:
    """Inputs by name, arranged as the model takes them (a dict by its own keys, a list, or the
    one tensor); a dict may be keyed by the model's keys or by its inputs' names."""
    structure = model.input
    if isinstance(structure, dict):
        return {
            key: inputs[key] if key in inputs else inputs[t.name] for key, t in structure.items()
        }
    if isinstance(structure, list | tuple):
        return [inputs[t.name] for t in structure]
    return inputs[structure.name] if structure.name in inputs else next(iter(inputs.values()))


def _write_saved_model(model, path: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, _serving_function(model), input_signature=[_signature(model)])
    archive.write_out(str(path), verbose=False)


def _tflite_bytes(model, quantize: str | None, representative) -> bytes:
    """Converted from a SavedModel of the model (which holds every constant the layers
    captured); TFLite built-in ops only when they suffice, else with TensorFlow ops too."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="layerflow-tflite-") as tmp:
        saved = Path(tmp) / "saved_model"
        _write_saved_model(model, saved)
        error: Exception | None = None
        builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
        for ops in (builtins, [*builtins, tf.lite.OpsSet.SELECT_TF_OPS]):
            converter = tf.lite.TFLiteConverter.from_saved_model(
                str(saved), signature_keys=[SIGNATURE]
            )
            converter.target_spec.supported_ops = ops
            if quantize is not None:
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if quantize == "float16":
                converter.target_spec.supported_types = [tf.float16]
            if quantize == "int8":
                converter.representative_dataset = _calibration(representative)
            try:
                with warnings.catch_warnings():  # int8 calibration warns as _tflite_runner says
                    warnings.simplefilter("ignore", UserWarning)
                    return converter.convert()
            except Exception as err:  # noqa: BLE001 - the converter's errors have no common base
                error = err
    raise ExportError(f"TFLite cannot convert the model: {_one_line(error)}")


def _calibration(representative: Mapping[str, np.ndarray]):
    """The representative dataset: one sample at a time, inputs by signature name."""
    rows = len(next(iter(representative.values())))

    def samples():
        for row in range(rows):
            yield {name: np.asarray(value[row : row + 1]) for name, value in representative.items()}

    return samples


def _write_onnx(model, path: Path, sample: Mapping[str, np.ndarray] | None) -> None:
    """tf2onnx from a tf.function. Keras' layers capture some constants (a Normalization's mean
    and variance) that tf2onnx would make graph inputs, so the serving function is frozen first
    (every variable and captured constant made a constant; loops, as in an LSTM, kept as they
    are) and the tf.function given to tf2onnx calls the frozen one."""
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    strings = [spec["name"] for spec in input_specs(model) if spec["dtype"] == "string"]
    if strings:
        raise ExportError(
            f"ONNX cannot take the string input(s) {', '.join(strings)}: tf2onnx converts no "
            "Keras lookup table (StringLookup, TextVectorization); export as keras, savedmodel "
            "or tflite instead"
        )
    signature = _signature(model)
    serve = tf.function(_serving_function(model), input_signature=[signature])
    concrete = serve.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    order = [tensor.name.split(":")[0] for tensor in frozen.inputs]
    keys = sorted(concrete.structured_outputs)  # the order of a dict's flattened values

    @tf.function(input_signature=[signature])
    def frozen_serve(inputs):
        outputs = frozen(*[inputs[name] for name in order])
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        return dict(zip(keys, outputs, strict=True))

    try:
        tf2onnx.convert.from_function(
            frozen_serve, input_signature=[signature], opset=ONNX_OPSET, output_path=str(path)
        )
    except Exception as err:  # noqa: BLE001 - tf2onnx raises many kinds
        raise ExportError(f"tf2onnx cannot convert the model: {_one_line(err)}") from None
    specs = input_specs(model)
    batch = dict(sample) if sample else _zeros(specs)
    try:
        _onnx_runner(path)(_as_feed(specs, batch))
    except Exception as err:  # noqa: BLE001 - onnxruntime's errors have no common base
        raise ExportError(f"{path.name}: onnxruntime cannot run it: {_one_line(err)}") from None


def _zeros(specs: list[dict[str, Any]], rows: int = 2) -> dict[str, np.ndarray]:
    """A batch of zeros (empty strings) for inputs given by spec; any size is taken as 8."""
    batch = {}
    for spec in specs:
        shape = (rows, *[8 if d is None else d for d in spec["shape"]])
        if spec["dtype"] == "string":
            batch[spec["name"]] = np.full(shape, "", dtype=object)
        else:
            batch[spec["name"]] = np.zeros(shape, dtype=spec["dtype"])
    return batch


# Loading an export


class Predictor:
    """An exported model, loaded with its own runtime, predicting from raw inputs.

    Args:
        folder: the export folder.
        fmt: its format (keras, savedmodel, tflite, onnx or project).
        inputs: its inputs as `input_specs` gives them.
        outputs: its output names.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        fmt: str,
        inputs: list[dict[str, Any]],
        outputs: list[str],
    ):
        check_format(fmt)
        self.folder = Path(folder)
        self.format = fmt
        self.inputs = inputs
        self.outputs = outputs
        path = self.folder / MODEL_FILES[fmt]
        loader = {
            "keras": _keras_runner,
            "project": _keras_runner,
            "savedmodel": _saved_model_runner,
            "tflite": _tflite_runner,
            "onnx": _onnx_runner,
        }[fmt]
        self._run = loader(path)

    def predict(self, raw_inputs: Any) -> np.ndarray | dict[str, np.ndarray]:
        """Predictions for a batch of raw inputs: a dict by input name (or by the column an
        input reads), a pandas DataFrame of columns, or an array for a model with one input.
        A table column may be given flat, (n,) for (n, 1). Returns an array, or a dict of
        arrays by output name for a model with several outputs."""
        outputs = self.predict_all(raw_inputs)
        return outputs[self.outputs[0]] if len(self.outputs) == 1 else outputs

    def predict_all(self, raw_inputs: Any) -> dict[str, np.ndarray]:
        """Predictions by output name."""
        found = self._run(_as_feed(self.inputs, raw_inputs))
        return {name: np.asarray(found[name]) for name in self.outputs}


def load_export(folder: str | os.PathLike) -> Predictor:
    """The export in `folder` (as export_run wrote it), loaded and ready to predict."""
    folder = Path(folder)
    path = folder / METADATA
    if not path.is_file():
        raise ExportError(f"{folder}: not an export folder (it has no {METADATA})")
    meta = json.loads(path.read_text())
    return Predictor(folder, meta["format"], meta["inputs"], meta["outputs"])


def _as_feed(specs: list[dict[str, Any]], raw_inputs: Any) -> dict[str, np.ndarray]:
    """Raw inputs -> arrays by input name, with the batch axis, in the inputs' dtypes."""
    if not isinstance(raw_inputs, Mapping) and not hasattr(raw_inputs, "columns"):
        if len(specs) != 1:
            raise ValueError(
                f"Received one array for a model with {len(specs)} inputs; give a dict by "
                f"input name ({', '.join(s['name'] for s in specs)})"
            )
        raw_inputs = {specs[0]["name"]: raw_inputs}
    feed = {}
    for spec in specs:
        name, column = spec["name"], spec.get("column", spec["name"])
        if name in raw_inputs:
            value = raw_inputs[name]
        elif column in raw_inputs:
            value = raw_inputs[column]
        else:
            raise ValueError(
                f"Received no value for input `{name}`"
                + (f" (column '{column}')" if column != name else "")
                + f"; the inputs are: {', '.join(s['name'] for s in specs)}"
            )
        array = np.asarray(value)
        if spec["shape"] == [1] and array.ndim == 1:
            array = array[:, None]
        if array.ndim != len(spec["shape"]) + 1:
            raise ValueError(
                f"Received an invalid value for input `{name}`, expected a batch of shape "
                f"(n, {', '.join('any' if d is None else str(d) for d in spec['shape'])}). "
                f"Received: shape={array.shape}"
            )
        if spec["dtype"] == "string":
            array = array.astype(str).astype(object)
        else:
            array = array.astype(spec["dtype"])
        feed[name] = array
    return feed


def _keras_runner(path: Path):
    import keras

    model = keras.saving.load_model(path, compile=False)
    names = output_names(model)

    return lambda feed: keras_predict(model, feed, names)


def keras_predict(
    model, feed: Mapping[str, np.ndarray], names: list[str] | None = None, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """A Keras model's predictions by output name, for inputs by name, a batch at a time.
    (model.predict cannot take string arrays; the model called on tensors can.)"""
    import tensorflow as tf

    names = names or output_names(model)
    rows = len(next(iter(feed.values())))
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, max(rows, 1), batch_size):
        batch = {key: tf.constant(value[start : start + batch_size]) for key, value in feed.items()}
        parts.append(_named(model(_structured(model, batch), training=False), names))
    return {name: np.concatenate([np.asarray(part[name]) for part in parts]) for name in names}


def _saved_model_runner(path: Path):
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures[SIGNATURE]

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = {name: tf.constant(value) for name, value in feed.items()}
        return {name: value.numpy() for name, value in signature(**tensors).items()}

    return run


def _tflite_runner(path: Path):
    import tensorflow as tf

    with warnings.catch_warnings():
        # It warns that it moves to the ai_edge_litert package; it is what TF 2.21 ships.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner(SIGNATURE)

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # The interpreter is sized for a batch at a time; a batch of another size resizes it.
        return dict(runner(**feed))

    return run


def _onnx_runner(path: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, feed), strict=True))

    return run


# Parity


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
    feed = _as_feed(specs, inputs)
    expected = keras_predict(model, feed, names)
    results = []
    with tempfile.TemporaryDirectory(prefix="layerflow-parity-") as tmp:
        for fmt in formats:
            folder = Path(tmp) / fmt
            try:
                write_model(model, fmt, folder, sample=feed)
                found = Predictor(folder, fmt, specs, names).predict_all(feed)
            except Exception as err:  # noqa: BLE001 - reported as this format's failure
                results.append(
                    {
                        "format": fmt,
                        "passed": False,
                        "max_abs_diff": None,
                        "detail": f"{fmt}: {_one_line(err)}",
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


def _named(outputs: Any, names: list[str]) -> dict[str, np.ndarray]:
    if isinstance(outputs, dict):
        return {name: np.asarray(outputs[name]) for name in names}
    if isinstance(outputs, list | tuple):
        return {name: np.asarray(o) for name, o in zip(names, outputs, strict=True)}
    return {names[0]: np.asarray(outputs)}


def _parity_rows(dataset) -> tuple[str, list[int]]:
    """The split the parity check uses (test, else validation, else train) and its first rows
    in order (enough for the windows of a time series)."""
    config, _ = dataset.preprocessing()
    extra = config.window.size + config.window.horizon - 1 if config.window else 0
    for split in ("test", "validation", "train"):
        rows = sorted(dataset.splits.get(split) or [])
        if rows:
            return split, rows[: PARITY_ROWS + extra]
    raise ExportError(f"Dataset '{dataset.name}' has no rows to check the export on")


def _parity_sample(dataset, config, state, source) -> tuple[dict, dict, str]:
    """(raw inputs, the model inputs `transform` gives, the split) of the parity rows."""
    from app.runtime.preprocessing import transform

    split, rows = _parity_rows(dataset)
    inputs, _ = transform(config, state, source, rows)
    return raw_inputs(config, state, source, rows), inputs, split


def _check_parity(predictor: Predictor, trained, sample, quantize: str | None, doc) -> dict:
    """The export's predictions on raw rows against LayerFlow's: transform, then the trained
    model."""
    raw, inputs, split = sample
    model_inputs = [node.id for node in doc.nodes if node.component == "Input"]
    if len(model_inputs) == 1 and len(inputs) == 1:
        x: Any = next(iter(inputs.values()))
    else:
        x = {node: inputs[node] for node in model_inputs}
    expected = _named(trained.predict(x, verbose=0), predictor.outputs)
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
            "detail": f"it cannot predict raw {split} rows: {_one_line(err)}",
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


def _representative(dataset, config, state, source) -> dict[str, np.ndarray]:
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


# The standalone project


def write_project(folder: Path, run_dir: Path, model, dataset, source=None) -> list[str]:
    """Write into `folder` a project that predicts with and retrains the run's model without
    LayerFlow: model.py (the generated code of the run's graph), preprocessing.py, prepare.py,
    train.py, evaluate.py and predict.py (templates/project/), params.yaml (the run's settings
    and preprocessing), dvc.yaml (stages prepare, train and evaluate), requirements.txt, a
    README, a copy of the raw data under data/, and the model of raw inputs with its fitted
    preprocessing under model/. Returns the paths written, relative.

    Args:
        folder: an empty folder.
        run_dir: the run's directory.
        model: the run's model behind its preprocessing (`with_preprocessing`).
        dataset: the run's dataset (app.data.store.Dataset) at the run's version.
        source: the dataset's source, if already read.
    """
    import yaml

    from app.graph.codegen import TEMPLATES, Code, environment, generate_module
    from app.graph.document import load
    from app.train.settings import TrainingSettings, output_losses, output_metrics, params

    doc = load(run_dir / runs.GRAPH)
    info = runs.read_info(run_dir)
    settings = TrainingSettings.from_dict(json.loads((run_dir / runs.SETTINGS).read_text()))
    config, state = dataset.preprocessing()
    data = _copy_data(dataset, folder / "data", source)
    losses, metrics = output_losses(settings, doc), output_metrics(settings, doc)
    values = {
        "data": data,
        "preprocessing": {
            **config.model_dump(mode="json"),
            "features": [_feature_params(spec) for spec in config.features],
        },
        "train": {
            **params(settings),
            "outputs": {node: {"loss": losses[node], "metrics": metrics[node]} for node in losses},
        },
    }
    atomic_write_text(folder / "model.py", generate_module(doc, weights_dir=WEIGHTS))
    weights = copy_weights(doc, folder)
    model_dir = folder / "model"
    model_dir.mkdir()
    model.save(model_dir / "model.keras")
    atomic_write_text(model_dir / "preprocessing.json", state.model_dump_json(indent=2) + "\n")
    report = run_dir / REPORT
    context = {
        "name": Code(_one_line_text(doc.meta.name)),
        "run": Code(info["id"]),
        "dataset": Code(_one_line_text(dataset.name)),
        "version": Code(str(info["data"]["version"])[:10]),
        "task": Code(_one_line_text(dataset.meta.get("task") or "")),
        "entry": Code(data.get("table") or data.get("arrays")),
        "params": Code(yaml.safe_dump(values, sort_keys=False)),
        "requirements": [Code(line) for line in _requirements(data)],
        "summary": [
            Code(f"{key}: {value:.4g}" if isinstance(value, int | float) else f"{key}: {value}")
            for key, value in (
                json.loads(report.read_text()).get("summary", {}) if report.is_file() else {}
            ).items()
        ],
    }
    env = environment()
    base = TEMPLATES / PROJECT_TEMPLATES
    written = ["model.py", *weights, "model/model.keras", "model/preprocessing.json"]
    for template in sorted(base.glob("*.j2")):  # dotfiles (.gitignore) too
        target = template.name.removesuffix(".j2")
        text = env.get_template(f"{PROJECT_TEMPLATES}/{template.name}").render(context)
        atomic_write_text(folder / target, text)
        written.append(target)
    return written + [f"data/{p}" for p in _relative_files(folder / "data")]


def copy_weights(doc, folder: Path) -> list[str]:
    """Copy the weights files the graph's Backbones load into folder/weights/, where the
    project's model.py (generated with weights_dir=WEIGHTS) looks; returns their paths there."""
    from app.graph.codegen import weights_files

    copied = []
    for relative in weights_files(doc):
        source = inside(workspace_root(), relative)
        if not source.is_file():
            raise ExportError(f"{relative}: a Backbone's weights file, no longer in the workspace")
        copy = folder / WEIGHTS / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)
        copied.append(f"{WEIGHTS}/{relative}")
    return copied


def _feature_params(spec) -> dict[str, Any]:
    """A feature's settings for params.yaml: those of its kind only."""
    fields = {
        "numeric": ("method",),
        "categorical": ("method",),
        "passthrough": (),
        "image": ("height", "width", "grayscale", "normalize", "flip", "rotation", "zoom"),
        "text": ("vocab_size", "sequence_length"),
    }[spec.kind]
    return {"column": spec.column, "kind": spec.kind, **{f: getattr(spec, f) for f in fields}}


def _copy_data(dataset, target: Path, source=None) -> dict[str, Any]:
    """Copy the dataset's files (and its splits) into `target`; returns params.yaml's `data`:
    the table the rows are read from (for a folder of images, a table of the images' paths and
    labels written here) or the .npz file, and the splits."""
    from app.data.store import META, SPLITS, STATE

    shutil.copytree(
        dataset.folder, target, ignore=shutil.ignore_patterns(META, SPLITS, STATE), symlinks=False
    )
    atomic_write_text(target / "splits.json", json.dumps(dataset.splits) + "\n")
    entry = dataset.meta["entry"]
    kind = dataset.meta["kind"]
    data: dict[str, Any] = {"name": dataset.name, "version": dataset.version}
    if kind == "npz":
        data["arrays"] = f"data/{entry}"
    elif kind == "table":
        data["table"] = f"data/{entry}"
    else:  # a folder: its rows as read_source lists them, so that the splits index them
        rows = (source or dataset.source()).frame
        rows.to_csv(target / "rows.csv", index=False)
        data["table"] = "data/rows.csv"
    data["splits"] = "data/splits.json"
    data["fractions"] = dataset.meta.get("fractions", [0.7, 0.2, 0.1])
    data["seed"] = dataset.meta.get("seed", 0)
    return data


def _requirements(data: dict[str, Any]) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    def minor(package: str, fallback: str) -> str:
        try:
            return ".".join(version(package).split(".")[:2])
        except PackageNotFoundError:
            return fallback

    lines = [
        f"tensorflow=={minor('tensorflow-cpu', minor('tensorflow', '2.21'))}.*",
        f"keras>={minor('keras', '3.10')}",
        "numpy",
        "pandas",
        "pyyaml",
        "dvc",
    ]
    if str(data.get("table", "")).endswith(".parquet"):
        lines.append("pyarrow")
    return lines


def _relative_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _one_line_text(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())


# Files and versions


def _dataset_of(folder: Path, root: Path | None):
    """The run's dataset, at the version the run was trained on."""
    from app.data import store

    try:
        return store.of_run(folder, root)
    except ValueError as err:  # DataError
        raise ExportError(str(err)) from None


def _keep_out_of_workspace_pipelines(exports: Path) -> None:
    """A project export holds its own dvc.yaml, which belongs to the project, not to the
    workspace's DVC repository: DVC skips files git ignores, so ignore it (and the staging
    folders) here. Once recorded, the whole export folder is ignored by the line DVC adds."""
    path = exports / ".gitignore"
    lines = path.read_text().splitlines() if path.exists() else []
    wanted = ["/.staging-*", "/*-project/dvc.yaml"]
    missing = [line for line in wanted if line not in lines]
    if missing:
        atomic_write_text(path, "\n".join([*lines, *missing]) + "\n")


def _record(root: Path, folder: Path, note: str, attempts: int = 30) -> None:
    """Record the export as a DVC version, waiting a turn while another process holds DVC's
    lock."""
    for attempt in range(attempts):
        try:
            versions.record(root, folder, note=note)
            return
        except Exception as err:
            if type(err).__name__ == "LockError" and attempt < attempts - 1:
                time.sleep(1.0)
                continue
            raise ExportError(
                f"{folder}: exported, but DVC could not record it: {_one_line(err)}"
            ) from err


def _file_list(folder: Path, written: list[str]) -> list[dict[str, Any]]:
    """Every file of the export (those in written folders too) with its size."""
    files = []
    for name in written:
        path = folder / name
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            files.append(
                {"path": file.relative_to(folder).as_posix(), "bytes": file.stat().st_size}
            )
    return files


def _one_line(err: BaseException | None) -> str:
    text = " ".join(str(err).split()) if err is not None else ""
    line = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return line if len(line) <= 300 else line[:297] + "..."


__all__ = [
    "ExportError",
    "Predictor",
    "check_format",
    "check_gate",
    "compare",
    "export_run",
    "input_specs",
    "keras_predict",
    "load_export",
    "output_names",
    "parity",
    "raw_inputs",
    "serving_model",
    "with_preprocessing",
    "write_model",
    "write_project",
]
