"""The preprocessing as Keras layers: what an exported model carries so that it takes raw rows.

`keras_preprocessing` gives, per raw input, the layers computing what `transform` gives;
`preprocessed` applies them to raw input tensors, and `keras_preprocessing_model` makes a model of
them. Keras is imported inside the functions, so that importing the runtime does not import
TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import (
    FittedState,
    PreprocessConfig,
    check_config,
    column_state,
    identifier,
    input_names,
)
from .dates import date_features
from .transform import affine


def keras_preprocessing(config: PreprocessConfig, state: FittedState) -> dict[str, list]:
    """Raw input name -> the Keras layers that turn it into what `transform` gives.

    Raw inputs are the data as read: one per tabular column (named after it, shape (1,):
    float32 numbers, string or int64 categories) whose outputs are concatenated, in the
    settings' order and cast to float32, into "features" (a date as its day number, days since
    1970-01-01, whose parts `preprocessed` derives); "image" (any height and width, already
    decoded with the settings' channels, pixel values 0..255); "text" (strings, shape (1,)); with
    a window, "features" (size, width) numbers. `keras_preprocessing_model` assembles them.
    An empty list means the raw value is used as it is. Missing numbers must be filled in by
    the caller (transform uses the train mean).
    """
    import keras

    check_config(config)
    names = input_names(config)
    layers: dict[str, list] = {}
    if config.window is not None:
        means, variances = [], []
        for spec in config.features:
            offset, scale = affine(spec, column_state(state, spec))
            means.append(float(offset))
            variances.append(float(scale) ** 2)
        layers["features"] = [keras.layers.Normalization(axis=-1, mean=means, variance=variances)]
        return layers
    for spec in config.features:
        column = column_state(state, spec)
        if spec.kind in ("numeric", "passthrough"):
            method = spec.resolved_method if spec.kind == "numeric" else "none"
            if method == "none":
                layers[spec.column] = [keras.layers.Reshape((-1,))] if column.shape else []
                continue
            offset, scale = affine(spec, column)
            flat = [keras.layers.Reshape((-1,))] if column.shape else []
            layers[spec.column] = [
                *flat,
                keras.layers.Normalization(
                    axis=-1, mean=offset.tolist(), variance=np.square(scale).tolist()
                ),
            ]
        elif spec.kind == "date":
            layers[spec.column] = []  # `preprocessed` derives the parts with Keras ops
        elif spec.kind == "categorical":
            mode = "one_hot" if spec.resolved_method == "onehot" else "int"
            categories = column.categories or []
            if categories and isinstance(categories[0], int):
                # -1 is IntegerLookup's default token for unseen values; pick one not in use.
                oov = min(-1, min(categories) - 1)
                lookup = keras.layers.IntegerLookup(
                    vocabulary=categories, output_mode=mode, num_oov_indices=1, oov_token=oov
                )
            else:
                lookup = keras.layers.StringLookup(
                    vocabulary=categories, output_mode=mode, num_oov_indices=1
                )
            layers[spec.column] = [lookup]
        elif spec.kind == "image":
            image_layers = [keras.layers.Resizing(spec.height, spec.width)]
            if spec.normalize:
                image_layers.append(keras.layers.Rescaling(1.0 / 255))
            layers[names[spec.column]] = image_layers
        elif spec.kind == "text":
            layers[names[spec.column]] = [
                keras.layers.TextVectorization(
                    max_tokens=spec.vocab_size,
                    standardize="lower_and_strip_punctuation",
                    split="whitespace",
                    output_mode="int",
                    output_sequence_length=spec.sequence_length,
                    vocabulary=column.vocabulary or None,
                )
            ]
    return layers


def raw_input_spec(config: PreprocessConfig, state: FittedState) -> dict[str, tuple[list, str]]:
    """Raw input name -> (shape without the batch axis, None for any size; dtype), for the
    inputs `keras_preprocessing` takes."""
    check_config(config)
    if config.window is not None:
        return {"features": ([config.window.size, len(config.features)], "float32")}
    names = input_names(config)
    raw: dict[str, tuple[list, str]] = {}
    for spec in config.features:
        column = column_state(state, spec)
        if spec.kind in ("numeric", "passthrough"):
            raw[spec.column] = (list(column.shape) if column.shape else [1], "float32")
        elif spec.kind == "date":
            raw[spec.column] = ([1], "float32")
        elif spec.kind == "categorical":
            categories = column.categories or []
            integer = bool(categories) and isinstance(categories[0], int)
            raw[spec.column] = ([1], "int64" if integer else "string")
        elif spec.kind == "image":
            raw[names[spec.column]] = ([None, None, spec.channels], "float32")
        elif spec.kind == "text":
            raw[names[spec.column]] = ([1], "string")
    return raw


def keras_preprocessing_model(config: PreprocessConfig, state: FittedState):
    """A Keras model from the raw inputs (`raw_input_spec`) to the model inputs (`input_spec`);
    put it in front of a trained model to export one that takes raw rows."""
    import keras

    raw = {
        name: keras.Input(shape=tuple(shape), dtype=dtype, name=identifier(name))
        for name, (shape, dtype) in raw_input_spec(config, state).items()
    }
    return keras.Model(inputs=raw, outputs=preprocessed(raw, config, state), name="preprocessing")


def preprocessed(raw: dict[str, Any], config: PreprocessConfig, state: FittedState) -> dict:
    """The model inputs by name, from raw input tensors by raw name, through the layers of
    `keras_preprocessing`, and a date's parts from its day number (a missing one, NaN, taken
    as the train mean day) by `date_features` in Keras ops; whole-number categories are looked
    up by comparing with the train categories rather than by an IntegerLookup, whose int64 hash
    table has no TFLite built-in op and no ONNX conversion, so that every export format can
    carry them."""
    import keras

    layers = keras_preprocessing(config, state)
    names = input_names(config)
    methods = {spec.column: spec.resolved_method for spec in config.features}
    dates = {spec.column: spec for spec in config.features if spec.kind == "date"}
    outputs, tabular = {}, []
    for name, tensor in raw.items():
        if name in dates and config.window is None:
            column = state.columns[name]
            days = keras.ops.reshape(tensor, (-1,))
            days = keras.ops.where(keras.ops.isnan(days), round(float(column.mean)), days)
            tensor = date_features(
                days, dates[name].date_parts, column.min, column.max, ops=keras.ops
            )
        for layer in layers[name]:
            if isinstance(layer, keras.layers.IntegerLookup):
                categories = state.columns[name].categories or []
                tensor = _integer_lookup(tensor, categories, one_hot=methods[name] == "onehot")
            else:
                tensor = layer(tensor)
        if config.window is None and names.get(name) == "features":
            tabular.append(keras.ops.cast(tensor, "float32"))
        else:
            outputs[name] = tensor
    if tabular:
        features = tabular[0] if len(tabular) == 1 else keras.layers.Concatenate()(tabular)
        outputs = {"features": features, **outputs}
    return outputs


def _integer_lookup(ids, categories: list[int], one_hot: bool):
    """IntegerLookup(vocabulary=categories, num_oov_indices=1) on (n, 1) int64 ids, with
    comparisons: 1..k for the categories, 0 for any other; one-hot, unseen first."""
    import keras

    matches = keras.ops.equal(ids, np.asarray(categories, dtype=np.int64).reshape(1, -1))
    if one_hot:
        seen = keras.ops.cast(matches, "float32")
        unseen = 1.0 - keras.ops.sum(seen, axis=-1, keepdims=True)
        return keras.ops.concatenate([unseen, seen], axis=-1)
    places = np.arange(1, len(categories) + 1, dtype=np.int64)
    return keras.ops.sum(keras.ops.cast(matches, "int64") * places, axis=-1, keepdims=True)
