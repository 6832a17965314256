"""Preprocessing: its settings, its state fitted on the train split, and the one transformation
used at training, testing and export time.

The settings (`PreprocessConfig`) live in the project beside the graph. The fitted state
(`FittedState`: means, deviations, ranges, category lists, vocabularies, classes) is computed on
the train rows only and saved, as JSON, with the dataset version. `transform` applies both in
NumPy; `app.keras.pipeline.make_dataset` applies the same in tf.data; `keras_preprocessing` gives
Keras layers doing the same, so that an exported model can take raw rows.

Per feature:
  - numeric: standardize ((x - mean) / std), minmax ((x - min) / (max - min)) or none. A missing
    value becomes the train mean before scaling. A constant column has std (and range) 1, so
    that it maps to 0 rather than to a division by zero.
  - categorical: onehot or integer. Index 0 is reserved for a category the train split never
    had (and for a missing value): integer ids are 1..k for the k train categories, 0 for any
    other; one-hot vectors have k + 1 entries, the first one for "unseen". Keeping a slot for
    unseen categories (rather than all zeros) is what Keras' StringLookup does, so the exported
    model computes the same vector.
  - image: resized to (height, width) (bilinear), 1 channel if grayscale else 3, scaled to
    [0, 1] if normalize; flips, rotations and zooms happen in training pipelines only.
  - text: Keras' TextVectorization defaults: ASCII lower case, punctuation stripped, split on
    whitespace; ids 0 (padding) and 1 (unknown word), then the train words by frequency; cut or
    padded to sequence_length.
  - passthrough: a number used as it is.
With a window (forecasting), every input is a run of `size` consecutive rows of the features
and its target the `horizon` values of `window.column` that follow.

Nothing here imports TensorFlow at import time: the Streamlit server imports this module.
"""

from __future__ import annotations

import math
import os
import re
import string
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from app.data.sources import DataError, Source, as_numbers, iter_table_chunks, resolve_inside

if TYPE_CHECKING:
    from app.data.profile import DatasetProfile

FeatureKind = Literal["numeric", "categorical", "image", "text", "passthrough"]
TargetKind = Literal["classes", "values", "mask", "none"]
METHODS: dict[str, tuple[str | None, ...]] = {
    "numeric": ("standardize", "minmax", "none"),
    "categorical": ("onehot", "integer"),
    "image": (None,),
    "text": (None,),
    "passthrough": (None,),
}
TABULAR_KINDS = ("numeric", "categorical", "passthrough")

UNSEEN = 0  # the id (and one-hot slot) of a category the train split did not have
PADDING, UNKNOWN_WORD = 0, 1  # TextVectorization's reserved ids
DEFAULT_VOCAB_SIZE = 10_000
DEFAULT_SEQUENCE_LENGTH = 100
DEFAULT_WINDOW, DEFAULT_HORIZON = 24, 1
ONEHOT_MAX_CATEGORIES = 20  # default_config: more categories than this get integer ids

# keras.layers.TextVectorization's standardization, reproduced exactly: tf.strings.lower only
# lowers ASCII letters, and tf.strings.split splits on ASCII whitespace only.
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_WHITESPACE = re.compile(r"[ \t\n\r\x0b\x0c]+")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureSpec(_Settings):
    """How one column (npz: one array) becomes part of the model's inputs."""

    column: str
    kind: FeatureKind
    method: str | None = Field(
        default=None,
        description="numeric: standardize (default), minmax or none; "
        "categorical: onehot (default) or integer",
    )
    # image
    height: int | None = None
    width: int | None = None
    grayscale: bool = False
    normalize: bool = Field(default=True, description="scale pixel values to [0, 1]")
    flip: bool = Field(default=False, description="random horizontal flips in training")
    rotation: float = Field(
        default=0.0, description="random rotations up to this fraction of a turn in training"
    )
    zoom: float = Field(default=0.0, description="random zooms up to this fraction in training")
    # text
    vocab_size: int = Field(
        default=DEFAULT_VOCAB_SIZE, description="ids in all, two of them for padding and unknown"
    )
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH

    @property
    def resolved_method(self) -> str | None:
        if self.method is None:
            return {"numeric": "standardize", "categorical": "onehot"}.get(self.kind)
        return self.method

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    @property
    def augments(self) -> bool:
        return self.kind == "image" and (self.flip or self.rotation > 0 or self.zoom > 0)


class WindowSpec(_Settings):
    """Forecasting: inputs are `size` consecutive rows, the target the next `horizon` values of
    `column`."""

    size: int = DEFAULT_WINDOW
    horizon: int = DEFAULT_HORIZON
    column: str


class PreprocessConfig(_Settings):
    features: list[FeatureSpec]
    target: str | None = None
    target_kind: TargetKind = "none"
    window: WindowSpec | None = None


class ColumnState(_Settings):
    """What fitting learned about one feature. Numbers are per element for an npz array."""

    mean: float | list[float] | None = None
    std: float | list[float] | None = None
    min: float | list[float] | None = None
    max: float | list[float] | None = None
    shape: list[int] | None = None  # an npz array's shape per sample
    categories: list[int] | list[str] | None = None
    vocabulary: list[str] | None = None


class FittedState(_Settings):
    rows: int  # train rows it was fitted on
    columns: dict[str, ColumnState]
    classes: list[str] | None = None  # class names in id order (as the profile names them)
    mask_values: list[int] | None = None  # mask pixel values in class-id order


# Settings


def check_config(config: PreprocessConfig, profile: DatasetProfile | None = None) -> None:
    """Raise ValueError, naming the column and setting, for settings that cannot work.

    With a profile, also check each feature's kind against the column's type (numbers cannot
    be standardized if the column holds text, and so on).
    """
    seen: set[str] = set()
    for spec in config.features:
        where = f"Column '{spec.column}'"
        if spec.column in seen:
            raise ValueError(f"{where} appears twice in the preprocessing features")
        seen.add(spec.column)
        if spec.method not in (None, *METHODS[spec.kind]):
            allowed = [m for m in METHODS[spec.kind] if m]
            expected = f"one of {', '.join(allowed)}" if allowed else "None"
            raise ValueError(
                f"{where} ({spec.kind}): received an invalid value for `method`, expected "
                f"{expected}. Received: method={spec.method!r}"
            )
        if spec.kind == "image":
            _check_image_settings(spec, where)
        if spec.kind == "text":
            if spec.vocab_size < 3:
                raise ValueError(
                    f"{where} (text): received an invalid value for `vocab_size`, expected an "
                    "integer >= 3 (ids 0 and 1 are padding and unknown word). "
                    f"Received: vocab_size={spec.vocab_size}"
                )
            if spec.sequence_length < 1:
                raise ValueError(
                    f"{where} (text): received an invalid value for `sequence_length`, expected "
                    f"a positive integer. Received: sequence_length={spec.sequence_length}"
                )
        if profile is not None:
            _check_against_profile(spec, profile)
    if not config.features:
        raise ValueError("The preprocessing has no features; the model needs at least one input")
    _check_target(config)


def _check_image_settings(spec: FeatureSpec, where: str) -> None:
    for name in ("height", "width"):
        value = getattr(spec, name)
        if value is None or value < 1:
            raise ValueError(
                f"{where} (image): received an invalid value for `{name}`, expected a positive "
                f"integer. Received: {name}={value}"
            )
    for name in ("rotation", "zoom"):
        value = getattr(spec, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(
                f"{where} (image): received an invalid value for `{name}`, expected a fraction "
                f"in [0, 1) (0 turns it off). Received: {name}={value}"
            )


def _check_against_profile(spec: FeatureSpec, profile: DatasetProfile) -> None:
    try:
        column = profile.column(spec.column)
    except KeyError:
        known = ", ".join(c.name for c in profile.columns)
        raise ValueError(f"Column '{spec.column}' is not in the data; columns: {known}") from None
    wrong = {
        "numeric": {"text", "image_path", "mask_path"},
        "passthrough": {"text", "image_path", "mask_path"},
        "categorical": {"image_path", "mask_path"},
        "text": {"image_path", "mask_path"},
        "image": {"numeric", "categorical", "binary", "text", "mask_path"},
    }[spec.kind]
    if profile.kind == "npz" and spec.kind in ("image", "numeric", "passthrough"):
        wrong = set()  # an npz array of pixels is profiled as numeric
    if column.type in wrong:
        verb = _numeric_verb(spec)
        raise ValueError(
            f"Column '{spec.column}' holds {column.type.replace('_', ' ')} values; cannot "
            f"{verb if spec.kind in ('numeric', 'passthrough') else 'use it as ' + spec.kind}"
        )


def _check_target(config: PreprocessConfig) -> None:
    columns = [spec.column for spec in config.features]
    window = config.window
    if window is not None:
        for name in ("size", "horizon"):
            value = getattr(window, name)
            if value < 1:
                raise ValueError(
                    f"Window on '{window.column}': received an invalid value for `{name}`, "
                    f"expected a positive integer. Received: {name}={value}"
                )
        if config.target not in (None, window.column):
            raise ValueError(
                f"Window on '{window.column}': the target is the column the window forecasts; "
                f"received target={config.target!r}"
            )
        if config.target_kind not in ("values", "none"):
            raise ValueError(
                f"Window on '{window.column}': received an invalid value for `target_kind`, "
                f"expected 'values'. Received: target_kind={config.target_kind!r}"
            )
        for spec in config.features:
            if spec.kind not in ("numeric", "passthrough"):
                raise ValueError(
                    f"Column '{spec.column}' ({spec.kind}): a window takes numeric features "
                    "only; set its kind to 'numeric' or leave it out"
                )
        return
    if config.target_kind == "none":
        return
    if config.target is None:
        raise ValueError(
            f"Received target_kind={config.target_kind!r} but no `target`; name the column "
            "to predict"
        )
    if config.target in columns:
        raise ValueError(f"Column '{config.target}' is the target, so it cannot also be a feature")
    if config.target_kind == "mask":
        images = [spec for spec in config.features if spec.kind == "image"]
        if len(images) != 1:
            raise ValueError(
                f"Target '{config.target}' (mask): segmentation needs exactly one image "
                f"feature for the masks' size; found {len(images)}"
            )


def _numeric_verb(spec: FeatureSpec) -> str:
    return {"standardize": "standardize it", "minmax": "scale it to [0, 1]"}.get(
        spec.resolved_method or "", "use it as a number"
    )


def default_config(profile: DatasetProfile) -> PreprocessConfig:
    """Sensible settings for a profiled data set: numbers standardized, few categories one-hot
    and many as integer ids, images at their commonest size, text with a vocabulary and length
    fitted to it, and for forecasting a window of 24 steps predicting the next one."""
    target = profile.target
    features = []
    for column in profile.columns:
        if column.name == target or column.type == "mask_path":
            continue
        spec = _default_feature(profile, column)
        if spec is not None:
            features.append(spec)
    if profile.task == "forecasting" and target is not None:
        series = [f for f in features if f.kind == "numeric"]
        if not any(f.column == target for f in series):
            series.append(FeatureSpec(column=target, kind="numeric"))
        window = WindowSpec(size=DEFAULT_WINDOW, horizon=DEFAULT_HORIZON, column=target)
        return PreprocessConfig(features=series, target=target, target_kind="values", window=window)
    kind: TargetKind = "none"
    if profile.task in ("binary", "multiclass"):
        kind = "classes"
    elif profile.task == "regression":
        kind = "values"
    elif profile.task == "segmentation":
        kind = "mask"
    return PreprocessConfig(features=features, target=target, target_kind=kind)


def _default_feature(profile: DatasetProfile, column: Any) -> FeatureSpec | None:
    stats = column.stats or {}
    if stats.get("time_like"):
        return None  # a clock is not a feature: it only tells the model where it is
    shape = stats.get("shape") or []
    if profile.kind == "npz" and column.type == "numeric" and len(shape) >= 2:
        channels = shape[2] if len(shape) == 3 else 1
        if len(shape) == 2 or channels in (1, 3, 4):
            return FeatureSpec(
                column=column.name,
                kind="image",
                height=shape[0],
                width=shape[1],
                grayscale=channels == 1,
                normalize=str(stats.get("dtype", "")).startswith("uint8"),
            )
    if column.type == "numeric":
        return FeatureSpec(column=column.name, kind="numeric", method="standardize")
    if column.type == "binary":
        return FeatureSpec(column=column.name, kind="categorical", method="onehot")
    if column.type == "categorical":
        if profile.rows and column.unique >= profile.rows:
            return None  # one value per row: an identifier, nothing to learn from
        method = "onehot" if column.unique <= ONEHOT_MAX_CATEGORIES else "integer"
        return FeatureSpec(column=column.name, kind="categorical", method=method)
    if column.type == "text":
        words = int(stats.get("vocab_size") or DEFAULT_VOCAB_SIZE)
        mean_words = float(stats.get("mean_words") or DEFAULT_SEQUENCE_LENGTH / 2)
        # Room for twice the mean length, in steps of 8, at most the default.
        length = min(DEFAULT_SEQUENCE_LENGTH, max(8, 8 * math.ceil(2 * mean_words / 8)))
        return FeatureSpec(
            column=column.name,
            kind="text",
            vocab_size=min(DEFAULT_VOCAB_SIZE, words + 2),
            sequence_length=length,
        )
    if column.type == "image_path":
        sizes = stats.get("sizes") or [{"size": [64, 64, 3]}]
        height, width, channels = sizes[0]["size"]
        return FeatureSpec(
            column=column.name,
            kind="image",
            height=height,
            width=width,
            grayscale=channels == 1,
        )
    return None


# Reading rows


@dataclass
class _Rows:
    """Some rows of a source: their table columns, their npz arrays and their row numbers."""

    frame: pd.DataFrame
    arrays: dict[str, np.ndarray]
    positions: np.ndarray  # row numbers in the source, from 0
    where: str  # the file or folder, for messages
    known: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.positions)

    def values(self, column: str) -> pd.Series | np.ndarray:
        if column in self.arrays:
            return self.arrays[column]
        if column in self.frame.columns:
            return self.frame[column]
        raise DataError(
            f"{self.where}: column '{column}' of the preprocessing settings is not in the data; "
            f"columns: {', '.join(map(str, self.known))}"
        )

    def row(self, position: int) -> str:
        return f"{self.where}, row {int(self.positions[position]) + 1}"


def _rows_of(source: Source, index: Sequence[int], chunksize: int = 100_000) -> Iterator[_Rows]:
    """The rows `index` of a source, in that order; in several parts for a sampled table (which
    is streamed from disk, in file order)."""
    where = str(source.path or source.root)
    known = list(source.arrays or source.frame.columns)
    positions = np.asarray(index, dtype=np.int64).reshape(-1)
    if source.kind == "table" and source.sampled and source.path is not None:
        wanted = np.unique(positions)
        offset = 0
        for chunk in iter_table_chunks(source.path, chunksize):
            inside = wanted[(wanted >= offset) & (wanted < offset + len(chunk))]
            if len(inside):
                frame = chunk.iloc[inside - offset].reset_index(drop=True)
                yield _Rows(frame, {}, inside, where, known)
            offset += len(chunk)
        if len(wanted) and wanted[-1] >= offset:
            raise ValueError(_out_of_range(int(wanted[-1]), offset))
        return
    total = len(source.frame)
    if len(positions) and (positions.min() < 0 or positions.max() >= total):
        bad = positions[(positions < 0) | (positions >= total)][0]
        raise ValueError(_out_of_range(int(bad), total))
    frame = source.frame.iloc[positions].reset_index(drop=True)
    arrays = {name: array[positions] for name, array in (source.arrays or {}).items()}
    yield _Rows(frame, arrays, positions, where, known)


def _out_of_range(position: int, total: int) -> str:
    return (
        f"Received an invalid value for `index`: row {position} is out of range for a source "
        f"of {total} rows (rows count from 0)"
    )


def _class_name(value: Any) -> str | None:
    """A class label as the profile names it: 3 and 3.0 are both '3'; None when missing."""
    if (
        value is None
        or value is pd.NA
        or (isinstance(value, float | np.floating) and np.isnan(value))
    ):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return None if value == "" else str(value)


def _class_order(name: str) -> tuple[int, float, str]:
    """Numbers in numeric order ('2' before '10'), then words alphabetically (as the profile)."""
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def _category_key(value: Any) -> int | str | None:
    """A category as stored: whole numbers as ints, anything else as text, None if missing."""
    if (
        value is None
        or value is pd.NA
        or (isinstance(value, float | np.floating) and np.isnan(value))
    ):
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))  # as a CSV writes it: "True", "False"
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return int(value) if float(value).is_integer() else str(float(value))
    return None if value == "" else str(value)


# Fitting


class _Moments:
    """Count, mean, squared deviations, min and max per element, merged part by part (Chan et
    al.), missing values (NaN) left out."""

    def __init__(self) -> None:
        self.count: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:
        present = ~np.isnan(values)
        count = present.sum(axis=0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), 0.0)
        squares = np.nansum((values - mean) ** 2, axis=0)
        low = np.where(count > 0, np.nanmin(np.where(present, values, np.inf), axis=0), np.inf)
        high = np.where(count > 0, np.nanmax(np.where(present, values, -np.inf), axis=0), -np.inf)
        if self.count is None:
            self.count, self.mean, self.squares, self.low, self.high = (
                count,
                mean,
                squares,
                low,
                high,
            )
            return
        total = self.count + count
        delta = mean - self.mean
        safe = np.maximum(total, 1)
        self.squares = self.squares + squares + delta**2 * self.count * count / safe
        self.mean = self.mean + delta * count / safe
        self.count = total
        self.low = np.minimum(self.low, low)
        self.high = np.maximum(self.high, high)


def fit(config: PreprocessConfig, source: Source, train_index: Sequence[int]) -> FittedState:
    """Learn the preprocessing's state from the train rows only.

    Args:
        config: the preprocessing settings.
        source: the data, as `read_source` gives it (a sampled table is streamed whole).
        train_index: the train split's row numbers.
    """
    check_config(config)
    if len(train_index) == 0:
        raise ValueError("Received an empty `train_index`; fitting needs at least one train row")
    moments = {
        s.column: _Moments() for s in config.features if s.kind in ("numeric", "passthrough")
    }
    categories: dict[str, set] = {
        s.column: set() for s in config.features if s.kind == "categorical"
    }
    words: dict[str, Counter[str]] = {
        s.column: Counter() for s in config.features if s.kind == "text"
    }
    classes: set[str] = set()
    shapes: dict[str, list[int]] = {}
    mask_values: set[int] = set()
    rows = 0
    for part in _rows_of(source, train_index):
        rows += len(part)
        for spec in config.features:
            if spec.column in moments:
                matrix = _numbers(part, spec)
                moments[spec.column].add(matrix)
                values = part.values(spec.column)
                if isinstance(values, np.ndarray) and values.ndim > 1:
                    shapes[spec.column] = list(values.shape[1:])
            elif spec.kind == "categorical":
                categories[spec.column] |= {
                    _category_key(v) for v in _unique(part.values(spec.column))
                }
            elif spec.kind == "text":
                for text in _texts(part, spec.column):
                    words[spec.column].update(_tokens(text))
            elif spec.kind == "image":
                _check_image_values(part, spec, source)
        if config.target_kind == "classes":
            classes |= {_class_name(v) for v in _unique(part.values(config.target))}
        elif config.target_kind == "values" and config.window is None:
            _numbers(part, FeatureSpec(column=config.target, kind="numeric"))
        elif config.target_kind == "mask":
            mask_values |= set(np.unique(_masks(config, source, part)).tolist())
    if config.window is not None:
        _numbers_of(source, train_index, config.window.column)
    columns: dict[str, ColumnState] = {}
    for spec in config.features:
        if spec.column in moments:
            columns[spec.column] = _numeric_state(moments[spec.column], spec, shapes, part.where)
        elif spec.kind == "categorical":
            found = categories[spec.column] - {None}
            if not found:
                raise DataError(
                    f"{part.where}, column '{spec.column}': no values in the train rows"
                )
            columns[spec.column] = ColumnState(categories=_ordered_categories(found))
        elif spec.kind == "text":
            ranked = sorted(words[spec.column].items(), key=lambda item: (-item[1], item[0]))
            vocabulary = [word for word, _ in ranked[: spec.vocab_size - 2]]
            columns[spec.column] = ColumnState(vocabulary=vocabulary)
        else:
            columns[spec.column] = ColumnState()
    found_classes = (
        sorted(classes - {None}, key=_class_order) if config.target_kind == "classes" else None
    )
    if found_classes is not None and not found_classes:
        raise DataError(f"{part.where}, column '{config.target}': no classes in the train rows")
    return FittedState(
        rows=rows,
        columns=columns,
        classes=found_classes,
        mask_values=sorted(int(v) for v in mask_values) if config.target_kind == "mask" else None,
    )


def _numbers_of(source: Source, index: Sequence[int], column: str) -> None:
    for part in _rows_of(source, index):
        _numbers(part, FeatureSpec(column=column, kind="numeric"))


def _numeric_state(
    moments: _Moments, spec: FeatureSpec, shapes: dict[str, list[int]], where: str
) -> ColumnState:
    if moments.count is None or not (moments.count > 0).all():
        raise DataError(f"{where}, column '{spec.column}': no values in the train rows")
    std = np.sqrt(moments.squares / moments.count)
    # A constant feature gets scale 1, so it maps to 0 instead of dividing by zero.
    std = np.where(std > 0, std, 1.0)

    def plain(values: np.ndarray) -> float | list[float]:
        return float(values[0]) if spec.column not in shapes else [float(v) for v in values]

    return ColumnState(
        mean=plain(moments.mean),
        std=plain(std),
        min=plain(moments.low),
        max=plain(moments.high),
        shape=shapes.get(spec.column),
    )


def _ordered_categories(found: set) -> list[int] | list[str]:
    if all(isinstance(key, int) for key in found):
        return sorted(found)
    return sorted((str(key) for key in found), key=_class_order)


def _unique(values: pd.Series | np.ndarray) -> list:
    if isinstance(values, np.ndarray):
        return np.unique(
            values.reshape(len(values), -1)[:, 0] if values.ndim > 1 else values
        ).tolist()
    return pd.unique(values).tolist()


def _numbers(part: _Rows, spec: FeatureSpec) -> np.ndarray:
    """The feature as a float64 matrix, one row per sample; text where numbers belong is an
    error naming the row."""
    values = part.values(spec.column)
    if isinstance(values, np.ndarray):
        if values.dtype == bool:
            values = values.astype(np.float64)
        if not np.issubdtype(values.dtype, np.number):
            raise DataError(
                f"{part.where}, array '{spec.column}': holds {values.dtype} values; cannot "
                f"{_numeric_verb(spec)}"
            )
        return values.reshape(len(values), -1).astype(np.float64)
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64).reshape(-1, 1)
    if not pd.api.types.is_numeric_dtype(values):
        numbers, position = as_numbers(values)
        if position is not None:
            raise DataError(
                f"{part.row(position)}, column '{spec.column}': cannot {_numeric_verb(spec)}, "
                f"it holds text ({values.iloc[position]!r}); set its kind to 'categorical' or "
                "'text'"
            )
        values = numbers
    return values.to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, 1)


def _texts(part: _Rows, column: str) -> list[str]:
    values = part.values(column)
    items = values.tolist() if isinstance(values, np.ndarray) else values.tolist()
    return ["" if _category_key(v) is None else str(v) for v in items]


def _tokens(text: str) -> list[str]:
    cleaned = _PUNCTUATION.sub("", text.translate(_ASCII_LOWER))
    return [word for word in _WHITESPACE.split(cleaned) if word]


def _check_image_values(part: _Rows, spec: FeatureSpec, source: Source) -> None:
    values = part.values(spec.column)
    if isinstance(values, np.ndarray):
        if values.ndim not in (3, 4) or (values.ndim == 4 and values.shape[-1] not in (1, 3, 4)):
            raise DataError(
                f"{part.where}, array '{spec.column}': expected images of shape (height, width) "
                f"or (height, width, channels); found {values.shape[1:]} per sample"
            )
        return
    _image_paths(part, spec.column, source)


def _image_paths(part: _Rows, column: str, source: Source) -> list[str]:
    """Absolute paths of a column's images. read_source has checked them (resolving links);
    here a path is only joined and normalized, which is much faster for many files, and one
    that leaves the source's folder goes to resolve_inside for its error."""
    root = os.path.normpath(os.path.abspath(source.root))
    paths = []
    for position, value in enumerate(part.values(column).tolist()):
        if not isinstance(value, str) or not value:
            where = f"{part.row(position)}, column '{column}'"
            raise DataError(f"{where}: expected a path to an image, found {value!r}")
        path = os.path.normpath(os.path.join(root, value.replace("\\", "/")))
        if not path.startswith(root + os.sep) or os.path.isabs(value):
            where = f"{part.row(position)}, column '{column}'"
            path = str(resolve_inside(source.root, value, where))
        paths.append(path)
    return paths


def _masks(config: PreprocessConfig, source: Source, part: _Rows) -> np.ndarray:
    """The target masks of some rows at the image feature's size, as pixel values (n, h, w)."""
    from app.runtime.images import decode_masks, resize_masks

    image = next(spec for spec in config.features if spec.kind == "image")
    values = part.values(config.target)
    if isinstance(values, np.ndarray):
        return resize_masks(values, image.height, image.width)
    return decode_masks(_image_paths(part, config.target, source), image.height, image.width)


# Transforming


def input_names(config: PreprocessConfig) -> dict[str, str]:
    """Feature column -> the model input it feeds: "features" for the numbers and categories,
    "image" and "text" for the one image or text column (by column name when there are
    several)."""
    names = {}
    for kind in ("image", "text"):
        specs = [spec for spec in config.features if spec.kind == kind]
        for spec in specs:
            names[spec.column] = kind if len(specs) == 1 else _identifier(spec.column)
    for spec in config.features:
        if spec.kind in TABULAR_KINDS:
            names[spec.column] = "features"
    return names


def _identifier(column: str) -> str:
    return re.sub(r"\W+", "_", column).strip("_") or "input"


def transform(
    config: PreprocessConfig,
    state: FittedState,
    source: Source,
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
        return _windows(config, features, series, positions)
    parts = [
        (inputs, targets)
        for inputs, targets, _ in iter_transform(config, state, source, index, decode)
    ]
    inputs = {name: np.concatenate([p[0][name] for p in parts]) for name in parts[0][0]}
    targets = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    return inputs, targets


def iter_transform(
    config: PreprocessConfig,
    state: FittedState,
    source: Source,
    index: Sequence[int],
    decode: bool = True,
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray]]:
    """`transform` part by part (chunk by chunk for a sampled table, which is streamed from
    disk), without windowing: (inputs, targets, the parts' row numbers)."""
    check_config(config)
    if len(index) == 0:
        raise ValueError("Received an empty `index`; there are no rows to transform")
    for part in _rows_of(source, index):
        inputs, targets = _transform_rows(config, state, source, part, decode)
        yield inputs, targets, part.positions


def transform_series(
    config: PreprocessConfig, state: FittedState, source: Source, index: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a window: the features per row (n, width), the forecast column's values (n,) and the
    rows' numbers (n,), from which windows are cut (see `window_starts`)."""
    parts = list(iter_transform(config, state, source, index))
    return (
        np.concatenate([p[0]["features"] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _transform_rows(
    config: PreprocessConfig, state: FittedState, source: Source, part: _Rows, decode: bool
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    from_names = input_names(config)
    inputs: dict[str, np.ndarray] = {}
    tabular = [
        _tabular(part, spec, _state_of(state, spec))
        for spec in config.features
        if spec.kind in TABULAR_KINDS
    ]
    if tabular:
        inputs["features"] = np.concatenate(tabular, axis=1)
    for spec in config.features:
        if spec.kind == "image":
            inputs[from_names[spec.column]] = _images(part, spec, source, decode)
        elif spec.kind == "text":
            vocabulary = _state_of(state, spec).vocabulary or []
            inputs[from_names[spec.column]] = _sequences(
                _texts(part, spec.column), spec, vocabulary
            )
    if config.window is not None:
        series = _numbers(part, FeatureSpec(column=config.window.column, kind="numeric"))
        return inputs, series[:, 0].astype(np.float32)
    return inputs, _targets(config, state, source, part, decode)


def _state_of(state: FittedState, spec: FeatureSpec) -> ColumnState:
    if spec.column not in state.columns:
        raise ValueError(
            f"Column '{spec.column}' is in the preprocessing settings but not in the fitted "
            "state; fit again after changing the features"
        )
    return state.columns[spec.column]


def _tabular(part: _Rows, spec: FeatureSpec, column: ColumnState) -> np.ndarray:
    """A tabular feature as float32 columns (n, width)."""
    if spec.kind == "categorical":
        ids = _category_ids(part.values(spec.column), column.categories or [])
        if spec.resolved_method == "integer":
            return ids.astype(np.float32)[:, None]
        return np.eye(len(column.categories or []) + 1, dtype=np.float32)[ids]
    values = _numbers(part, spec)
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
        key = _category_key(value)
        if as_text and isinstance(key, int):
            key = str(key)
        ids[value] = lookup.get(key, UNSEEN)
    # NaN is not equal to itself, so missing values fall through map() to fillna.
    return items.map(ids).fillna(UNSEEN).to_numpy(dtype=np.int64)


def _sequences(texts: list[str], spec: FeatureSpec, vocabulary: list[str]) -> np.ndarray:
    ids = {word: i + 2 for i, word in enumerate(vocabulary)}
    out = np.full((len(texts), spec.sequence_length), PADDING, dtype=np.int64)
    for row, text in enumerate(texts):
        tokens = _tokens(text)[: spec.sequence_length]
        out[row, : len(tokens)] = [ids.get(token, UNKNOWN_WORD) for token in tokens]
    return out


def _images(part: _Rows, spec: FeatureSpec, source: Source, decode: bool) -> np.ndarray:
    from app.runtime.images import decode_images, resize_image_array

    values = part.values(spec.column)
    if isinstance(values, np.ndarray):
        _check_image_values(part, spec, source)
        return resize_image_array(values, spec)
    paths = _image_paths(part, spec.column, source)
    return decode_images(paths, spec) if decode else np.asarray(paths, dtype=str)


def _targets(
    config: PreprocessConfig, state: FittedState, source: Source, part: _Rows, decode: bool
) -> np.ndarray | None:
    if config.target_kind == "none" or config.target is None:
        return None
    if config.target_kind == "values":
        return _numbers(part, FeatureSpec(column=config.target, kind="numeric"))[:, 0].astype(
            np.float32
        )
    if config.target_kind == "mask":
        values = part.values(config.target)
        if not decode and not isinstance(values, np.ndarray):
            return np.asarray(_image_paths(part, config.target, source), dtype=str)
        return mask_ids(_masks(config, source, part), state.mask_values or [])
    ids = {name: i for i, name in enumerate(state.classes or [])}
    values = part.values(config.target)
    items = pd.Series(
        values.reshape(len(values), -1)[:, 0]
        if isinstance(values, np.ndarray) and values.ndim > 1
        else values
    )
    # Name each distinct label once, not every row.
    codes = items.map({value: ids.get(_class_name(value), -1) for value in pd.unique(items)})
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


def _windows(
    config: PreprocessConfig, features: np.ndarray, series: np.ndarray, positions: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Windows of `size` rows (n, size, width) and the `horizon` values after each (n, horizon),
    wherever they fit inside a run of consecutive rows."""
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
    return int(np.prod(column.shape)) if column.shape else 1


def input_spec(config: PreprocessConfig, state: FittedState) -> dict[str, tuple[list[int], str]]:
    """Model input name -> (shape without the batch axis, dtype), as `transform` gives them."""
    check_config(config)
    spec_of: dict[str, tuple[list[int], str]] = {}
    width = sum(
        feature_width(spec, _state_of(state, spec))
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


def keras_preprocessing(config: PreprocessConfig, state: FittedState) -> dict[str, list]:
    """Raw input name -> the Keras layers that turn it into what `transform` gives.

    Raw inputs are the data as read: one per tabular column (named after it, shape (1,):
    float32 numbers, string or int64 categories) whose outputs are concatenated, in the
    settings' order and cast to float32, into "features"; "image" (any height and width, already
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
            offset, scale = affine(spec, _state_of(state, spec))
            means.append(float(offset))
            variances.append(float(scale) ** 2)
        layers["features"] = [keras.layers.Normalization(axis=-1, mean=means, variance=variances)]
        return layers
    for spec in config.features:
        column = _state_of(state, spec)
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


def raw_input_spec(config: PreprocessConfig, state: FittedState) -> dict[str, tuple[list, str]]:
    """Raw input name -> (shape without the batch axis, None for any size; dtype), for the
    inputs `keras_preprocessing` takes."""
    check_config(config)
    if config.window is not None:
        return {"features": ([config.window.size, len(config.features)], "float32")}
    names = input_names(config)
    raw: dict[str, tuple[list, str]] = {}
    for spec in config.features:
        column = _state_of(state, spec)
        if spec.kind in ("numeric", "passthrough"):
            raw[spec.column] = (list(column.shape) if column.shape else [1], "float32")
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
        name: keras.Input(shape=tuple(shape), dtype=dtype, name=_identifier(name))
        for name, (shape, dtype) in raw_input_spec(config, state).items()
    }
    return keras.Model(inputs=raw, outputs=preprocessed(raw, config, state), name="preprocessing")


def preprocessed(raw: dict[str, Any], config: PreprocessConfig, state: FittedState) -> dict:
    """The model inputs by name, from raw input tensors by raw name, through the layers of
    `keras_preprocessing`; but whole-number categories are looked up by comparing with the
    train categories rather than by an IntegerLookup, whose int64 hash table has no TFLite
    built-in op and no ONNX conversion, so that every export format can carry them."""
    import keras

    layers = keras_preprocessing(config, state)
    names = input_names(config)
    methods = {spec.column: spec.resolved_method for spec in config.features}
    outputs, tabular = {}, []
    for name, tensor in raw.items():
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
