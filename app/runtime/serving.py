"""The model of raw data: what an exported model takes, and the trained model behind its
preprocessing.

`raw_inputs` gives rows of a data set as such a model takes them (numbers as read, missing ones
NaN; categories and texts as strings; images decoded, unscaled; with a window, the windows of
raw numbers); `raw_columns` names the column each raw input reads. `with_preprocessing` puts the
preprocessing, as Keras layers (`layers.preprocessed`), in front of a trained model, after a step
that makes a missing number the train mean, so that a raw row gives the prediction `transform`
then the trained model give. `examples` adds the targets `transform` gives, for training on raw
inputs. Keras is imported inside the functions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .columns import category_key
from .config import FittedState, PreprocessConfig, identifier, input_names
from .dates import day_numbers
from .images import decode_images, resize_image_array
from .layers import preprocessed, raw_input_spec
from .rows import Rows
from .transform import transform, window_starts


def raw_means(config: PreprocessConfig, state: FittedState) -> dict[str, Any]:
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


def raw_columns(config: PreprocessConfig, state: FittedState) -> dict[str, str]:
    """Raw input name (as the model of raw data names it) -> the column (or array) it reads."""
    if config.window is not None:
        return {"features": "features"}
    names = input_names(config)
    columns = {
        names[spec.column] if spec.kind in ("image", "text") else spec.column: spec.column
        for spec in config.features
    }
    return {identifier(name): columns[name] for name in raw_input_spec(config, state)}


def raw_inputs(
    config: PreprocessConfig, state: FittedState, source: Rows, index: Sequence[int]
) -> dict[str, np.ndarray]:
    """Rows of a source as the model of raw data takes them (raw_input_spec), by input name:
    numbers float32 as read (missing ones NaN); dates as day numbers (days since 1970-01-01,
    float32, NaN where missing); categories as strings, or int64 for whole-number categories;
    images decoded, at the settings' size and channels, pixel values unscaled; text as strings;
    with a window, the windows of raw numbers that `transform` gives (a DataError when no run of
    consecutive rows is long enough).

    Args:
        config, state: the preprocessing settings and their fitted state.
        source: the data (`read_rows`; in LayerFlow, `read_source`).
        index: the rows, in order.
    """
    index = np.asarray(index, dtype=np.int64)
    columns = raw_columns(config, state)
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
        starts = window_starts(config, index)
        matrix = np.concatenate([numbers(spec.column) for spec in config.features], axis=1)
        return {"features": matrix[starts[:, None] + np.arange(config.window.size)]}
    names = input_names(config)
    shapes = raw_input_spec(config, state)
    raw: dict[str, np.ndarray] = {}
    for name, column in columns.items():
        spec = spec_of[column]
        shape = shapes[names[column] if spec.kind in ("image", "text") else column][0]
        if spec.kind in ("numeric", "passthrough"):
            raw[name] = numbers(column).reshape(len(index), *shape)
        elif spec.kind == "date":
            raw[name] = day_numbers(values(column)).astype(np.float32).reshape(-1, 1)
        elif spec.kind == "categorical":
            categories = state.columns[column].categories or []
            keys = [category_key(v) for v in _listed(values(column))]
            if categories and isinstance(categories[0], int):
                unseen = min(-1, min(categories) - 1)
                ids = [k if isinstance(k, int) else unseen for k in keys]
                raw[name] = np.asarray(ids, dtype=np.int64).reshape(-1, 1)
            else:
                text = ["" if k is None else str(k) for k in keys]
                raw[name] = np.asarray(text, dtype=object).reshape(-1, 1)
        elif spec.kind == "text":
            texts = ["" if category_key(v) is None else str(v) for v in _listed(values(column))]
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


def examples(
    config: PreprocessConfig, state: FittedState, source: Rows, index: Sequence[int]
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Raw inputs (`raw_inputs`) and the targets `transform` gives, of the rows `index`: what a
    model of raw data is trained on."""
    _, targets = transform(config, state, source, index)
    return raw_inputs(config, state, source, index), targets


def _table_numbers(values: pd.Series) -> np.ndarray:
    """A table column as float32 (n, 1); what is not a number becomes NaN."""
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float32).reshape(-1, 1)
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.to_numpy(dtype=np.float32, na_value=np.nan).reshape(-1, 1)


def _listed(values: Any) -> list:
    if isinstance(values, np.ndarray):
        return (
            values.reshape(len(values), -1)[:, 0].tolist() if values.ndim > 1 else values.tolist()
        )
    return values.tolist()


# The Keras side


def raw_model_inputs(config: PreprocessConfig, state: FittedState) -> tuple[dict, dict]:
    """(keras.Input per raw input by its name, the model inputs by name computed from them):
    missing numbers made the train mean, then the preprocessing layers (`preprocessed`)."""
    import keras

    means = raw_means(config, state)
    raw, filled = {}, {}
    for key, (shape, dtype) in raw_input_spec(config, state).items():
        value = keras.Input(shape=tuple(shape), dtype=dtype, name=identifier(key))
        raw[value.name] = value
        if key in means:
            mean = np.asarray(means[key], dtype=np.float32)
            value = keras.ops.where(keras.ops.isnan(value), mean, value)
        filled[key] = value
    return raw, preprocessed(filled, config, state)


def arranged(features: dict[str, Any], inputs: Sequence[str]) -> Any:
    """The model inputs as a trained model with Inputs `inputs` takes them: the one tensor, or
    a dict by Input name."""
    if len(inputs) == 1 and len(features) == 1:
        return next(iter(features.values()))
    return {name: features[name] for name in inputs}


def with_preprocessing(
    trained: Any,
    config: PreprocessConfig,
    state: FittedState,
    inputs: Sequence[str],
    outputs: Sequence[str],
) -> Any:
    """A Keras model of raw inputs: missing numbers made the train mean, the preprocessing as
    Keras layers, then the trained model. Its inputs are those of `raw_input_spec`, named as
    `raw_columns` names them; its outputs are named by `outputs`.

    Args:
        trained: the trained Keras model.
        config, state: the preprocessing settings and their fitted state.
        inputs: the names of the trained model's Inputs (the graph's Input nodes).
        outputs: the names of its outputs, in order (the graph's Output nodes).
    """
    import keras

    raw, features = raw_model_inputs(config, state)
    y = trained(arranged(features, inputs))
    if isinstance(y, dict):
        named: Any = {name: keras.layers.Identity(name=name)(y[name]) for name in outputs}
    else:
        named = keras.layers.Identity(name=outputs[0])(y)
    return keras.Model(inputs=raw, outputs=named, name=re.sub(r"\W+", "_", trained.name))
