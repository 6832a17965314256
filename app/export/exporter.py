"""Exports of a trained run: its model as a .keras file, a TF SavedModel, a TFLite flatbuffer
(float32, or quantized: dynamic range, float16 or int8), an ONNX graph, or a standalone project
that predicts with it and retrains it without LayerFlow.

Every export takes raw data: the run's model behind its dataset's preprocessing
(app.runtime.serving.with_preprocessing), so that a raw row or image gives the prediction
LayerFlow gives (transform, then the trained model).

An export is refused unless the run passed its tests (`<run>/test/report.json`, which
`layerflow test` writes; `check_gate`) and what was exported predicts as the run's model does
on rows of the test split (app.export.parity); forcing it is written into its metadata. An
export lives in `models/<model>/exports/<run-id>-<format>[-<quantize>]/`:

  metadata.json   run, model, format, quantize, data {name, version}, test summary, gates,
                  forced (and why), created, files, parity, inputs, outputs, classes
  model.keras | saved_model/ | model.tflite | model.onnx | the project's files

It is written into a staging folder, renamed into place (replacing an older export of the same
name whole) and recorded as a DVC version (app.export.records).

The formats are written by app.export.formats, the project by app.export.project; a run's or an
export's predictions come from app.runtime.predictor.Predictor (`run_predictor`).
Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from app.export.options import REPORT, ExportError, check_format
from app.files import swap_in
from app.workspace import Workspace, runs


def export_run(
    run: str | os.PathLike,
    fmt: str,
    quantize: str | None = None,
    force: bool = False,
) -> Path:
    """Export a run's best checkpoint, with its preprocessing, and return the export folder.

    Refused (ExportError) when the run has no passing test report or when the export does not
    predict as the model does on the test split, unless `force`, which the metadata records.

    Args:
        run: the run's id or directory.
        fmt: keras, savedmodel, tflite, onnx or project.
        quantize: for tflite only: dynamic (dynamic-range int8 weights), float16, or int8
            (weights and activations, calibrated on rows of the train split); None for float32.
        force: export even when the tests or the parity check failed.
    """
    from app.export import formats, parity, project, records, tfjs
    from app.graph.components import backend_notes
    from app.graph.document import load
    from app.keras import builder
    from app.runtime.predictor import Predictor, input_specs, output_names
    from app.runtime.serving import raw_columns

    workspace = Workspace.current()
    check_format(fmt, quantize)
    folder = workspace.run(run)
    info = runs.read_info(folder)
    gate = check_gate(folder)
    if not gate["passed"] and not force:
        raise ExportError(f"{gate['reason']} (--force exports it anyway)")
    dataset = _dataset_of(workspace, folder)
    config, state = dataset.preprocessing()
    doc = load(folder / runs.GRAPH)
    trained = builder.load_run_model(folder, "best")
    model = _with_preprocessing(trained, doc, config, state)
    name = f"{info['id']}-{fmt}" + (f"-{quantize}" if quantize else "")
    exports = records.exports_dir(info["model"])
    exports.mkdir(parents=True, exist_ok=True)
    records.keep_out_of_workspace_pipelines(exports)
    final = exports / name
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=exports))
    try:
        source = dataset.source()  # read once: the parity rows, calibration, the project
        sample = parity.parity_sample(dataset, config, state, source)
        specs = input_specs(model, raw_columns(config, state))
        outputs = output_names(model)
        if fmt == "project":
            files = project.write_project(staging, folder, model, dataset, source)
        elif fmt == "tfjs":  # the trained model; its preprocessing goes beside it as data
            files = tfjs.write_tfjs(trained, staging, config, state, doc)
        else:
            representative = None
            if quantize == "int8":
                representative = parity.representative(dataset, config, state, source)
            files = formats.write_model(
                model, fmt, staging, quantize, representative=representative, sample=sample[0]
            )
        if fmt == "tfjs":
            checked = tfjs.check_parity(staging, trained, sample, config, state, doc)
        else:
            predictor = Predictor.load(staging, fmt, specs, outputs)
            checked = parity.check_parity(predictor, trained, sample, quantize, doc)
        if checked["passed"] is False and not force:
            raise ExportError(
                f"Run '{info['id']}': the {_label(fmt, quantize)} export does not predict as the "
                f"model does: {checked['detail']} (--force exports it anyway)"
            )
        # What force overrode, if anything: a failed test report, a failed parity check.
        reasons = [gate["reason"]]
        if checked["passed"] is False:
            reasons.append(f"the export does not predict as the model does: {checked['detail']}")
        records.write_metadata(
            staging,
            {
                "run": info["id"],
                "model": info["model"],
                "graph_name": info.get("graph_name"),
                "format": fmt,
                "quantize": quantize,
                "checkpoint": "best",
                "data": dict(info["data"]),
                "test": gate["test"],
                "gates": gate["gates"],
                "forced": bool(force and any(reasons)),
                "forced_reason": "; ".join(r for r in reasons if r) or None,
                "created": time.time(),
                "files": records.file_list(staging, files),
                "parity": checked,
                "inputs": specs,
                "outputs": outputs,
                "classes": state.classes,
                "preprocessing": "in preprocessing.json, applied by preprocess.js: raw inputs, "
                "missing numbers become the train mean" if fmt == "tfjs" else
                "in the model: raw inputs, missing numbers become the train mean",
                # What ties the model to TensorFlow, if anything (else Keras' three backends).
                "backend_notes": backend_notes(doc),
            },
        )
        swap_in(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    records.record(workspace.root, final, f"export of run {info['id']} as {_label(fmt, quantize)}")
    return final


def _label(fmt: str, quantize: str | None) -> str:
    return fmt + (f" ({quantize})" if quantize else "")


# The gate: the run's test report


def check_gate(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Whether the run passed its tests, from `<run>/test/report.json`.

    Returns {"passed", "reason" (one line naming the run and what failed, None when passed),
    "test" ({passed, summary, created} of the report, or None), "gates" (the report's gates,
    with its failed checks)}.
    """
    folder = Path(run_dir)
    run_id = folder.name
    path = folder / REPORT
    if not path.is_file():
        return {
            "passed": False,
            "reason": f"Run '{run_id}' has no test report; run `layerflow test {run_id}` first",
            "test": None,
            "gates": None,
        }
    try:
        report = json.loads(path.read_text())
        passed = report["passed"]
        results = (report.get("gates") or {}).get("results") or []
        checks = report.get("checks") or []
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        return {
            "passed": False,
            "reason": f"Run '{run_id}': {REPORT} cannot be read ({type(err).__name__}: {err}); "
            f"run `layerflow test {run_id}` again",
            "test": None,
            "gates": None,
        }
    failed_gates = [_gate_text(result) for result in results if not result.get("passed")]
    # a check with passed None was skipped or is informational: not a failure
    failed_checks = [str(check.get("name")) for check in checks if check.get("passed") is False]
    reason = None
    if passed is not True:
        named = [f"gate {text}" for text in failed_gates] + [f"check {c}" for c in failed_checks]
        reason = f"Run '{run_id}' did not pass its tests ({', '.join(named) or 'passed: false'})"
    return {
        "passed": passed is True,
        "reason": reason,
        "test": {
            "passed": passed,
            "summary": report.get("summary", {}),
            "created": report.get("created"),
        },
        "gates": {
            "passed": (report.get("gates") or {}).get("passed"),
            "results": results,
            "failed_checks": failed_checks,
        },
    }


def _gate_text(result: dict[str, Any]) -> str:
    """'accuracy >= 0.9 (actual 0.612)'."""
    actual = result.get("actual")
    shown = f"{actual:.4g}" if isinstance(actual, int | float) else str(actual)
    return f"{result.get('metric')} {result.get('op')} {result.get('value')} (actual {shown})"


# A run's model of raw data


def run_predictor(run: str | os.PathLike, which: str = "best", compiled: bool = False):
    """LayerFlow's Predictor of a run: its best (or last) checkpoint behind its dataset's
    preprocessing, taking raw inputs (one per table column, or the decoded image, or the text)
    or rows of a data set (`Predictor.predict_rows`) and giving what the trained model gives;
    `compiled` as Predictor.of_model takes it.

    Raises ExportError when the dataset is no longer at the version the run was trained on.
    """
    from app.graph.document import load
    from app.keras import builder
    from app.runtime.predictor import Predictor

    workspace = Workspace.current()
    folder = workspace.run(run)
    config, state = _dataset_of(workspace, folder).preprocessing()
    trained = builder.load_run_model(folder, which)
    model = _with_preprocessing(trained, load(folder / runs.GRAPH), config, state)
    return Predictor.of_model(model, config, state, compiled=compiled)


def _with_preprocessing(trained, doc, config, state):
    """The trained model behind the preprocessing, its inputs and outputs named by the graph's
    Input and Output nodes."""
    from app.runtime.serving import with_preprocessing

    inputs = [node.id for node in doc.nodes if node.component == "Input"]
    outputs = [node.id for node in doc.nodes if node.component == "Output"]
    return with_preprocessing(trained, config, state, inputs, outputs)


def _dataset_of(workspace: Workspace, folder: Path):
    """The run's dataset, at the version the run was trained on."""
    try:
        return workspace.dataset_of_run(folder)
    except ValueError as err:  # DataError
        raise ExportError(str(err)) from None
