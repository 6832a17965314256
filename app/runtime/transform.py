"""Transforming: the model inputs and targets of some rows, in NumPy, with the fitted state.

The one transformation used at training, testing and export time (app.keras.pipeline applies
the same in tf.data, and app.runtime.layers as Keras layers). Per feature:
  - numeric: standardize ((x - mean) / std), minmax ((x - min) / (max - min)) or none. A missing
    value becomes the train mean before scaling. A constant column has std (and range) 1, so
    that it maps to 0 rather than to a division by zero.
  - categorical: onehot or integer. Index 0 is reserved for a category the train split never
    had (and for a missing value): integer ids are 1..k for the k train categories, 0 for any
    other; one-hot vectors have k + 1 entries, the first one for "unseen". Keeping a slot for
    unseen categories (rather than all zeros) is what Keras' StringLookup does, so the exported
    model computes the same vector.
  - date: the parts of `date_parts` (app.runtime.dates): the year scaled over the train years,
    the month, day of week and day of year as (sin, cos). A missing date becomes the train
    mean day.
  - image: resized to (height, width) (bilinear), 1 channel if grayscale else 3, scaled to
    [0, 1] if normalize; flips, rotations and zooms happen in training pipelines only.
  - text: Keras' TextVectorization defaults: ASCII lower case, punctuation stripped, split on
    whitespace; ids 0 (padding) and 1 (unknown word), then the train words by frequency; cut or
    padded to sequence_length.
  - passthrough: a number used as it is.
With a window (forecasting), every input is a run of `size` consecutive rows of the features
and its target the `horizon` values of `window.column` that follow (`window_starts`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .columns import (
    category_key,
    check_images,
    class_name,
    image_paths,
    masks,
    numbers,
    texts,
    tokens,
)
from .config import (
    PADDING,
    TABULAR_KINDS,
    UNKNOWN_WORD,
    UNSEEN,
    ColumnState,
    FeatureSpec,
    FittedState,
    PreprocessConfig,
    check_config,
    column_state,
    input_names,
)
from .dates import date_features, date_width, day_numbers
from .errors import DataError
from .images import decode_images, resize_image_array
from .rows import Part, Rows, parts


def transform(
    config: PreprocessConfig,
    state: FittedState,
    source: Rows,
    index: Sequence[int],
    decode: bool = True,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The model inputs and targets of the rows `index`, in that order (a sampled table's rows
    come in file order).

    Args:
        decode: False gives image and mask files as arrays of paths instead of pixels, for
            pipelines that decode them as they go.

    Returns:
        (inputs by name: "features" float32 (n, width) or with a window (n, size, width);
        "image" float32 (n, height, width, channels); "text" int64 (n, sequence_length)),
        targets: int32 class ids (n,) for classes, float32 (n,) for values, float32
        (n, horizon) with a window, int32 class ids (n, height, width) for masks, or None.
        With a window, n is the number of windows.
    """
    if config.window is not None:
        features, series, positions = transform_series(config, state, source, index)
        return windows(config, features, series, positions)
    found = [
        (inputs, targets)
        for inputs, targets, _ in iter_transform(config, state, source, index, decode)
    ]
    inputs = {name: np.concatenate([p[0][name] for p in found]) for name in found[0][0]}
    targets = None if found[0][1] is None else np.concatenate([p[1] for p in found])
    return inputs, targets


def iter_transform(
    config: PreprocessConfig,
    state: FittedState,
    source: Rows,
    index: Sequence[int],
    decode: bool = True,
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray]]:
    """`transform` part by part (chunk by chunk for a sampled table, which is streamed from
    disk), without windowing: (inputs, targets, the parts' row numbers)."""
    check_config(config)
    if len(index) == 0:
        raise ValueError("Received an empty `index`; there are no rows to transform")
    for part in parts(source, index):
        inputs, targets = _transform_rows(config, state, source, part, decode)
        yield inputs, targets, part.positions


def transform_series(
    config: PreprocessConfig, state: FittedState, source: Rows, index: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a window: the features per row (n, width), the forecast column's values (n,) and the
    rows' numbers (n,), from which windows are cut (see `window_starts`)."""
    found = list(iter_transform(config, state, source, index))
    return (
        np.concatenate([p[0]["features"] for p in found]),
        np.concatenate([p[1] for p in found]),
        np.concatenate([p[2] for p in found]),
    )


def _transform_rows(
    config: PreprocessConfig, state: FittedState, source: Rows, part: Part, decode: bool
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    from_names = input_names(config)
    inputs: dict[str, np.ndarray] = {}
    tabular = [
        _tabular(part, spec, column_state(state, spec))
        for spec in config.features
        if spec.kind in TABULAR_KINDS
    ]
    if tabular:
        inputs["features"] = np.concatenate(tabular, axis=1)
    for spec in config.features:
        if spec.kind == "image":
            inputs[from_names[spec.column]] = _images(part, spec, source.root, decode)
        elif spec.kind == "text":
            vocabulary = column_state(state, spec).vocabulary or []
            inputs[from_names[spec.column]] = _sequences(texts(part, spec.column), spec, vocabulary)
    if config.window is not None:
        series = numbers(part, FeatureSpec(column=config.window.column, kind="numeric"))
        return inputs, series[:, 0].astype(np.float32)
    return inputs, _targets(config, state, source.root, part, decode)


def _tabular(part: Part, spec: FeatureSpec, column: ColumnState) -> np.ndarray:
    """A tabular feature as float32 columns (n, width)."""
    if spec.kind == "categorical":
        ids = _category_ids(part.values(spec.column), column.categories or [])
        if spec.resolved_method == "integer":
            return ids.astype(np.float32)[:, None]
        return np.eye(len(column.categories or []) + 1, dtype=np.float32)[ids]
    if spec.kind == "date":
        days = day_numbers(part.values(spec.column))
        days = np.where(np.isnan(days), round(float(column.mean)), days)
        return date_features(days, spec.date_parts, column.min, column.max).astype(np.float32)
    values = numbers(part, spec)
    values = np.where(np.isnan(values), np.asarray(column.mean), values).astype(np.float32)
    offset, scale = affine(spec, column)
    return (values - offset.astype(np.float32)) / scale.astype(np.float32)


def _category_ids(values: pd.Series | np.ndarray, categories: list) -> np.ndarray:
    """1..k for the train categories, UNSEEN (0) for anything else, as int64 (n,)."""
    as_text = bool(categories) and isinstance(categories[0], str)
    lookup = {category: i + 1 for i, category in enumerate(categories)}
    items = pd.Series(values.tolist() if isinstance(values, np.ndarray) else values)
    ids = {}
    for value in pd.unique(items):
        key = category_key(value)
        if as_text and isinstance(key, int):
            key = str(key)
        ids[value] = lookup.get(key, UNSEEN)
    # NaN is not equal to itself, so missing values fall through map() to fillna.
    return items.map(ids).fillna(UNSEEN).to_numpy(dtype=np.int64)


def _sequences(documents: list[str], spec: FeatureSpec, vocabulary: list[str]) -> np.ndarray:
    ids = {word: i + 2 for i, word in enumerate(vocabulary)}
    out = np.full((len(documents), spec.sequence_length), PADDING, dtype=np.int64)
    for row, text in enumerate(documents):
        words = tokens(text)[: spec.sequence_length]
        out[row, : len(words)] = [ids.get(word, UNKNOWN_WORD) for word in words]
    return out


def _images(part: Part, spec: FeatureSpec, root: Path, decode: bool) -> np.ndarray:
    values = part.values(spec.column)
    if isinstance(values, np.ndarray):
        check_images(part, spec, root)
        return resize_image_array(values, spec)
    paths = image_paths(part, spec.column, root)
    return decode_images(paths, spec) if decode else np.asarray(paths, dtype=str)


def _targets(
    config: PreprocessConfig, state: FittedState, root: Path, part: Part, decode: bool
) -> np.ndarray | None:
    if config.target_kind == "none" or config.target is None:
        return None
    if config.target_kind == "values":
        return numbers(part, FeatureSpec(column=config.target, kind="numeric"))[:, 0].astype(
            np.float32
        )
    if config.target_kind == "mask":
        values = part.values(config.target)
        if not decode and not isinstance(values, np.ndarray):
            return np.asarray(image_paths(part, config.target, root), dtype=str)
        return mask_ids(masks(config, part, root), state.mask_values or [])
    ids = {name: i for i, name in enumerate(state.classes or [])}
    values = part.values(config.target)
    items = pd.Series(
        values.reshape(len(values), -1)[:, 0]
        if isinstance(values, np.ndarray) and values.ndim > 1
        else values
    )
    # Name each distinct label once, not every row.
    codes = items.map({value: ids.get(class_name(value), -1) for value in pd.unique(items)})
    codes = codes.fillna(-1).to_numpy(dtype=np.int64)
    if (codes < 0).any():
        position = int(np.argmax(codes < 0))
        shown = ", ".join((state.classes or [])[:10])
        raise DataError(
            f"{part.row(position)}, column '{config.target}': class {items.iloc[position]!r} is "
            f"not one of the train split's classes ({shown}{', ...' if len(ids) > 10 else ''})"
        )
    return codes.astype(np.int32)


def mask_ids(masks: np.ndarray, mask_values: list[int]) -> np.ndarray:
    """Mask pixel values -> class ids (their place in mask_values); values fitting never saw
    become 0, the first class (usually the background)."""
    values = np.asarray(mask_values, dtype=np.int64)
    if not len(values):
        return np.zeros(masks.shape, dtype=np.int32)
    places = np.clip(np.searchsorted(values, masks), 0, len(values) - 1)
    return np.where(values[places] == masks, places, 0).astype(np.int32)


def windows(
    config: PreprocessConfig, features: np.ndarray, series: np.ndarray, positions: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Windows of `size` rows (n, size, width) and the `horizon` values after each (n, horizon),
    wherever they fit inside a run of consecutive rows: from the features per row (n, width),
    the forecast column's values (n,) and the rows' numbers (n,), as `transform_series` gives
    them."""
    window = config.window
    assert window is not None
    starts = window_starts(config, positions)
    inputs = features[starts[:, None] + np.arange(window.size)]
    targets = series[starts[:, None] + window.size + np.arange(window.horizon)]
    return {"features": inputs}, targets


def window_starts(config: PreprocessConfig, index: Sequence[int]) -> np.ndarray:
    """The positions (in `index`) where a whole window and its horizon fit inside a run of
    consecutive rows. A random split leaves few such runs: forecasting wants the splits made
    with `make_splits(..., shuffle=False)`."""
    window = config.window
    assert window is not None
    positions = np.asarray(index, dtype=np.int64)
    span = window.size + window.horizon
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    starts = []
    for run in np.split(np.arange(len(positions)), breaks):
        if len(run) >= span:
            starts.append(run[: len(run) - span + 1])
    if not starts:
        longest = max((len(run) for run in np.split(positions, breaks)), default=0)
        raise DataError(
            f"Window on '{window.column}': received size={window.size} and "
            f"horizon={window.horizon}, which need {span} consecutive rows, but the longest run "
            f"of consecutive rows given is {longest}; use a smaller window, or splits made "
            "with shuffle=False"
        )
    return np.concatenate(starts)


# The model's side


def feature_width(spec: FeatureSpec, column: ColumnState) -> int:
    """How many entries of the "features" vector a tabular feature takes."""
    if spec.kind == "categorical":
        return len(column.categories or []) + 1 if spec.resolved_method == "onehot" else 1
    if spec.kind == "date":
        return date_width(spec.date_parts)
    return int(np.prod(column.shape)) if column.shape else 1


def input_spec(config: PreprocessConfig, state: FittedState) -> dict[str, tuple[list[int], str]]:
    """Model input name -> (shape without the batch axis, dtype), as `transform` gives them."""
    check_config(config)
    spec_of: dict[str, tuple[list[int], str]] = {}
    width = sum(
        feature_width(spec, column_state(state, spec))
        for spec in config.features
        if spec.kind in TABULAR_KINDS
    )
    if width:
        shape = [config.window.size, width] if config.window is not None else [width]
        spec_of["features"] = (shape, "float32")
    names = input_names(config)
    for spec in config.features:
        if spec.kind == "image":
            spec_of[names[spec.column]] = ([spec.height, spec.width, spec.channels], "float32")
        elif spec.kind == "text":
            spec_of[names[spec.column]] = ([spec.sequence_length], "int64")
    return spec_of


def affine(spec: FeatureSpec, column: ColumnState) -> tuple[np.ndarray, np.ndarray]:
    """(offset, scale) of a number feature: it becomes (x - offset) / scale, in float32.
    Per element for an npz array; (0, 1) for "none" and passthrough."""
    method = spec.resolved_method if spec.kind == "numeric" else "none"
    if method == "standardize":
        return np.asarray(column.mean, dtype=np.float64), np.asarray(column.std, dtype=np.float64)
    if method == "minmax":
        low, high = np.asarray(column.min, dtype=np.float64), np.asarray(column.max)
        return low, np.where(high > low, high - low, 1.0)
    zero = np.zeros_like(np.asarray(column.mean, dtype=np.float64))
    return zero, np.ones_like(zero)
