"""A run's event log: one JSON object per line, appended, never rewritten.

The writer (a training process) and the readers (pages, CLI) never call each other; they meet
in this file, as TensorBoard's dashboards meet a job in its event files. Each line is written
with a single write and flushed, so a killed writer leaves at most one partial last line,
which readers skip.

Event types (field "type"), all with "time" (seconds since the epoch):
  batch    epoch, step, metrics {name: value}, lr, eta_s
  epoch    epoch, step, metrics {name: value, val_name: value}, lr, samples_per_sec,
           steps_per_sec, duration_s, eta_s
  layers   epoch, step, layers {node_id: {weights: {name: stats}, grad_norm, grad_flag
           ("vanishing" | "exploding" | null), activation: stats + zero_fraction, preview}}
           where stats = {mean, std, min, max, hist: {edges, counts}} (+ nonfinite) and preview
           is {kind: "feature_maps", shape, maps} or {kind: "output", prediction, target}
  system   cpu_percent, memory_mb (gpu_memory_mb, gpu_peak_mb when there is a GPU)
  warning  code, message, epoch, step, layer (where one is at fault)
  status   state, reason
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EVENTS = "events.jsonl"


class EventWriter:
    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / EVENTS
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut = self.path.exists() and self.path.stat().st_size and not _ends_with_newline(self.path)
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        if cut:  # a killed writer left half a line: end it so the next event stands alone
            self._handle.write("\n")

    def write(self, event_type: str, **fields: Any) -> None:
        record = {"type": event_type, "time": time.time(), **fields}
        self._handle.write(json.dumps(record, default=_plain) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(
    run_dir: str | os.PathLike, types: set[str] | None = None, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Events from byte `offset` on, and the offset to continue from next time.

    Only whole lines are read; a partial last line (a writer mid-write or killed) is left
    for the next call."""
    path = Path(run_dir) / EVENTS
    if not path.exists():
        return [], offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash before a newline was appended later
        if types is None or event.get("type") in types:
            events.append(event)
    return events, offset + end


def iter_events(run_dir: str | os.PathLike, types: set[str] | None = None) -> Iterator[dict]:
    yield from read_events(run_dir, types)[0]


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to the event log")
