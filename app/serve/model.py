"""The model a server answers for, loaded once: a run's best checkpoint behind its dataset's
preprocessing (export.exporter.run_predictor), or an export folder (Predictor.of_export). Both
take raw inputs. Imports TensorFlow when a model is loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.runtime.predictor import METADATA, Predictor


@dataclass
class Served:
    """A loaded model and what a server says of it."""

    name: str  # the model name in URLs: the run id, or the export folder's name
    folder: Path  # the run or export folder
    predictor: Predictor
    classes: dict[str, list[str]] = field(default_factory=dict)  # output -> class names
    extra: dict[str, Any] = field(default_factory=dict)  # for the metadata's `layerflow` part


def load_served(folder: str | Path) -> Served:
    """The model of a run or export folder (as client.target_folder finds it), loaded."""
    folder = Path(folder)
    if (folder / METADATA).is_file():
        meta = json.loads((folder / METADATA).read_text())
        predictor = Predictor.of_export(folder, compiled=True)
        kind, task, autoencoder = "export", None, bool(meta.get("reconstructs"))
        classes = meta.get("classes")
    else:
        from app.data.anomaly import reconstructs
        from app.export.exporter import run_predictor
        from app.graph.document import load
        from app.workspace import runs

        predictor = run_predictor(folder, compiled=True)
        doc = load(folder / runs.GRAPH)
        kind, task, autoencoder = "run", doc.meta.task, reconstructs(doc) is not None
        classes = predictor.state.classes if predictor.state is not None else None
    # One class list (the target's) belongs to the output that gives one value per class.
    by_output = {predictor.outputs[0]: list(classes)} if classes else {}
    return Served(
        name=folder.name,
        folder=folder,
        predictor=predictor,
        classes=by_output,
        extra={"kind": kind, "task": task, "classes": by_output, "autoencoder": autoencoder},
    )
