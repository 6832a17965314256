"""The model a server answers for, loaded once: a run's best checkpoint behind its dataset's
preprocessing (export.exporter.run_predictor), or an export folder (Predictor.of_export). Both
take raw inputs. An autoencoder run also has its parts (app.keras.autoencoder) and its anomaly
threshold, for the server's `:reconstruct` and `:decode`. Imports TensorFlow when a model is
loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.runtime.predictor import METADATA, Predictor


@dataclass
class Autoencoder:
    """An autoencoder run's parts, served beside its predictions."""

    explain: Predictor  # raw inputs -> input (preprocessed), reconstruction, code
    decoder: Predictor | None  # code -> reconstruction; None without a bottleneck
    bottleneck: str | None  # the node whose output is the code
    threshold: float | None  # errors above it are anomalous
    threshold_from: str  # where the threshold comes from, in words


@dataclass
class Served:
    """A loaded model and what a server says of it."""

    name: str  # the model name in URLs: the run id, or the export folder's name
    folder: Path  # the run or export folder
    predictor: Predictor
    classes: dict[str, list[str]] = field(default_factory=dict)  # output -> class names
    extra: dict[str, Any] = field(default_factory=dict)  # for the metadata's `layerflow` part
    autoencoder: Autoencoder | None = None  # a run that reconstructs its input


def load_served(folder: str | Path) -> Served:
    """The model of a run or export folder (as client.target_folder finds it), loaded."""
    folder = Path(folder)
    autoencoder = None
    if (folder / METADATA).is_file():
        meta = json.loads((folder / METADATA).read_text())
        predictor = Predictor.of_export(folder, compiled=True)
        kind, task, reconstructed = "export", None, bool(meta.get("reconstructs"))
        classes = meta.get("classes")
    else:
        from app.data.anomaly import reconstructs
        from app.export.exporter import run_predictor
        from app.graph.document import load
        from app.workspace import runs

        predictor = run_predictor(folder, compiled=True)
        doc = load(folder / runs.GRAPH)
        kind, task, reconstructed = "run", doc.meta.task, reconstructs(doc) is not None
        classes = predictor.state.classes if predictor.state is not None else None
        if reconstructed:
            autoencoder = load_autoencoder(folder)
    # One class list (the target's) belongs to the output that gives one value per class.
    by_output = {predictor.outputs[0]: list(classes)} if classes else {}
    return Served(
        name=folder.name,
        folder=folder,
        predictor=predictor,
        classes=by_output,
        extra={
            "kind": kind,
            "task": task,
            "classes": by_output,
            "autoencoder": reconstructed,
            **(_described(autoencoder) if autoencoder else {}),
        },  # fmt: skip
        autoencoder=autoencoder,
    )


def load_autoencoder(folder: Path) -> Autoencoder:
    """The parts of the autoencoder of run `folder`, and its threshold: the one of the run's test
    report, else the one the test would set (normal validation rows, the default percentile)."""
    from app.evaluate.anomaly import DEFAULT_PERCENTILE, error_threshold
    from app.evaluate.predictions import normal_validation_errors
    from app.evaluate.subject import Subject
    from app.evaluate.suite import read_report
    from app.graph.document import load
    from app.keras import autoencoder, builder
    from app.workspace import runs

    trained = builder.load_run_model(folder)
    subject = Subject.of(folder)
    parts = autoencoder.parts(trained, load(folder / runs.GRAPH), subject.config, subject.state)
    report = read_report(folder) or {}
    threshold = report.get("metrics", {}).get("threshold")
    if threshold is not None:
        said = "the run's test report"
    else:
        subject.source = subject.dataset.source()
        normal = normal_validation_errors(trained, subject)
        threshold = error_threshold(normal["errors"], DEFAULT_PERCENTILE)
        said = (f"the {DEFAULT_PERCENTILE:g}th percentile of the errors of {normal['rows']} "
                f"normal {normal['split']} rows")  # fmt: skip
    return Autoencoder(
        explain=Predictor.of_model(parts.explain, subject.config, subject.state, compiled=True),
        decoder=None if parts.decoder is None else Predictor.of_model(parts.decoder, compiled=True),
        bottleneck=parts.bottleneck,
        threshold=float(threshold),
        threshold_from=said,
    )


def _described(autoencoder: Autoencoder) -> dict[str, Any]:
    """What the metadata says of an autoencoder: its bottleneck, code shape and threshold."""
    decoder = autoencoder.decoder
    return {
        "bottleneck": autoencoder.bottleneck,
        "code_shape": None if decoder is None else decoder.inputs[0]["shape"],
        "threshold": autoencoder.threshold,
        "threshold_from": autoencoder.threshold_from,
    }
