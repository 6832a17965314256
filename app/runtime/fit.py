"""Fitting: what preprocessing learns from the train rows only (`FittedState`).

Per feature: the mean, deviation, minimum and maximum of numbers (per element for an npz
array), merged chunk by chunk so that a table too large to hold is fitted whole; the mean day
and the first and last year of a date; the categories in their order; the vocabulary of a
text, its words by frequency; and about the target, the classes in their order or the mask
pixel values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .columns import (
    category_key,
    check_images,
    class_name,
    class_order,
    masks,
    numbers,
    texts,
    tokens,
    unique_values,
)
from .config import ColumnState, FeatureSpec, FittedState, PreprocessConfig, check_config
from .dates import day_numbers, year_of
from .errors import DataError
from .rows import Rows, parts


class Moments:
    """Count, mean, squared deviations, min and max per element, merged part by part (Chan et
    al.), missing values (NaN) left out: a huge column is never in memory at once. Fitting and
    the data profile (app.data.profile) both use it."""

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


def fit(config: PreprocessConfig, source: Rows, train_index: Sequence[int]) -> FittedState:
    """Learn the preprocessing's state from the train rows only.

    Args:
        config: the preprocessing settings.
        source: the data (`read_rows`; in LayerFlow, `read_source`); a sampled table is
            streamed whole.
        train_index: the train split's row numbers.
    """
    check_config(config)
    if len(train_index) == 0:
        raise ValueError("Received an empty `train_index`; fitting needs at least one train row")
    moments = {
        s.column: Moments()
        for s in config.features
        if s.kind in ("numeric", "passthrough", "date")
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
    for part in parts(source, train_index):
        rows += len(part)
        for spec in config.features:
            if spec.kind == "date":
                moments[spec.column].add(day_numbers(part.values(spec.column))[:, None])
            elif spec.column in moments:
                matrix = numbers(part, spec)
                moments[spec.column].add(matrix)
                values = part.values(spec.column)
                if isinstance(values, np.ndarray) and values.ndim > 1:
                    shapes[spec.column] = list(values.shape[1:])
            elif spec.kind == "categorical":
                categories[spec.column] |= {
                    category_key(v) for v in unique_values(part.values(spec.column))
                }
            elif spec.kind == "text":
                for text in texts(part, spec.column):
                    words[spec.column].update(tokens(text))
            elif spec.kind == "image":
                check_images(part, spec, source.root)
        if config.target_kind == "classes":
            classes |= {class_name(v) for v in unique_values(part.values(config.target))}
        elif config.target_kind == "values" and config.window is None:
            numbers(part, FeatureSpec(column=config.target, kind="numeric"))
        elif config.target_kind == "mask":
            mask_values |= set(np.unique(masks(config, part, source.root)).tolist())
    if config.window is not None:
        _numbers_of(source, train_index, config.window.column)
    columns: dict[str, ColumnState] = {}
    for spec in config.features:
        if spec.column in moments:
            columns[spec.column] = _numeric_state(moments[spec.column], spec, shapes, part.where)
            if spec.kind == "date":
                days = columns[spec.column]
                columns[spec.column] = ColumnState(
                    mean=days.mean, min=year_of(days.min), max=year_of(days.max)
                )
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
        sorted(classes - {None}, key=class_order) if config.target_kind == "classes" else None
    )
    if found_classes is not None and not found_classes:
        raise DataError(f"{part.where}, column '{config.target}': no classes in the train rows")
    return FittedState(
        rows=rows,
        columns=columns,
        classes=found_classes,
        mask_values=sorted(int(v) for v in mask_values) if config.target_kind == "mask" else None,
    )


def _numbers_of(source: Rows, index: Sequence[int], column: str) -> None:
    for part in parts(source, index):
        numbers(part, FeatureSpec(column=column, kind="numeric"))


def _numeric_state(
    moments: Moments, spec: FeatureSpec, shapes: dict[str, list[int]], where: str
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
    return sorted((str(key) for key in found), key=class_order)
