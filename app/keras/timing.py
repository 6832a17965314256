"""Timing a model call, the one way LayerFlow times one: after warm-up calls, each call timed
with `time.perf_counter`, up to a number of repeats or a time budget. The test report's latency
check and the profiler (app.profile) measure with it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

WARMUP = 2
MIN_REPEATS = 5


def times_ms(
    call: Callable[[], Any], repeats: int, warmup: int = WARMUP, budget_s: float | None = None
) -> list[float]:
    """Milliseconds of each of `repeats` calls of `call()` after `warmup` untimed ones; with a
    budget, no more calls once it is spent (and at least MIN_REPEATS were timed)."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats:
        before = time.perf_counter()
        call()
        times.append((time.perf_counter() - before) * 1000)
        spent = time.perf_counter() - started
        if budget_s is not None and len(times) >= MIN_REPEATS and spent > budget_s:
            break
    return times
