"""Finding NaN and infinite values in what a model is given: the inputs and targets `transform`
gives for some rows, by column and row. A training loss that becomes NaN is looked for here
first, before the learning rate is blamed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .config import TABULAR_KINDS, FittedState, PreprocessConfig, column_state, input_names
from .rows import Rows
from .transform import feature_width, iter_transform


def first_non_finite(
    config: PreprocessConfig, state: FittedState, source: Rows, index: Sequence[int]
) -> str | None:
    """Where the model inputs or targets of the rows `index` first hold NaN or an infinity,
    as "column 'x', row 12: NaN" (rows from 1, as in the file); None when all are finite."""
    if len(index) == 0:
        return None
    for inputs, targets, positions in iter_transform(config, state, source, index):
        found = {**inputs, **({} if targets is None else {"target": targets})}
        for name, array in found.items():
            values = array.reshape(len(array), -1) if array.dtype.kind == "f" else None
            if values is None:
                continue  # ids and paths: integers and text are always finite
            for column, part in _columns(config, state, name, values):
                bad = ~np.isfinite(part)
                if bad.any():
                    row, place = np.argwhere(bad)[0]
                    value = "NaN" if np.isnan(part[row, place]) else "an infinity"
                    return f"column '{column}', row {int(positions[row]) + 1}: {value}"
    return None


def _columns(
    config: PreprocessConfig, state: FittedState, name: str, values: np.ndarray
) -> Iterator[tuple[str, np.ndarray]]:
    """A model input's (or the target's) values by the column they come from."""
    if name == "target":
        yield str(config.target), values
        return
    if name != "features":
        yield next(c for c, n in input_names(config).items() if n == name), values
        return
    start = 0
    for spec in config.features:
        if spec.kind in TABULAR_KINDS:
            width = feature_width(spec, column_state(state, spec))
            yield spec.column, values[:, start : start + width]
            start += width
