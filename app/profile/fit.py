"""Skyline's what-if for batch size: iteration time and memory are close to linear in the batch
size, so a least-squares line through the measured points predicts the sizes not measured, and
the largest batch that fits a memory budget. NumPy only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}  # fmt: skip


def line(sizes: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line of `values` against `sizes`; ValueError
    with fewer than two distinct sizes."""
    x, y = np.asarray(sizes, dtype=float), np.asarray(values, dtype=float)
    if len(set(x.tolist())) < 2:
        raise ValueError("A line needs measurements at two batch sizes or more")
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def predict(fitted: tuple[float, float], size: float) -> float:
    intercept, slope = fitted
    return intercept + slope * size


def largest_batch(fitted: tuple[float, float], budget: float) -> int | None:
    """The largest batch size whose fitted memory is within `budget` bytes; None when even one
    sample is over it (or memory does not grow with the batch)."""
    intercept, slope = fitted
    if slope <= 0 or intercept + slope > budget:
        return None
    return int((budget - intercept) // slope)


def parse_batch_sizes(text: str) -> list[int]:
    """'1,8,32,128' -> [1, 8, 32, 128] (sorted, once each); ValueError naming the text."""
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        sizes = []
    if not sizes or sizes[0] < 1:
        raise ValueError(f"expected whole numbers >= 1 such as 1,8,32,128, received {text!r}")
    return sizes


def parse_bytes(text: str) -> int:
    """'8GB', '512 MiB', '1e9' -> bytes; ValueError naming the text otherwise."""
    found = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", text)
    unit = found.group(2).upper() if found else ""
    if not found or unit not in UNITS:
        raise ValueError(f"Received an invalid memory size {text!r}, expected a number and a "
                         "unit such as 8GB or 512MiB")  # fmt: skip
    try:
        return int(float(found.group(1)) * UNITS[unit])
    except ValueError:
        raise ValueError(f"Received an invalid memory size {text!r}") from None
