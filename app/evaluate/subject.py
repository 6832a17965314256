"""What a test is about: a trained run ready to test (Subject: its directory, run.json,
dataset at the version it was trained on, preprocessing, task and test rows) and the model
inputs of its test split (Inputs). A run whose graph reconstructs its Input (an autoencoder,
app.data.anomaly) is of kind "anomaly", whatever its dataset's task.

`Subject.of(run)` raises RunError, with a message that says what to do, when a run cannot be
tested: no best checkpoint, its dataset gone or at another version, a task with nothing to
test, no test rows. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.workspace import Workspace, runs
from app.workspace.runs import RunError

KINDS = {
    "binary": "classification",
    "multiclass": "classification",
    "regression": "regression",
    "forecasting": "regression",
    "segmentation": "segmentation",
}


@dataclass
class Subject:
    """A run ready to test: its directory, run.json, dataset, preprocessing and test rows."""

    folder: Path
    info: dict[str, Any]
    dataset: Any
    config: Any
    state: Any
    task: str
    kind: str
    classes: list[str]
    rows: list[int]
    output: str
    activation: str
    source: Any = None  # the data as read, once the suite needs it
    reconstructs: str | None = None  # anomaly: the Input the graph's Output reconstructs
    normal_class: str | None = None  # anomaly: the run's setting of the normal class

    @classmethod
    def of(cls, run: str | os.PathLike) -> Subject:
        """The run's subject, or RunError when it cannot be tested."""
        from app.data import anomaly
        from app.graph.components import CATALOGUE
        from app.graph.document import load

        workspace = Workspace.current()
        folder = workspace.run(run)
        info = runs.read_info(folder)
        name = f"Run '{info['id']}'"
        if not (folder / runs.CHECKPOINTS / runs.BEST).exists():
            raise RunError([f"{name} has no best checkpoint yet; test it after an epoch"])
        data = info["data"]["name"]
        try:
            dataset = workspace.dataset_of_run(folder)
        except ValueError as err:  # DataError: gone, or at another version
            raise RunError([f"{err}; it is needed to test the run"]) from None
        task = dataset.meta.get("task")
        doc = load(folder / runs.GRAPH)
        reconstructs = anomaly.reconstructs(doc)
        if task not in KINDS and not reconstructs:
            raise RunError([f"{name}: dataset '{data}' has task {task!r}; nothing to test"])
        rows = sorted(int(i) for i in dataset.splits.get("test", []))
        if not rows:
            raise RunError([f"{name}: dataset '{data}' has no rows in its test split"])
        config, state = dataset.preprocessing()
        kind = "anomaly" if reconstructs else KINDS[task]
        task = anomaly.ANOMALY_TASK if reconstructs else task
        if kind in ("classification", "anomaly"):
            classes = list(state.classes or dataset.meta["profile"].get("classes") or [])
        elif kind == "segmentation":
            classes = [str(v) for v in state.mask_values or []]
        else:
            classes = []
        outputs = [node for node in doc.nodes if node.component == "Output"]
        output = outputs[0]
        activation = CATALOGUE["Output"].resolve(output.settings)[0].get("activation") or "linear"
        settings_path = folder / runs.SETTINGS
        settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
        return cls(
            folder, info, dataset, config, state, task, kind, classes, rows, output.id, activation,
            reconstructs=reconstructs, normal_class=settings.get("normal_class"),
        )  # fmt: skip

    @property
    def run_id(self) -> str:
        return self.info["id"]

    @property
    def probabilities(self) -> bool:
        """Whether the Output gives probabilities (else logits, made probabilities here)."""
        return self.activation in ("softmax", "sigmoid")


@dataclass
class Inputs:
    """The test split's model inputs by data name: held in memory when small, read again from
    the data for the rows asked for when not."""

    subject: Subject
    positions_rows: list[int]  # row number of each position (each window, with a window)
    held: dict[str, np.ndarray] | None = None

    def take(self, positions: Sequence[int]) -> dict[str, np.ndarray]:
        positions = [int(p) for p in positions]
        if self.held is not None:
            return {name: values[positions] for name, values in self.held.items()}
        from app.runtime.transform import transform

        order = sorted(set(positions))
        inputs, _ = transform(
            self.subject.config,
            self.subject.state,
            self.subject.source,
            [self.positions_rows[p] for p in order],
        )
        where = [order.index(p) for p in positions]
        return {name: values[where] for name, values in inputs.items()}
