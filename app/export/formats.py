"""Writing a Keras model in an export format: a .keras file, a TF SavedModel (signature
serving_default, inputs and outputs by name), a TFLite flatbuffer (float32, or quantized:
dynamic range, float16 or int8 calibrated on representative rows) or an ONNX graph (checked by
running a batch in onnxruntime).

Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import one_line
from app.export.options import ExportError, check_format
from app.runtime.predictor import (
    MODEL_FILES,
    SIGNATURE,
    as_feed,
    input_specs,
    onnx_runner,
    output_names,
    structured,
)

MODEL_FORMATS = ("keras", "savedmodel", "tflite", "onnx")
ONNX_OPSET = 17


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
        outputs = model(structured(model, inputs), training=False)
        if isinstance(outputs, dict):
            return {name: outputs[name] for name in names}
        if isinstance(outputs, list | tuple):
            return dict(zip(names, outputs, strict=True))
        return {names[0]: outputs}

    return serve


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
                with warnings.catch_warnings():  # int8 calibration warns of what TF 2.21 ships
                    warnings.simplefilter("ignore", UserWarning)
                    return converter.convert()
            except Exception as err:  # noqa: BLE001 - the converter's errors have no common base
                error = err
    raise ExportError(f"TFLite cannot convert the model: {one_line(error)}")


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
        raise ExportError(f"tf2onnx cannot convert the model: {one_line(err)}") from None
    specs = input_specs(model)
    batch = dict(sample) if sample else _zeros(specs)
    try:
        onnx_runner(path)(as_feed(specs, batch))
    except Exception as err:  # noqa: BLE001 - onnxruntime's errors have no common base
        raise ExportError(f"{path.name}: onnxruntime cannot run it: {one_line(err)}") from None


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
