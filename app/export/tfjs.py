"""The TensorFlow.js layers format, written by LayerFlow itself (the `tensorflowjs` package
cannot be installed beside TensorFlow 2.21): model.json (the topology in the Keras JSON that
TF.js reads, and the weights manifest) and binary weight shards, from the trained model.

Each Keras layer of the model maps to the TF.js layer class that computes the same thing at
inference, with the settings TF.js takes (LAYERS). Where TF.js has no such class, an equal one
is written instead: Normalization (over the last axis) as a Dense layer with a diagonal kernel,
dropout and augmentation layers (identities at inference) as linear Activations. A model with
any other layer is refused in one line naming each such node.

The preprocessing goes beside the model as data (preprocessing.json: means, scales, categories,
vocabulary) read by a fixed script (preprocess.js), so that nothing from a dataset becomes code.
TF.js runs it in Node (the parity tests) and in the export's index.html demo.

Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from app.export.options import ExportError
from app.files import atomic_write_bytes, atomic_write_text
from app.graph.block_layers import layer_owners
from app.paths import REPOSITORY

SHARD_BYTES = 4 * 1024 * 1024  # as the TF.js converter shards weights
TEMPLATES = REPOSITORY / "templates" / "tfjs"
FILES = ("preprocess.js", "index.html", "predict.js")  # copied beside model.json
TFJS_VERSION = "4.22.0"  # the @tensorflow/tfjs the demo and the parity tests use
CACHE = Path.home() / ".cache" / "layerflow" / f"tfjs-{TFJS_VERSION}"  # npm installs it here
BUNDLE = Path("node_modules") / "@tensorflow" / "tfjs" / "dist" / "tf.min.js"
CDN = f"https://cdn.jsdelivr.net/npm/@tensorflow/tfjs@{TFJS_VERSION}/dist/tf.min.js"

CONV = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
        "activation", "use_bias")  # fmt: skip
POOL = ("pool_size", "strides", "padding", "data_format")
RNN = ("units", "activation", "recurrent_activation", "use_bias", "return_sequences",
       "return_state", "go_backwards", "unroll")  # fmt: skip
# Keras class -> the TF.js class and the settings it takes (None: the same class).
LAYERS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "Dense": (None, ("units", "activation", "use_bias")),
    "Activation": (None, ("activation",)),
    "Flatten": (None, ("data_format",)),
    "Reshape": (None, ("target_shape",)),
    "Permute": (None, ("dims",)),
    "Conv1D": (None, CONV),
    "Conv2D": (None, CONV),
    "Conv3D": (None, CONV),
    "Conv2DTranspose": (None, CONV),
    "SeparableConv2D": (None, (*CONV, "depth_multiplier")),
    "DepthwiseConv2D": (None, (*CONV[1:], "depth_multiplier")),
    "MaxPooling1D": (None, POOL),
    "MaxPooling2D": (None, POOL),
    "AveragePooling1D": (None, POOL),
    "AveragePooling2D": (None, POOL),
    "GlobalMaxPooling1D": (None, ("data_format",)),
    "GlobalMaxPooling2D": (None, ("data_format",)),
    "GlobalAveragePooling1D": (None, ("data_format",)),
    "GlobalAveragePooling2D": (None, ("data_format",)),
    "BatchNormalization": (None, ("axis", "momentum", "epsilon", "center", "scale")),
    "LayerNormalization": (None, ("axis", "epsilon", "center", "scale")),
    "Embedding": (None, ("input_dim", "output_dim", "mask_zero")),
    "SimpleRNN": (None, tuple(n for n in RNN if n != "recurrent_activation")),
    "LSTM": (None, RNN),
    "Add": (None, ()),
    "Multiply": (None, ()),
    "Average": (None, ()),
    "Maximum": (None, ()),
    "Minimum": (None, ()),
    "Concatenate": (None, ("axis",)),
    "Rescaling": (None, ("scale", "offset")),
    "ZeroPadding2D": (None, ("padding", "data_format")),
    "Cropping2D": (None, ("cropping", "data_format")),
    "UpSampling2D": (None, ("size", "data_format", "interpolation")),
    # Identities at inference:
    "Dropout": ("Dropout", ("rate",)),
    "SpatialDropout1D": ("Dropout", ("rate",)),
    "SpatialDropout2D": ("Dropout", ("rate",)),
    "RandomFlip": ("Activation", ()),
    "RandomRotation": ("Activation", ()),
    "RandomZoom": ("Activation", ()),
}
IDENTITY = {"activation": "linear"}
# Keras activation -> TF.js's: only those that compute the same thing (TF.js' gelu, hard sigmoid
# and others differ from Keras 3's, or are missing).
SAME = ("linear", "relu", "relu6", "elu", "selu", "sigmoid", "softmax", "softplus", "softsign",
        "tanh", "mish")  # fmt: skip
ACTIVATIONS = {**{name: name for name in SAME}, "silu": "swish", "swish": "swish"}
WEIGHT_NAMES = {"DepthwiseConv2D": {"kernel": "depthwise_kernel"}}  # Keras 3 name -> TF.js name


def layers_model(model, doc=None) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """The TF.js topology (modelTopology) of a Keras functional model, and its weights by TF.js
    name (layer/weight), in order. Raises ExportError naming every layer TF.js cannot run."""
    config = model.get_config()
    by_name = {layer.name: layer for layer in model.layers}
    refused = [f"node {node_id} (Custom code, which TensorFlow.js cannot run)"
               for node_id in _custom_nodes(doc)]  # fmt: skip
    layers, weights = [], []
    for entry in config["layers"]:
        layer = by_name.get(entry["config"]["name"])
        if layer is None:  # an operation called on tensors (keras.ops), not a layer
            if not refused:
                refused.append(f"{_node_of(entry['config']['name'], doc)} (a "
                               f"{entry.get('class_name')} operation, not a layer)")  # fmt: skip
            continue
        try:
            written, named = _layer(layer, entry)
        except _Unsupported as error:
            refused.append(f"{_node_of(layer.name, doc)} ({error})")
            continue
        written["inbound_nodes"] = _inbound(entry.get("inbound_nodes", []))
        layers.append(written)
        weights += named
    if refused:
        raise ExportError(
            "TensorFlow.js cannot run "
            + "; ".join(refused)
            + ": change those nodes, or export in another format"
        )
    topology = {
        "class_name": "Model",
        "config": {
            "name": model.name,
            "layers": layers,
            "input_layers": _ends(config["input_layers"]),
            "output_layers": _ends(config["output_layers"]),
        },
        "keras_version": "tfjs-layers 4",
        "backend": "tensor_flow.js",
    }
    return topology, weights


class _Unsupported(Exception):
    pass


def _custom_nodes(doc) -> list[str]:
    """The Custom nodes of the graph and of its blocks (their code may call anything)."""
    if doc is None:
        return []
    inner = [n for block in doc.blocks.values() for n in block.nodes]
    return [n.id for n in [*doc.nodes, *inner] if n.component == "Custom"]


def _node_of(layer_name: str, doc) -> str:
    """'node conv1' for a layer of node conv1, 'node b (its layer b_1_conv)' for one of Block
    node b's layers (or LastStep node b's b_crop), 'layer dense_1' for one no node names
    (Custom code's layers are named by Keras)."""
    if doc is None:
        return f"node {layer_name}"
    owner = layer_owners(doc).get(layer_name)
    if owner is None:
        return f"layer {layer_name}"
    return f"node {owner}" + (f" (its layer {layer_name})" if owner != layer_name else "")


def _layer(layer, entry: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """One layer as TF.js writes it, and its weights by TF.js name."""
    kind = type(layer).__name__
    settings = entry["config"]
    name = settings["name"]
    if kind == "InputLayer":
        shape = settings.get("batch_shape") or settings.get("batch_input_shape")
        dtype = _dtype(settings.get("dtype"))
        config = {"batch_input_shape": list(shape), "dtype": dtype, "sparse": False, "name": name}
        return {"class_name": "InputLayer", "name": name, "config": config}, []
    if kind == "Normalization":
        return _normalization(layer, name)
    if kind not in LAYERS:
        raise _Unsupported(f"a {kind} layer, which TensorFlow.js lacks")
    target, keys = LAYERS[kind]
    config = {key: _plain(settings[key]) for key in keys if key in settings}
    if target == "Activation" and kind != "Activation":
        config = dict(IDENTITY)
    if settings.get("groups", 1) != 1:
        raise _Unsupported(f"a grouped {kind}")
    if kind.startswith("Global") and settings.get("keepdims"):
        raise _Unsupported(f"{kind} with keepdims")
    if kind == "Conv2DTranspose" and set(_flat(settings.get("dilation_rate", 1))) != {1}:
        raise _Unsupported("a dilated Conv2DTranspose, which TF.js does not dilate")
    if kind == "UpSampling2D" and settings.get("interpolation", "nearest") != "nearest":
        raise _Unsupported("a bilinear UpSampling2D, which TF.js samples differently")
    if kind == "Embedding" and settings.get("mask_zero"):
        raise _Unsupported("an Embedding with mask_zero, whose mask TF.js layers ignore")
    for key in ("activation", "recurrent_activation"):
        if key in config:
            name_of = config[key]
            if name_of not in ACTIVATIONS:
                raise _Unsupported(f"the {name_of} activation, which TF.js lacks or computes "
                                   "otherwise")  # fmt: skip
            config[key] = ACTIVATIONS[name_of]
    if kind == "Concatenate":
        config["axis"] = settings.get("axis", -1)
    config.update(name=name, trainable=False, dtype="float32")
    named = []
    if target not in ("Activation", "Dropout"):
        renamed = WEIGHT_NAMES.get(kind, {})
        named = [(f"{name}/{renamed.get(v.name, v.name)}", np.asarray(v.numpy()))
                 for v in layer.weights]  # fmt: skip
    return {"class_name": target or kind, "name": name, "config": config}, named


def _normalization(layer, name: str) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """Keras' Normalization, (x - mean) / max(sqrt(variance), epsilon) over the last axis, as
    the Dense layer that computes it (a diagonal kernel): TF.js has no Normalization layer."""
    axis = layer.axis if isinstance(layer.axis, tuple | list) else (layer.axis,)
    if tuple(axis) not in ((-1,), (len(layer.input.shape) - 1,)):
        raise _Unsupported(f"a Normalization over axis {layer.axis}; TF.js gets the last only")
    mean = np.asarray(layer.mean, dtype=np.float64).reshape(-1)
    std = np.maximum(np.sqrt(np.asarray(layer.variance, dtype=np.float64).reshape(-1)), 1e-7)
    config = {"units": int(mean.size), "activation": "linear", "use_bias": True, "name": name,
              "trainable": False, "dtype": "float32"}  # fmt: skip
    kernel = np.diag(1.0 / std).astype(np.float32)
    bias = (-mean / std).astype(np.float32)
    return (
        {"class_name": "Dense", "name": name, "config": config},
        [(f"{name}/kernel", kernel), (f"{name}/bias", bias)],
    )


def _flat(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def _plain(value: Any) -> Any:
    """A setting as TF.js reads it: lists for tuples, an activation by its name."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and "config" in value:  # a serialized object: by its name
        return value.get("config", {}).get("name") or value.get("class_name")
    return value


def _dtype(value: Any) -> str:
    name = value.get("config", {}).get("name") if isinstance(value, dict) else value
    return {"int64": "int32", "float64": "float32"}.get(name or "float32", name or "float32")


def _inbound(nodes: list) -> list:
    """Keras 3's inbound nodes ({"args": [...], "kwargs": {...}}) as TF.js's lists of
    [layer, node index, tensor index, kwargs]."""
    written = []
    for node in nodes:
        tensors = []
        _tensors(node.get("args", []), tensors)
        written.append([[*history, {}] for history in tensors])
    return written


def _tensors(value: Any, found: list) -> None:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            found.append(list(value["config"]["keras_history"]))
            return
        for item in value.values():
            _tensors(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _tensors(item, found)


def _ends(value: Any) -> list:
    """input_layers / output_layers as a list of [layer, node, tensor]."""
    if value and isinstance(value[0], str):
        return [list(value)]
    if isinstance(value, dict):
        return [list(v) for v in value.values()]
    return [list(v) for v in value]


def write_layers_model(model, folder: Path, doc=None, metadata: dict | None = None) -> list[str]:
    """model.json and its weight shards in `folder`; the files written, relative."""
    topology, weights = layers_model(model, doc)
    data = b"".join(np.ascontiguousarray(array, dtype="<f4").tobytes() for _, array in weights)
    count = max(1, math.ceil(len(data) / SHARD_BYTES))
    paths = [f"group1-shard{i + 1}of{count}.bin" for i in range(count)]
    for i, path in enumerate(paths):
        atomic_write_bytes(folder / path, data[i * SHARD_BYTES : (i + 1) * SHARD_BYTES])
    manifest = [{"paths": paths, "weights": [
        {"name": name, "shape": [int(d) for d in array.shape], "dtype": "float32"}
        for name, array in weights
    ]}]  # fmt: skip
    written = {
        "format": "layers-model",
        "generatedBy": "LayerFlow",
        "convertedBy": "LayerFlow (app/export/tfjs.py)",
        "modelTopology": topology,
        "weightsManifest": manifest,
        "userDefinedMetadata": metadata or {},
    }
    atomic_write_text(folder / "model.json", json.dumps(written) + "\n")
    return ["model.json", *paths]


def preprocessing_state(config, state, model) -> dict[str, Any]:
    """What preprocess.js needs to turn raw inputs into the model's: each input's features in
    order, with the fitted means, scales, categories or vocabulary. Raises ExportError for the
    preprocessing it cannot do (dates, windows of a series)."""
    from app.runtime.config import column_state, input_names
    from app.runtime.transform import affine

    if config.window is not None:
        raise ExportError("TensorFlow.js export: a time-series window is not supported yet; "
                          "export in another format")  # fmt: skip
    names = input_names(config)
    features, inputs = [], {}
    for spec in config.features:
        column = column_state(state, spec)
        if spec.kind in ("numeric", "passthrough"):
            offset, scale = affine(spec, column)
            features.append({"column": spec.column, "kind": "number",
                             "mean": _list(column.mean), "offset": _list(offset),
                             "scale": _list(scale)})  # fmt: skip
        elif spec.kind == "categorical":
            features.append({"column": spec.column, "kind": "category",
                             "categories": [str(c) for c in (column.categories or [])],
                             "onehot": spec.resolved_method != "integer"})  # fmt: skip
        elif spec.kind == "date":
            raise ExportError(f"TensorFlow.js export: the date column {spec.column!r} is not "
                              "supported yet; export in another format")  # fmt: skip
        elif spec.kind == "image":
            inputs[names[spec.column]] = {"column": spec.column, "kind": "image",
                                          "height": spec.height, "width": spec.width,
                                          "channels": spec.channels,
                                          "scale": 1 / 255 if spec.normalize else 1}  # fmt: skip
        elif spec.kind == "text":
            inputs[names[spec.column]] = {"column": spec.column, "kind": "text",
                                          "length": spec.sequence_length,
                                          "vocabulary": list(column.vocabulary or [])}  # fmt: skip
    if features:
        inputs = {"features": {"kind": "features", "features": features}, **inputs}
    order = [tensor.name.split(":")[0] for tensor in model.inputs]
    return {"inputs": inputs, "order": _model_order(order, list(inputs)),
            "classes": state.classes}  # fmt: skip


def _model_order(model_inputs: list[str], data_inputs: list[str]) -> list[str]:
    """The data input feeding each model input, in the model's order (one input: the one)."""
    if len(model_inputs) == 1 and len(data_inputs) == 1:
        return data_inputs
    return [name if name in data_inputs else data_inputs[i] for i, name in enumerate(model_inputs)]


def _list(value: Any) -> Any:
    array = np.asarray(value, dtype=np.float64)
    return float(array) if array.ndim == 0 else array.reshape(-1).tolist()


def write_tfjs(model, folder: Path, config, state, doc=None) -> list[str]:
    """The whole TF.js export: model.json and shards, preprocessing.json, preprocess.js, the
    index.html demo, and tf.min.js when the pinned TF.js is installed (else the page loads it
    from the CDN)."""
    prep = preprocessing_state(config, state, model)
    written = write_layers_model(model, folder, doc, {"layerflow": {"classes": prep["classes"]}})
    atomic_write_text(folder / "preprocessing.json", json.dumps(prep) + "\n")
    for name in FILES:
        shutil.copyfile(TEMPLATES / name, folder / name)
    written += ["preprocessing.json", *FILES]
    bundle = CACHE / BUNDLE
    if bundle.is_file():
        shutil.copyfile(bundle, folder / "tf.min.js")
        written.append("tf.min.js")
    return written


class TfjsUnavailable(Exception):
    """Node or the pinned TF.js is not installed here: the export cannot be run to check it."""


def js_rows(raw: dict[str, np.ndarray], config, state) -> list[dict[str, Any]]:
    """Raw inputs (app.runtime.serving.raw_inputs) as the rows preprocess.js takes: objects by
    column name, with null for a missing number."""
    from app.runtime.serving import raw_columns

    columns = raw_columns(config, state)
    count = len(next(iter(raw.values())))
    rows: list[dict[str, Any]] = [{} for _ in range(count)]
    for name, values in raw.items():
        for row, value in zip(rows, values, strict=True):
            row[columns[name]] = _js_value(np.asarray(value))
    return rows


def _js_value(value: np.ndarray) -> Any:
    """A raw value as JSON has it: text as text, NaN (JSON has none) as null."""
    if value.size == 1 and value.ndim <= 1:
        item = value.reshape(-1)[0]
        item = item.item() if isinstance(item, np.generic) else item  # text may be object
        if isinstance(item, bytes):
            return item.decode("utf-8", "replace")
        return None if isinstance(item, float) and math.isnan(item) else item
    if value.dtype.kind == "f":
        return np.where(np.isnan(value), None, value.astype(object)).tolist()
    return value.tolist()


def node_predict(folder: Path, rows: list[dict[str, Any]], timeout: float = 300) -> np.ndarray:
    """The export's predictions of `rows`, by the real TF.js in Node (predict.js)."""
    import subprocess
    import tempfile

    node = shutil.which("node")
    modules = CACHE / "node_modules"
    if node is None or not (modules / "@tensorflow" / "tfjs").is_dir():
        raise TfjsUnavailable(f"Node and @tensorflow/tfjs@{TFJS_VERSION} (in {CACHE}) are "
                              "needed to run the export")  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(rows, handle)
    try:
        done = subprocess.run(
            [node, str(folder / "predict.js"), str(folder), handle.name],
            env={"NODE_PATH": str(modules), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    finally:
        Path(handle.name).unlink(missing_ok=True)
    if done.returncode != 0:
        raise ExportError(f"TensorFlow.js cannot run the export: {done.stderr.strip()[-300:]}")
    return np.asarray(json.loads(done.stdout), dtype=np.float64)


def check_parity(folder: Path, trained, sample, config, state, doc) -> dict[str, Any]:
    """The export's predictions in TF.js (Node) on raw rows against LayerFlow's (transform,
    then the trained model), within 1e-4 of the largest output; passed None when Node or TF.js
    is not installed here."""
    from app.export.parity import compare

    raw, inputs, split = sample
    model_inputs = [node.id for node in doc.nodes if node.component == "Input"]
    x = next(iter(inputs.values())) if len(model_inputs) == 1 and len(inputs) == 1 else {
        node: inputs[node] for node in model_inputs}  # fmt: skip
    expected = trained.predict(x, verbose=0)
    expected = np.asarray(expected[0] if isinstance(expected, list) else expected)
    rows = js_rows(raw, config, state)
    tolerance = 1e-4 * max(1.0, float(np.nanmax(np.abs(expected))) if expected.size else 1.0)
    base = {"tolerance": tolerance, "rows": len(rows), "split": split, "max_abs_diff": None}
    try:
        found = node_predict(folder, rows)
    except TfjsUnavailable as error:
        return {**base, "passed": None, "detail": f"not checked here: {error}"}
    except ExportError as error:
        return {**base, "passed": False, "detail": str(error)}
    passed, diff, detail = compare({"output": expected}, {"output": found}, tolerance)
    return {**base, "passed": passed, "max_abs_diff": diff,
            "detail": f"{detail} on {len(rows)} raw {split} rows in TensorFlow.js"}  # fmt: skip
