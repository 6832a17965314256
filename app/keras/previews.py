"""Small previews of a layer's output for the event log: the first feature maps of a
convolution's output, and a model output's prediction beside its target, shrunk and rounded.

The maps of one `layers` event share a budget of PREVIEW_VALUES values (`preview_side`), so a
deep model gets smaller maps rather than a larger log.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PREVIEW_SIZE = 32  # feature maps and spatial outputs are shrunk to at most this many pixels a side
PREVIEW_VALUES = 8192  # all the maps of one layers event together: deep models get smaller ones
PREVIEW_MAPS = 4
PREVIEW_SAMPLES = 4
PREVIEW_VECTOR = 32  # longer output vectors are previewed by their largest entry only


def preview_side(maps: int) -> int:
    """The side of each of `maps` previews drawn at once: at most PREVIEW_SIZE, at least 8."""
    return max(8, min(PREVIEW_SIZE, math.isqrt(PREVIEW_VALUES // max(maps, 1))))


def feature_maps(values: np.ndarray, data_format: str | None = None,
                 side: int = PREVIEW_SIZE) -> dict[str, Any]:  # fmt: skip
    """The first PREVIEW_MAPS channels of the first sample of a rank-4 batch, each shrunk to at
    most side x side and rounded to 3 decimals."""
    first = values[0]
    if data_format == "channels_first":
        first = np.moveaxis(first, 0, -1)
    maps = [_rounded(_shrink(first[:, :, channel], side))
            for channel in range(min(PREVIEW_MAPS, first.shape[-1]))]  # fmt: skip
    return {"kind": "feature_maps", "shape": list(first.shape), "maps": maps}


def output_preview(prediction: np.ndarray, target: Any, side: int = PREVIEW_SIZE) -> dict[str, Any]:
    """The first PREVIEW_SAMPLES predictions of a model output beside their targets (None
    without a target), each compacted."""
    return {
        "kind": "output",
        "prediction": [_compact(row, side) for row in prediction[:PREVIEW_SAMPLES]],
        "target": None if target is None else
        [_compact(row, side) for row in np.asarray(target)[:PREVIEW_SAMPLES]],
    }  # fmt: skip


def _shrink(array: np.ndarray, side: int) -> np.ndarray:
    """The first two axes sampled down to at most `side` evenly spaced rows and columns."""
    rows, cols = (np.linspace(0, size - 1, min(size, side)).round().astype(int)
                  for size in array.shape[:2])  # fmt: skip
    return array[rows][:, cols]


def _compact(value: Any, side: int = PREVIEW_SIZE) -> Any:
    """One sample's prediction or target, small: rounded numbers; a map (or the first channel
    of one) shrunk to at most side x side; a long vector (many classes) as its largest entry."""
    array = np.asarray(value)
    if array.dtype.kind not in "fiub" or array.ndim > 3:
        return None
    if array.ndim >= 2:
        array = _shrink(array[..., 0] if array.ndim == 3 else array, side)
    elif array.ndim == 1 and array.size > PREVIEW_VECTOR:
        return {"argmax": int(np.argmax(array)), "max": round(float(array.max()), 3)}
    return _rounded(array) if array.dtype.kind == "f" else array.tolist()


def _rounded(array: np.ndarray) -> Any:
    # float64 first: float32's 0.123 becomes 0.12300000339746475 in JSON
    return np.round(np.asarray(array, dtype=np.float64), 3).tolist()
