"""What a data set holds, as plain data for the UI: the type of each column (which the user may
override), statistics, missing values, class balance, a preview, and which column is the target
and what task that makes; rows without a target, which are left out of the splits; and notes
of what reading and typing decided (an encoding, renamed columns, identifiers left out).

Dates (2007-11-11, 2012/01/01) are typed `date`. A column unique or nearly unique per row (an
id, a sample number, a name) is typed `identifier`: nothing to learn from, so the default
preprocessing leaves it out, and says so; an override puts it back.

A sampled source (the first rows of a huge table) is profiled in two parts: the preview and the
statistics that need the values themselves (unique counts, text, images) come from the rows
read; the row count, missing values, numeric statistics and class counts come from one streamed
pass over the whole table.
"""

from __future__ import annotations

import math
import shlex
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from app.data.column_types import (
    COLUMN_TYPES,
    TARGET_NAMES,
    TIME_NAMES,
    infer_type,
)
from app.data.sources import (
    DataError,
    Source,
    check_image_column,
)
from app.jsonable import json_ready
from app.runtime.columns import class_order
from app.runtime.dates import EPOCH, day_numbers
from app.runtime.fit import Moments
from app.runtime.rows import resolve_inside
from app.runtime.tables import as_numbers, iter_table_chunks

TASKS = ("binary", "multiclass", "regression", "segmentation", "forecasting")

PREVIEW_ROWS = 10
TOP_CLASSES = 50
MAX_IMAGES = 10_000  # images whose size and mode are read for the statistics
MAX_MASKS = 200  # masks whose pixels are read for the classes they hold
# A categorical column's counts are kept during the streamed pass until it has this many distinct
# values; past that it is not really categorical, and the counts come from the rows read.
MAX_TRACKED_VALUES = 10_000


@dataclass
class ColumnProfile:
    """One column (or, for npz, one array).

    `type` is the one in use: the user's override, else `inferred`. `stats` holds, by type:
    numeric: mean, std (sample), min, max; categorical/binary: counts (the 50 largest classes)
    and others (rows in the rest); date: first, last (ISO dates); identifier: examples (the
    first three); text: mean_length (characters), mean_words, vocab_size (distinct lower-case
    words); image_path/mask_path: sizes ([h, w, channels] with counts), modes, examined, and
    for masks the pixel values seen. A time-like column has time_like.
    """

    name: str
    type: str
    inferred: str
    missing: int
    unique: int
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetProfile:
    """A data set's profile. `rows` counts every row, `left_out` those without a target (kept
    in the file and the preview, in no split); `notes` say what reading and typing decided,
    `warnings` what may need the user's attention; `encoding` is a CSV's or TSV's."""

    kind: str
    rows: int
    columns: list[ColumnProfile]
    target: str | None
    task: str | None
    classes: list[str] | None
    class_balance: dict[str, int] | None
    preview: list[dict[str, Any]]
    sampled: bool
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    left_out: int = 0
    encoding: str | None = None

    def column(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        known = ", ".join(column.name for column in self.columns)
        raise KeyError(f"No column '{name}' in the profile; columns: {known}")

    def to_dict(self) -> dict[str, Any]:
        return json_ready(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetProfile:
        """The profile to_dict wrote (as stored with a dataset)."""
        columns = [ColumnProfile(**column) for column in data["columns"]]
        return cls(**{**data, "columns": columns})


def profile(
    source: Source, target: str | None = None, overrides: dict[str, str] | None = None
) -> DatasetProfile:
    """Describe a source, with `target` (default: `default_target`) as the column to predict.

    Args:
        source: what `read_source` returned.
        target: the column (npz: array) to predict.
        overrides: column -> type chosen by the user, one of COLUMN_TYPES.
    """
    overrides = dict(overrides or {})
    if source.kind == "npz":
        return _profile_arrays(source, target, overrides)
    return _profile_frame(source, target, overrides)


def default_target(source: Source) -> str | None:
    """The column to predict unless the user says otherwise: one named label, target, class or
    y; the value column of a time series; else the last column."""
    frame = source.frame
    types = {column: infer_type(frame[column], column) for column in frame.columns}
    return _default_target(source, types)


def _default_target(source: Source, types: dict[str, str]) -> str | None:
    if source.kind == "image_folder":
        return "label"
    if source.kind == "segmentation":
        return "mask"
    names = list(source.arrays or {}) if source.kind == "npz" else list(source.frame.columns)
    for wanted in TARGET_NAMES:
        for name in names:
            if str(name).lower() == wanted:
                return name
    if source.kind == "table":
        value = _series_value_column(source.frame, types)
        if value is not None:
            return value
    # The last column, unless it holds what cannot be predicted.
    usable = [n for n in names if types.get(n) not in ("date", "identifier", "image_path")]
    return usable[-1] if len(names) > 1 and usable else None


# Tables and folders of images


def _profile_frame(source: Source, target: str | None, overrides: dict[str, str]) -> DatasetProfile:
    frame = source.frame
    file = source.path or source.root
    names = list(frame.columns)
    inferred = {column: infer_type(frame[column], column) for column in names}
    for column, chosen in overrides.items():
        _check_override(source, column, chosen, inferred)
    types = {**inferred, **overrides}
    if target is None:
        target = _default_target(source, types)
    elif target not in names:
        raise DataError(f"{file}: no target column '{target}'; columns: {', '.join(names)}")
    elif types[target] == "identifier" and target not in overrides:
        # Chosen as the target, a column unique per row holds values to predict after all.
        numeric = pd.api.types.is_numeric_dtype(frame[target])
        types[target] = "numeric" if numeric else "categorical"

    counted = {c for c, t in types.items() if t in ("categorical", "binary")}
    counted |= {target} if target is not None else set()
    counted -= {c for c, t in types.items() if t in ("numeric", "image_path", "mask_path")}
    tally = _Tally(types, counted, file)
    chunks = iter_table_chunks(source.path) if _streams(source) else [frame]
    for chunk in chunks:
        tally.add(chunk)

    images = _ImageStats(source)
    columns = [
        _column_profile(frame, column, types[column], inferred[column], tally, images)
        for column in names
    ]
    prof = DatasetProfile(
        kind=source.kind,
        rows=tally.rows,
        columns=columns,
        target=target,
        task=None,
        classes=None,
        class_balance=None,
        preview=[json_ready(row) for row in frame.head(PREVIEW_ROWS).to_dict("records")],
        sampled=source.sampled,
    )
    if target is not None:
        _set_task(prof, source, types, tally, images)
        prof.left_out = tally.missing[target]
    prof.warnings = _warnings(prof, source, len(frame), images)
    prof.encoding = source.encoding
    prof.notes = [*source.notes, *_notes(prof)]
    return prof


def _streams(source: Source) -> bool:
    return source.sampled and source.kind == "table" and source.path is not None


def _check_override(source: Source, column: str, chosen: str, inferred: dict[str, str]) -> None:
    file = source.path or source.root
    if column not in inferred:
        raise DataError(
            f"{file}: no column '{column}' to set the type of; columns: {', '.join(inferred)}"
        )
    if chosen not in COLUMN_TYPES:
        raise DataError(
            f"{file}, column '{column}': unknown type '{chosen}'; expected one of "
            f"{', '.join(COLUMN_TYPES)}"
        )
    values = source.frame[column]
    if chosen == "numeric":
        _numbers(values, column, file, offset=0, wanted="numeric")
    elif chosen == "binary" and values.nunique() > 2:
        shown = ", ".join(map(_class_name, values.dropna().unique()[:5]))
        raise DataError(
            f"{file}, column '{column}': cannot be binary, it holds {values.nunique()} distinct "
            f"values ({shown}, ...)"
        )
    elif chosen in ("image_path", "mask_path"):
        if pd.api.types.is_numeric_dtype(values):
            raise DataError(f"{file}, column '{column}': cannot be {chosen}, it holds numbers")
        check_image_column(source, column)
    elif chosen == "date":
        present = values[~missing_values(values)]
        days = day_numbers(present)
        if pd.api.types.is_numeric_dtype(values) or np.isnan(days).any():
            position = int(np.isnan(days).argmax()) if len(days) else 0
            raise DataError(
                f"{file}, row {int(present.index[position]) + 1}, column '{column}': cannot be "
                f"a date, '{present.iloc[position]}' is not one (write dates as 2007-11-11)"
            )


class _Tally:
    """What one pass over all rows gathers: row count, missing values, numeric moments and
    class counts."""

    def __init__(self, types: dict[str, str], counted: set[str], file: object):
        self.types = types
        self.file = file
        self.rows = 0
        self.missing: Counter[str] = Counter()
        self.moments = {c: Moments() for c, t in types.items() if t == "numeric"}
        self.counts: dict[str, Counter[str] | None] = {c: Counter() for c in counted}

    def add(self, chunk: pd.DataFrame) -> None:
        for column in chunk.columns:
            values = chunk[column]
            self.missing[column] += int(missing_values(values).sum())
            if column in self.moments:
                numbers = _numbers(values, column, self.file, self.rows, self.types[column])
                self.moments[column].add(numbers.dropna().to_numpy(dtype=float))
            counts = self.counts.get(column, None)
            if counts is not None:
                for value, count in values.dropna().value_counts(sort=False).items():
                    counts[_class_name(value)] += int(count)
                if len(counts) > MAX_TRACKED_VALUES:
                    self.counts[column] = None
        self.rows += len(chunk)


def _moment_stats(moments: Moments) -> dict[str, float | None]:
    """A numeric column's mean, std (n - 1), min and max from its moments."""
    count = float(moments.count) if moments.count is not None else 0.0
    if not count:
        return {"mean": None, "std": None, "min": None, "max": None}
    std = math.sqrt(float(moments.squares) / (count - 1)) if count > 1 else None
    return {"mean": float(moments.mean), "std": std, "min": float(moments.low),
            "max": float(moments.high)}  # fmt: skip


class _ImageStats:
    """Size and colour mode of each image a frame refers to, read from the file headers."""

    def __init__(self, source: Source):
        self.root = source.root
        self.file = source.path or source.root
        self.headers: dict[str, tuple[int, int, int, str]] = {}

    def header(self, relative: str, where: str) -> tuple[int, int, int, str]:
        if relative not in self.headers:
            with Image.open(resolve_inside(self.root, relative, where)) as image:
                width, height = image.size
                self.headers[relative] = (height, width, len(image.getbands()), image.mode)
        return self.headers[relative]

    def stats(self, values: pd.Series, column: str, masks: bool) -> dict[str, Any]:
        paths = [v for v in values.tolist() if isinstance(v, str) and v][:MAX_IMAGES]
        where = f"{self.file}, column '{column}'"
        headers = [self.header(path, where) for path in paths]
        sizes = Counter((h, w, c) for h, w, c, _ in headers)
        stats: dict[str, Any] = {
            "sizes": [{"size": list(size), "count": n} for size, n in sizes.most_common()],
            "modes": dict(Counter(mode for *_, mode in headers).most_common()),
            "examined": len(paths),
        }
        if masks:
            pixels: Counter[int] = Counter()
            for path in paths[:MAX_MASKS]:
                with Image.open(resolve_inside(self.root, path, where)) as image:
                    found, counts = np.unique(np.asarray(image), return_counts=True)
                pixels.update(dict(zip(found.tolist(), counts.tolist(), strict=True)))
            stats["values"] = {str(value): pixels[value] for value in sorted(pixels)}
        return stats


def _column_profile(
    frame: pd.DataFrame,
    column: str,
    kind: str,
    inferred: str,
    tally: _Tally,
    images: _ImageStats,
) -> ColumnProfile:
    values = frame[column]
    counts = tally.counts.get(column)
    unique = len(counts) if counts is not None else int(values.nunique())
    if kind == "numeric":
        stats: dict[str, Any] = _moment_stats(tally.moments[column])
    elif kind in ("categorical", "binary"):
        if counts is None:
            counts = Counter(_class_name(v) for v in values.dropna())
        top = _ordered(counts)[:TOP_CLASSES]
        stats = {"counts": dict(top), "others": sum(counts.values()) - sum(n for _, n in top)}
    elif kind == "date":
        days = day_numbers(values[~missing_values(values)])
        days = days[~np.isnan(days)]
        stats = {"first": _iso(days.min()), "last": _iso(days.max())} if len(days) else {}
    elif kind == "identifier":
        stats = {"examples": [_class_name(v) for v in values.dropna().iloc[:3]]}
    elif kind == "text":
        text = values.dropna().astype(str)
        words = text.str.lower().str.split()
        stats = {
            "mean_length": float(text.str.len().mean()) if len(text) else 0.0,
            "mean_words": float(words.str.len().mean()) if len(text) else 0.0,
            "vocab_size": len({word for row in words for word in row}),
        }
    else:
        stats = images.stats(values, column, masks=kind == "mask_path")
    if _time_like(values, column):
        stats["time_like"] = True
    missing = tally.missing[column]
    return ColumnProfile(column, kind, inferred, missing, unique, stats)


def _set_task(
    prof: DatasetProfile,
    source: Source,
    types: dict[str, str],
    tally: _Tally,
    images: _ImageStats,
) -> None:
    target = prof.target
    kind = types[target]
    file = source.path or source.root
    column = prof.column(target)
    if kind in ("image_path", "date", "identifier"):
        held = {"image_path": "images", "date": "dates", "identifier": "identifiers"}[kind]
        raise DataError(
            f"{file}, column '{target}': holds {held}, so it cannot be the target; a target "
            "holds classes, numbers or masks (set its type with --type COLUMN=TYPE)"
        )
    if kind == "mask_path":
        prof.task = "segmentation"
        values = column.stats["values"]
        _require_two(list(values), target, file, "pixel value")
        prof.classes = list(values)
        prof.class_balance = dict(values)
    elif kind == "numeric":
        if column.stats["min"] == column.stats["max"]:
            raise DataError(
                f"{file}, column '{target}': the target holds a single value "
                f"({column.stats['min']}); there is nothing to predict"
            )
        forecast = _series_value_column(source.frame, types) == target
        prof.task = "forecasting" if forecast else "regression"
    else:
        counts = tally.counts.get(target)
        if counts is None:
            counts = Counter(_class_name(v) for v in source.frame[target].dropna())
        classes = sorted(counts, key=class_order)
        _require_two(classes, target, file, "class")
        prof.task = "binary" if len(classes) == 2 else "multiclass"
        prof.classes = classes
        prof.class_balance = {name: counts[name] for name in classes}


def _require_two(classes: list[str], target: str, file: object, what: str) -> None:
    if len(classes) < 2:
        found = f" ('{classes[0]}')" if classes else ""
        raise DataError(
            f"{file}, column '{target}': the target has one {what} only{found}; "
            "there must be at least two to learn to tell apart"
        )


def _series_value_column(frame: pd.DataFrame, types: dict[str, str]) -> str | None:
    """The value column of a time series: the one numeric column beside a time-like one."""
    times = [column for column in frame.columns if _time_like(frame[column], column)]
    if not times:
        return None
    values = [c for c in frame.columns if types[c] == "numeric" and c not in times]
    return values[0] if len(values) == 1 else None


def _time_like(values: pd.Series, name: str) -> bool:
    if str(name).lower() in TIME_NAMES or pd.api.types.is_datetime64_any_dtype(values):
        return True
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    sample = values.dropna().astype(str).iloc[:50]
    # Words such as "now" or "may" parse as dates too; a date written out has digits.
    if sample.empty or not sample.str.contains(r"\d").all():
        return False
    return bool(pd.to_datetime(sample, errors="coerce", format="mixed").notna().all())


def _warnings(
    prof: DatasetProfile, source: Source, rows_read: int, images: _ImageStats
) -> list[str]:
    warnings = []
    if prof.sampled:
        warnings.append(
            f"Read the first {rows_read:,} of {prof.rows:,} rows: the preview and the unique, "
            "text and image statistics come from them; the row count, missing values, numeric "
            "statistics and class counts cover every row."
        )
    for column in prof.columns:
        if column.missing:
            warnings.append(f"Column '{column.name}' has {column.missing:,} missing values.")
        sizes = column.stats.get("sizes") or []
        if len(sizes) > 1:
            shown = ", ".join("x".join(map(str, s["size"])) for s in sizes[:3])
            warnings.append(
                f"Column '{column.name}': images come in {len(sizes)} sizes ({shown}"
                f"{', ...' if len(sizes) > 3 else ''}); preprocessing will need to resize them."
            )
        modes = column.stats.get("modes") or {}
        if len(modes) > 1:
            warnings.append(
                f"Column '{column.name}': images mix the colour modes {', '.join(modes)}."
            )
    if source.kind == "segmentation" or {"image_path", "mask_path"} <= {
        c.type for c in prof.columns
    }:
        mismatched = _mismatched_masks(source, prof, images)
        if mismatched:
            warnings.append(f"{mismatched:,} masks differ in size from their images.")
    if prof.class_balance and prof.task in ("binary", "multiclass"):
        (rare, few), (common, many) = (
            min(prof.class_balance.items(), key=lambda item: item[1]),
            max(prof.class_balance.items(), key=lambda item: item[1]),
        )
        if few < 0.2 * many:
            warnings.append(
                f"Classes are imbalanced: '{rare}' has {few:,} rows, '{common}' has {many:,}."
            )
    return warnings


def _notes(prof: DatasetProfile) -> list[str]:
    """What typing and the target decided: rows left out, identifiers left out."""
    notes = []
    if prof.left_out:
        rows = "1 row has" if prof.left_out == 1 else f"{prof.left_out:,} rows have"
        notes.append(
            f"{rows} no target and {'is' if prof.left_out == 1 else 'are'} left out "
            f"('{prof.target}' is empty): in no split, so never trained or tested on; the "
            "preview still shows them."
        )
    for column in prof.columns:
        if column.type == "identifier" and column.name != prof.target:
            notes.append(
                f"Column '{column.name}' is an identifier ({column.unique:,} distinct values): "
                f"left out of the features; `--type {shlex.quote(column.name + '=categorical')}`"
                " (or text) puts it back."
            )
    return notes


def _mismatched_masks(source: Source, prof: DatasetProfile, images: _ImageStats) -> int:
    image_column = next(c.name for c in prof.columns if c.type == "image_path")
    mask_column = next(c.name for c in prof.columns if c.type == "mask_path")
    pairs = source.frame[[image_column, mask_column]].dropna().head(MAX_IMAGES)
    return sum(
        images.headers[image][:2] != images.headers[mask][:2]
        for image, mask in pairs.itertuples(index=False)
        if image in images.headers and mask in images.headers
    )


# NumPy archives


def _profile_arrays(
    source: Source, target: str | None, overrides: dict[str, str]
) -> DatasetProfile:
    arrays = source.arrays or {}
    file = source.path or source.root
    inferred = {
        name: infer_type(pd.Series(array), name) if array.ndim == 1 else "numeric"
        for name, array in arrays.items()
    }
    for name, chosen in overrides.items():
        _check_array_override(arrays, name, chosen, file)
    types = {**inferred, **overrides}
    if target is None:
        target = _default_target(source, types)
    elif target not in arrays:
        raise DataError(f"{file}: no target array '{target}'; arrays: {', '.join(arrays)}")
    columns = [
        _array_profile(name, array, types[name], inferred[name]) for name, array in arrays.items()
    ]
    rows = len(next(iter(arrays.values())))
    prof = DatasetProfile(
        kind="npz",
        rows=rows,
        columns=columns,
        target=target,
        task=None,
        classes=None,
        class_balance=None,
        preview=[
            {name: _preview_value(array[index]) for name, array in arrays.items()}
            for index in range(min(rows, PREVIEW_ROWS))
        ],
        sampled=False,
    )
    if target is not None:
        _set_array_task(prof, arrays, types, file)
        prof.left_out = prof.column(target).missing
    prof.notes = _notes(prof)
    prof.warnings = [
        f"Array '{c.name}' has {c.missing:,} samples with missing values (NaN)."
        for c in columns
        if c.missing
    ]
    return prof


def _check_array_override(
    arrays: dict[str, np.ndarray], name: str, chosen: str, file: object
) -> None:
    if name not in arrays:
        raise DataError(
            f"{file}: no array '{name}' to set the type of; arrays: {', '.join(arrays)}"
        )
    array = arrays[name]
    where = f"{file}, array '{name}'"
    if chosen not in COLUMN_TYPES:
        raise DataError(
            f"{where}: unknown type '{chosen}'; expected one of {', '.join(COLUMN_TYPES)}"
        )
    if chosen in ("image_path", "mask_path", "date"):
        raise DataError(f"{where}: cannot be {chosen}; an npz file holds arrays of numbers")
    if array.ndim > 1 and chosen != "numeric":
        raise DataError(
            f"{where}: cannot be {chosen}, it holds a {array.shape[1:]} array per sample"
        )
    if chosen == "numeric" and not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{where}: cannot be numeric, it holds {array.dtype} values")
    if chosen == "binary" and len(np.unique(array)) > 2:
        raise DataError(
            f"{where}: cannot be binary, it holds {len(np.unique(array))} distinct values"
        )


def _array_profile(name: str, array: np.ndarray, kind: str, inferred: str) -> ColumnProfile:
    samples = array.reshape(len(array), -1)
    numeric = np.issubdtype(array.dtype, np.number) or array.dtype == bool
    missing = (
        int(np.isnan(samples).any(axis=1).sum()) if np.issubdtype(array.dtype, np.floating) else 0
    )
    # Distinct values of a large array are counted on its first samples only.
    unique = len(np.unique(samples[:1000]))
    stats: dict[str, Any] = {"dtype": str(array.dtype), "shape": list(array.shape[1:])}
    if kind == "numeric" and numeric:
        values = samples.astype(float)
        present = values[~np.isnan(values)]
        moments = Moments()
        moments.add(present)
        stats.update(_moment_stats(moments))
    elif kind in ("categorical", "binary", "text"):
        counts = Counter(_class_name(v) for v in array.tolist())
        top = _ordered(counts)[:TOP_CLASSES]
        stats["counts"] = dict(top)
        stats["others"] = len(array) - sum(n for _, n in top)
    return ColumnProfile(name, kind, inferred, missing, unique, stats)


def _set_array_task(
    prof: DatasetProfile, arrays: dict[str, np.ndarray], types: dict[str, str], file: object
) -> None:
    target = prof.target
    array = arrays[target]
    if array.ndim > 1:
        spatial = array.shape[1:3]
        images = [a for n, a in arrays.items() if n != target and a.shape[1:3] == spatial]
        if images and np.issubdtype(array.dtype, np.integer):
            found, counts = np.unique(array[:MAX_MASKS], return_counts=True)
            prof.task = "segmentation"
            prof.classes = [str(v) for v in found.tolist()]
            _require_two(prof.classes, target, file, "pixel value")
            prof.class_balance = dict(zip(prof.classes, counts.tolist(), strict=True))
        else:
            prof.task = "regression"
        return
    if types[target] == "numeric":
        if np.nanmin(array) == np.nanmax(array):
            raise DataError(
                f"{file}, array '{target}': the target holds a single value; "
                "there is nothing to predict"
            )
        prof.task = "regression"
        return
    counts = Counter(_class_name(v) for v in array.tolist())
    classes = sorted(counts, key=class_order)
    _require_two(classes, target, file, "class")
    prof.task = "binary" if len(classes) == 2 else "multiclass"
    prof.classes = classes
    prof.class_balance = {name: counts[name] for name in classes}


def _preview_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return f"<{value.dtype} array {'x'.join(map(str, value.shape))}>"
    return json_ready(value)


# Small helpers


def _numbers(values: pd.Series, column: str, file: object, offset: int, wanted: str) -> pd.Series:
    """The column as numbers; a value that is not one is an error naming its row."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    if pd.api.types.is_numeric_dtype(values):
        return values
    numbers, position = as_numbers(values, present=~missing_values(values))
    if position is not None:
        raise DataError(
            f"{file}, row {offset + position + 1}, column '{column}': cannot be {wanted}, "
            f"'{values.iloc[position]}' is not a number"
        )
    return numbers


def missing_values(values: pd.Series) -> pd.Series:
    """Which values are missing: NaN, or text that is empty or blank."""
    missing = values.isna()
    if not pd.api.types.is_numeric_dtype(values):
        missing |= values.astype(str).str.strip().eq("") & values.notna()
    return missing


def _iso(day: float) -> str:
    """A day number as an ISO date."""
    return str((EPOCH + pd.Timedelta(days=float(day))).date())


def _class_name(value: Any) -> str:
    """A class as the UI and the JSON show it: 3 and 3.0 are both '3'."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def _ordered(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], class_order(item[0])))
