"""Dates as model features: a date column's values as day numbers, and the parts derived from
them: the year (scaled over the train years), and the month, day of week and day of year, each
as a point (sin, cos) on its circle, so that December sits next to January.

`date_features` is written once for NumPy and Keras ops alike (`ops` is `numpy` or
`keras.ops`): `transform` computes it in NumPy, and a model that takes raw rows computes the
same in its graph from day numbers, with integer arithmetic only (the proleptic Gregorian
calendar, as in Howard Hinnant's `civil_from_days`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .config import DATE_PARTS

EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def day_numbers(values: pd.Series | np.ndarray) -> np.ndarray:
    """Dates (text such as 2007-11-11 or 2012/01/01, or datetimes) as days since 1970-01-01,
    float64 (n,); NaN where a value is missing or not a date. A time of day is dropped."""
    series = pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(series):
        # Each distinct text is parsed once: "mixed" parses one value at a time.
        distinct = pd.unique(series.dropna())
        parsed = pd.to_datetime(
            pd.Series(distinct, dtype=object).astype(str), format="mixed", errors="coerce",
            utc=True,
        )  # fmt: skip
        series = series.map(dict(zip(distinct, parsed, strict=True)))
        series = pd.to_datetime(series, utc=True)
    elif series.dt.tz is None:
        series = series.dt.tz_localize("UTC")
    days = (series - EPOCH) // pd.Timedelta(days=1)
    return days.to_numpy(dtype=np.float64, na_value=np.nan)


def year_of(day: float) -> int:
    """The year of a day number."""
    return (EPOCH + pd.Timedelta(days=math.floor(day))).year


def date_width(parts: Sequence[str]) -> int:
    """How many features the parts make: 1 for the year, 2 (sin, cos) for each other."""
    return sum(1 if part == "year" else 2 for part in parts)


def date_features(
    days: Any, parts: Sequence[str], first_year: float, last_year: float, ops: Any = np
) -> Any:
    """The parts of day numbers (n,) as features (n, date_width(parts)), in DATE_PARTS order:
    the year as (year - first_year) / (last_year - first_year), the others as (sin, cos).
    `days` holds no missing values (fill them first); `ops` is numpy or keras.ops."""
    floor = ops.floor_divide
    z = days + 719468.0  # days since 0000-03-01
    era = floor(z, 146097.0)  # 400-year cycles
    day_of_era = z - era * 146097.0
    year_of_era = floor(
        day_of_era
        - floor(day_of_era, 1460.0)
        + floor(day_of_era, 36524.0)
        - floor(day_of_era, 146096.0),
        365.0,
    )
    from_march = day_of_era - (
        365.0 * year_of_era + floor(year_of_era, 4.0) - floor(year_of_era, 100.0)
    )
    month_from_march = floor(5.0 * from_march + 2.0, 153.0)
    month = ops.where(month_from_march < 10.0, month_from_march + 3.0, month_from_march - 9.0)
    year = year_of_era + era * 400.0 + ops.where(month <= 2.0, 1.0, 0.0)
    leap = ops.where(
        ops.logical_and(
            ops.equal(ops.mod(year, 4.0), 0.0),
            ops.logical_or(
                ops.not_equal(ops.mod(year, 100.0), 0.0), ops.equal(ops.mod(year, 400.0), 0.0)
            ),
        ),
        1.0,
        0.0,
    )
    # Day of the year from 0: March 1st is day 59 (60 in a leap year).
    yearday = ops.where(month >= 3.0, from_march + 59.0 + leap, from_march - 306.0)
    weekday = ops.mod(days + 3.0, 7.0)  # 1970-01-01 was a Thursday; Monday is 0
    span = last_year - first_year
    columns = []
    for part in DATE_PARTS:
        if part not in parts:
            continue
        if part == "year":
            columns.append((year - first_year) / (span if span > 0 else 1.0))
            continue
        angle = {
            "month": (month - 1.0) / 12.0,
            "weekday": weekday / 7.0,
            "yearday": yearday / (365.0 + leap),
        }[part] * (2 * math.pi)
        columns += [ops.sin(angle), ops.cos(angle)]
    return ops.stack(columns, axis=-1)
