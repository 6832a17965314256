"""The one Predictor: a model of raw data (a run's model behind its preprocessing, or an
export), loaded with its own runtime, predicting from raw inputs or from rows of a data set.

An export folder holds metadata.json (its format, inputs and outputs) and the model file of its
format (`MODEL_FILES`): keras, a TF SavedModel (signature serving_default), a TFLite flatbuffer
or an ONNX graph; each runtime is imported when a model of its format is loaded. A project's
model/ folder is a Keras export without metadata: its inputs are read from the model.

Also the helpers that call a Keras model on inputs by name (`structured`, `keras_predict`,
`first_output`), which LayerFlow's tests and exports share.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import FittedState, PreprocessConfig
from .rows import Rows
from .serving import raw_columns, raw_inputs

METADATA = "metadata.json"
SIGNATURE = "serving_default"
MODEL_FILES = {
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "onnx": "model.onnx",
    "project": "model/model.keras",
}

Runner = Callable[[dict[str, np.ndarray]], Mapping[str, Any]]


class Predictor:
    """A model of raw data, predicting from raw inputs.

    Args:
        run: inputs by name (as `as_feed` gives them) -> outputs by name.
        inputs: the model's inputs as `input_specs` gives them.
        outputs: its output names, in order.
        config, state: the preprocessing it carries, for `predict_rows`.
    """

    def __init__(
        self,
        run: Runner,
        inputs: list[dict[str, Any]],
        outputs: list[str],
        config: PreprocessConfig | None = None,
        state: FittedState | None = None,
    ):
        self._run = run
        self.inputs = inputs
        self.outputs = outputs
        self.config = config
        self.state = state

    @classmethod
    def of_model(
        cls,
        model: Any,
        config: PreprocessConfig | None = None,
        state: FittedState | None = None,
        compiled: bool = False,
    ) -> Predictor:
        """A Keras model of raw inputs (`serving.with_preprocessing`), held in memory. Compiled,
        it is called as a tf.function: a trace per new input shape first, then a small batch
        in about a tenth of the eager call's time (for a server that answers many)."""
        columns = raw_columns(config, state) if config is not None and state is not None else None
        names = output_names(model)
        call = None
        if compiled:
            import tensorflow as tf

            call = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
        return cls(
            lambda feed: keras_predict(model, feed, names, call=call),
            input_specs(model, columns),
            names,
            config,
            state,
        )

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike,
        fmt: str,
        inputs: list[dict[str, Any]] | None = None,
        outputs: list[str] | None = None,
        config: PreprocessConfig | None = None,
        state: FittedState | None = None,
        compiled: bool = False,
    ) -> Predictor:
        """The model in `folder`, in format `fmt` (keras, savedmodel, tflite, onnx or project),
        loaded with its own runtime. A Keras model's inputs and outputs are read from it when
        not given; the other formats need them (an export's metadata.json holds them). A Keras
        model is `compiled` as of_model takes it."""
        if fmt not in MODEL_FILES:
            raise ValueError(
                f"Received an invalid value for `fmt`, expected one of "
                f"{', '.join(MODEL_FILES)}. Received: fmt={fmt!r}"
            )
        path = Path(folder) / MODEL_FILES[fmt]
        if fmt in ("keras", "project"):
            import keras

            model = keras.saving.load_model(path, compile=False)
            loaded = cls.of_model(model, config, state, compiled)
            return cls(
                loaded._run, inputs or loaded.inputs, outputs or loaded.outputs, config, state
            )
        if inputs is None or outputs is None:
            raise ValueError(f"{path}: a {fmt} model needs its `inputs` and `outputs` given")
        runner = {"savedmodel": _saved_model, "tflite": _tflite, "onnx": onnx_runner}[fmt]
        return cls(runner(path), inputs, outputs, config, state)

    @classmethod
    def of_export(cls, folder: str | os.PathLike, compiled: bool = False) -> Predictor:
        """The export in `folder`, as its metadata.json describes it (`compiled`: see load)."""
        folder = Path(folder)
        path = folder / METADATA
        if not path.is_file():
            raise ValueError(f"{folder}: not an export folder (it has no {METADATA})")
        meta = json.loads(path.read_text())
        if meta.get("format") == "tfjs":
            raise ValueError(f"{folder}: a TensorFlow.js export runs in a browser (its index.html) "
                             "or in Node (node predict.js FOLDER rows.json), not in Python; "
                             "predict with its run instead")  # fmt: skip
        return cls.load(folder, meta["format"], meta["inputs"], meta["outputs"], compiled=compiled)

    def predict(self, raw: Any) -> np.ndarray | dict[str, np.ndarray]:
        """Predictions for a batch of raw inputs: a dict by input name (or by the column an
        input reads), a pandas DataFrame of columns, or an array for a model with one input.
        A table column may be given flat, (n,) for (n, 1). Returns an array, or a dict of
        arrays by output name for a model with several outputs."""
        outputs = self.predict_all(raw)
        return outputs[self.outputs[0]] if len(self.outputs) == 1 else outputs

    def predict_all(self, raw: Any) -> dict[str, np.ndarray]:
        """Predictions by output name."""
        found = self._run(as_feed(self.inputs, raw))
        return {name: np.asarray(found[name]) for name in self.outputs}

    def predict_rows(self, source: Rows, index: Sequence[int]) -> dict[str, np.ndarray]:
        """Predictions by output name for rows of a data set (with a window, for each window
        of consecutive rows that fits; a DataError when none does)."""
        if self.config is None or self.state is None:
            raise ValueError("Received no preprocessing: rows need the `config` and `state`")
        return self.predict_all(raw_inputs(self.config, self.state, source, index))


def input_specs(model: Any, columns: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
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


def output_names(model: Any) -> list[str]:
    """The names of the model's outputs, in the order predictions are given."""
    if isinstance(model.output, dict):
        return list(model.output)
    return list(model.output_names)


def as_feed(specs: list[dict[str, Any]], raw: Any) -> dict[str, np.ndarray]:
    """Raw inputs -> arrays by input name, with the batch axis, in the inputs' dtypes."""
    if not isinstance(raw, Mapping) and not hasattr(raw, "columns"):
        if len(specs) != 1:
            raise ValueError(
                f"Received one array for a model with {len(specs)} inputs; give a dict by "
                f"input name ({', '.join(s['name'] for s in specs)})"
            )
        raw = {specs[0]["name"]: raw}
    feed = {}
    for spec in specs:
        name, column = spec["name"], spec.get("column", spec["name"])
        if name in raw:
            value = raw[name]
        elif column in raw:
            value = raw[column]
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


def structured(model: Any, inputs: Mapping[str, Any]) -> Any:
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


def named(outputs: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    """A Keras model's outputs (a dict, a list or the one tensor) by output name."""
    if isinstance(outputs, dict):
        return {name: np.asarray(outputs[name]) for name in names}
    if isinstance(outputs, list | tuple):
        return {name: np.asarray(o) for name, o in zip(names, outputs, strict=True)}
    return {names[0]: np.asarray(outputs)}


def first_output(outputs: Any) -> np.ndarray:
    """The first output of a Keras model's outputs (a dict, a list or the one tensor), as
    NumPy."""
    if isinstance(outputs, dict):
        outputs = next(iter(outputs.values()))
    elif isinstance(outputs, list | tuple):
        outputs = outputs[0]
    return np.asarray(outputs)


def keras_predict(
    model: Any,
    feed: Mapping[str, np.ndarray],
    names: Sequence[str] | None = None,
    batch_size: int = 256,
    call: Callable[[Any], Any] | None = None,
) -> dict[str, np.ndarray]:
    """A Keras model's predictions by output name, for inputs by name, a batch at a time, by
    `call` (inputs as the model takes them -> outputs; default the model called eagerly).
    (model.predict cannot take string arrays; the model called on tensors can.)"""
    import tensorflow as tf

    call = call or (lambda inputs: model(inputs, training=False))
    names = list(names or output_names(model))
    rows = len(next(iter(feed.values())))
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, max(rows, 1), batch_size):
        batch = {key: tf.constant(value[start : start + batch_size]) for key, value in feed.items()}
        parts.append(named(call(structured(model, batch)), names))
    return {name: np.concatenate([np.asarray(part[name]) for part in parts]) for name in names}


def _saved_model(path: Path) -> Runner:
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures[SIGNATURE]

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = {name: tf.constant(value) for name, value in feed.items()}
        return {name: value.numpy() for name, value in signature(**tensors).items()}

    return run


def _tflite(path: Path) -> Runner:
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


def onnx_runner(path: Path) -> Runner:
    """An ONNX graph run by onnxruntime on the CPU: inputs by name -> outputs by name."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, feed), strict=True))

    return run
