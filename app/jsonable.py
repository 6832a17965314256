"""JSON-able copies of data: NumPy scalars and arrays as Python numbers and lists, NaN and
infinities as null, timestamps as text. Profiles and test reports are written through it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd


def json_ready(value: Any) -> Any:
    """JSON-able copy: numpy scalars to Python, NaN and inf to None, timestamps to text."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if value is pd.NaT or (not isinstance(value, Iterable) and pd.isna(value)):
        return None
    return str(value)
