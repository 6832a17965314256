"""Comparing training runs: their data, graphs, settings and final metrics side by side, and
their metrics per epoch for overlaid charts.

A reader of run directories (app.workspace.runs) and their event logs (app.workspace.events), as
the Runs page and `layerflow compare` are. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.workspace import Workspace
from app.workspace.events import iter_events
from app.workspace.runs import GRAPH, get_run

_MISSING = object()  # a setting one run has and another has not


def compare_runs(runs: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Two or more runs side by side, and what differs between them.

    Args:
        runs: run ids or run directories (inside the workspace), at least two
            different runs.

    Returns:
        {"runs": [one dict per run, in the order given: id, model, dir, state, epoch, epochs,
                  data {name, version}, graph (a hash of the graph, see graph_hash),
                  settings (flattened: nested keys joined with dots), metrics (the last
                  epoch's), best ({monitor, value, epoch} or None)],
         "metrics": the metric names of all the runs, in the order first met,
         "differs": {"settings": the settings keys whose values differ between the runs,
                     "data": whether the runs were trained on different data or data versions,
                     "graph": whether their graphs differ}}

    Raises:
        ValueError: fewer than two different runs, or a run that does not exist.
    """
    if isinstance(runs, str | os.PathLike):
        runs = [runs]
    workspace = Workspace.current()
    folders = [workspace.run(run) for run in runs]
    if len(set(folders)) < 2:
        raise ValueError(
            "Received an invalid value for `runs`, expected at least two different runs to "
            f"compare. Received: runs={[str(run) for run in runs]}"
        )
    rows = [_summary(folder) for folder in folders]
    keys = list(dict.fromkeys(key for row in rows for key in row["settings"]))
    return {
        "runs": rows,
        "metrics": list(dict.fromkeys(name for row in rows for name in row["metrics"])),
        "differs": {
            "settings": [
                key
                for key in keys
                if len({_comparable(row["settings"].get(key, _MISSING)) for row in rows}) > 1
            ],
            "data": len({(row["data"]["name"], row["data"]["version"]) for row in rows}) > 1,
            "graph": len({row["graph"] for row in rows}) > 1,
        },
    }


def history(run: str | os.PathLike) -> dict[str, list]:
    """A run's metrics per epoch, for charts, from the epoch events of its event log.

    Returns:
        {"epoch": [1, 2, ...], "<metric>": [a value per epoch], ..., "lr": [...]}: epochs
        count from 1; a metric (or the learning rate) an epoch did not log is None there. An
        epoch logged twice (a run resumed after it) counts once, as last logged.
    """
    folder = Workspace.current().run(run)
    by_epoch: dict[int, dict[str, Any]] = {}
    for event in iter_events(folder, {"epoch"}):
        values = dict(event.get("metrics") or {})
        if event.get("lr") is not None:
            values.setdefault("lr", event["lr"])
        by_epoch[int(event["epoch"])] = values
    epochs = sorted(by_epoch)
    names = list(dict.fromkeys(name for epoch in epochs for name in by_epoch[epoch]))
    names.sort(key=lambda name: name == "lr")  # the metrics first, the learning rate last
    result: dict[str, list] = {"epoch": [epoch + 1 for epoch in epochs]}
    for name in names:
        result[name] = [by_epoch[epoch].get(name) for epoch in epochs]
    return result


def graph_hash(path: str | os.PathLike) -> str:
    """The SHA-256 of what in a graph file makes the model: its nodes (without their place on
    the canvas and their labels), edges and blocks; not its name or description. Equal hashes:
    the same model."""
    data = json.loads(Path(path).read_text())
    data.pop("meta", None)
    content = _without(data, {"position", "label"})
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}, "c": 2} -> {"a.b": 1, "c": 2}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _summary(folder: Path) -> dict[str, Any]:
    info = get_run(folder)
    return {
        "id": info["id"],
        "model": info["model"],
        "dir": info["dir"],
        "state": info["state"],
        "epoch": info["epoch"],
        "epochs": info["epochs"],
        "data": {"name": info["data"]["name"], "version": info["data"]["version"]},
        "graph": graph_hash(folder / GRAPH),
        "settings": flatten(info["settings"]),
        "metrics": info["metrics"],
        "best": info["best"],
    }


def _without(value: Any, keys: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def _comparable(value: Any) -> Any:
    """A hashable stand-in for a setting's value (lists and dicts are JSON text)."""
    if value is _MISSING or isinstance(value, str | int | float | bool | None):
        return value if not isinstance(value, bool) else ("bool", value)
    return json.dumps(value, sort_keys=True)


__all__ = ["compare_runs", "flatten", "graph_hash", "history"]
