"""The type of a table column, guessed from its values and its name: numeric, categorical,
binary, date, identifier, text, or a path to an image or a mask (COLUMN_TYPES). The profile
(app.data.profile) asks for it; the user can always say otherwise (`--type COLUMN=TYPE`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from app.data.sources import looks_like_image_paths
from app.runtime.dates import day_numbers

COLUMN_TYPES = (
    "numeric",
    "categorical",
    "binary",
    "date",
    "identifier",
    "text",
    "image_path",
    "mask_path",
)
TARGET_NAMES = ("label", "labels", "target", "class", "y")
TIME_NAMES = frozenset(
    {"t", "time", "date", "datetime", "timestamp", "ds", "step", "hour", "day", "week", "month"}
)
# A date as written: year first (2007-11-11, 2012/01/01) or last (11.11.2007, 1/31/12).
DATE_PATTERN = r"\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})\b.*"
# Identifiers: words in a column's name that make it one when it is half unique or more, and
# the share of distinct values that makes a short text column one whatever its name.
ID_WORDS = frozenset({"id", "ids", "uuid", "guid", "key", "number", "no", "nr", "num", "name"})
ID_NAMED_SHARE = 0.3
ID_SHARE = 0.9
ID_MIN_ROWS = 20
ID_MAX_WORDS = 4  # a column of longer texts is text, however unique


def infer_type(values: pd.Series, name: str) -> str:
    """The likeliest of COLUMN_TYPES for a column's values."""
    present = values.dropna()
    unique = int(present.nunique())
    if pd.api.types.is_bool_dtype(values):
        return "binary"
    if pd.api.types.is_numeric_dtype(values):
        if unique == 2:
            return "binary"
        if label_like(name) and unique <= 20 and bool((present % 1 == 0).all()):
            return "categorical"
        if identifier_like(present, unique, name):
            return "identifier"
        return "numeric"
    if looks_like_image_paths(values):
        return "mask_path" if "mask" in str(name).lower() else "image_path"
    if pd.api.types.is_datetime64_any_dtype(values) or dates_like(present):
        return "date"
    if unique == 2:
        return "binary"
    if identifier_like(present, unique, name):
        return "identifier"
    if unique <= 50 and (label_like(name) or unique < 0.5 * len(present)):
        return "categorical"
    words = present.astype(str).str.split().str.len()
    if unique > 50 or (len(words) and words.mean() >= 3):
        return "text"
    return "categorical"


def dates_like(present: pd.Series) -> bool:
    """Whether a text column's first values are all dates as written (2007-11-11, 2012/01/01)."""
    sample = present.astype(str).iloc[:50]
    if sample.empty or not sample.str.fullmatch(DATE_PATTERN).all():
        return False
    return bool(not np.isnan(day_numbers(sample)).any())


def identifier_like(present: pd.Series, unique: int, name: object) -> bool:
    """Unique or nearly unique per row: an id, a sample number, a name. Numbers are
    identifiers only when whole and named so (or counting 1, 2, 3... row by row); text when
    named so and half unique, or short and nearly all unique."""
    rows = len(present)
    if rows < ID_MIN_ROWS or str(name).lower() in TIME_NAMES:
        return False
    share = unique / rows
    words_of_name = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", str(name))
    named = bool(ID_WORDS & {word.lower() for word in words_of_name})
    if pd.api.types.is_numeric_dtype(present):
        if not bool((present % 1 == 0).all()):
            return False
        counting = unique == rows and bool((present.diff().iloc[1:] == 1).all())
        return counting or (named and share >= ID_NAMED_SHARE)
    words = present.astype(str).str.split().str.len().mean()
    if words >= ID_MAX_WORDS:
        return False
    return share >= ID_SHARE or (named and share >= ID_NAMED_SHARE)


def label_like(name: object) -> bool:
    lowered = str(name).lower()
    return lowered in {*TARGET_NAMES, "classes", "category"} or lowered.endswith(
        ("_label", "_class", "_target", "_category")
    )
