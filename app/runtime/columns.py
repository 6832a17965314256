"""A feature's values read from some rows: numbers, texts and their words, category keys and
class names, image paths and masks. Fitting and transforming read the data through these, so
that both see the same values.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import FeatureSpec, PreprocessConfig, numeric_verb
from .errors import DataError
from .images import decode_masks, resize_masks
from .rows import Part, resolve_inside
from .tables import as_numbers

# keras.layers.TextVectorization's standardization, reproduced exactly: tf.strings.lower only
# lowers ASCII letters, and tf.strings.split splits on ASCII whitespace only.
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_WHITESPACE = re.compile(r"[ \t\n\r\x0b\x0c]+")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


# Values


def class_name(value: Any) -> str | None:
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


def class_order(name: str) -> tuple[int, float, str]:
    """Numbers in numeric order ('2' before '10'), then words alphabetically (as the profile)."""
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def category_key(value: Any) -> int | str | None:
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


# A feature's values


def unique_values(values: pd.Series | np.ndarray) -> list:
    """The distinct values of a column, or of an array's first element per sample."""
    if isinstance(values, np.ndarray):
        return np.unique(
            values.reshape(len(values), -1)[:, 0] if values.ndim > 1 else values
        ).tolist()
    return pd.unique(values).tolist()


def numbers(part: Part, spec: FeatureSpec) -> np.ndarray:
    """The feature as a float64 matrix, one row per sample; text where numbers belong is an
    error naming the row."""
    values = part.values(spec.column)
    if isinstance(values, np.ndarray):
        if values.dtype == bool:
            values = values.astype(np.float64)
        if not np.issubdtype(values.dtype, np.number):
            raise DataError(
                f"{part.where}, array '{spec.column}': holds {values.dtype} values; cannot "
                f"{numeric_verb(spec)}"
            )
        return values.reshape(len(values), -1).astype(np.float64)
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64).reshape(-1, 1)
    if not pd.api.types.is_numeric_dtype(values):
        parsed, position = as_numbers(values)
        if position is not None:
            raise DataError(
                f"{part.row(position)}, column '{spec.column}': cannot {numeric_verb(spec)}, "
                f"it holds text ({values.iloc[position]!r}); set its kind to 'categorical' or "
                "'text'"
            )
        values = parsed
    return values.to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, 1)


def texts(part: Part, column: str) -> list[str]:
    """A column's values as texts, "" for a missing one."""
    values = part.values(column)
    items = values.tolist() if isinstance(values, np.ndarray) else values.tolist()
    return ["" if category_key(v) is None else str(v) for v in items]


def tokens(text: str) -> list[str]:
    """The words of a text, as keras.layers.TextVectorization's defaults split it."""
    cleaned = _PUNCTUATION.sub("", text.translate(_ASCII_LOWER))
    return [word for word in _WHITESPACE.split(cleaned) if word]


# Images and masks


def check_images(part: Part, spec: FeatureSpec, root: Path) -> None:
    """Refuse arrays that are not images, and paths that are not inside `root`."""
    values = part.values(spec.column)
    if isinstance(values, np.ndarray):
        if values.ndim not in (3, 4) or (values.ndim == 4 and values.shape[-1] not in (1, 3, 4)):
            raise DataError(
                f"{part.where}, array '{spec.column}': expected images of shape (height, width) "
                f"or (height, width, channels); found {values.shape[1:]} per sample"
            )
        return
    image_paths(part, spec.column, root)


def image_paths(part: Part, column: str, root: Path) -> list[str]:
    """Absolute paths of a column's images, relative to `root` in the data. LayerFlow's
    read_source has checked them (resolving links); here a path is only joined and normalized,
    which is much faster for many files, and one that leaves `root` goes to resolve_inside for
    its error."""
    folder = os.path.normpath(os.path.abspath(root))
    paths = []
    for position, value in enumerate(part.values(column).tolist()):
        if not isinstance(value, str) or not value:
            where = f"{part.row(position)}, column '{column}'"
            raise DataError(f"{where}: expected a path to an image, found {value!r}")
        path = os.path.normpath(os.path.join(folder, value.replace("\\", "/")))
        if not path.startswith(folder + os.sep) or os.path.isabs(value):
            where = f"{part.row(position)}, column '{column}'"
            path = str(resolve_inside(root, value, where))
        paths.append(path)
    return paths


def masks(config: PreprocessConfig, part: Part, root: Path) -> np.ndarray:
    """The target masks of some rows at the image feature's size, as pixel values (n, h, w)."""
    image = next(spec for spec in config.features if spec.kind == "image")
    values = part.values(config.target)
    if isinstance(values, np.ndarray):
        return resize_masks(values, image.height, image.width)
    return decode_masks(image_paths(part, config.target, root), image.height, image.width)
