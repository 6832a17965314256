"""The test suite of a trained run: metrics on the held-out test split, production checks,
explanations and gates, written as a report into the run directory.

A test runs in its own process (`python -m app.evaluate.tester RUN_DIR`, see app.evaluate.tester),
which `start_test` starts; the caller, the pages and the CLI read its folder, `<run>/test/`:

  settings.json  the TestSettings
  status.json    state (queued, running, finished, failed), pid, progress (0..1), step, reason
  tester.log     the tester's standard output and error
  report.json    the report, replaced whole when a test finishes (a failed test leaves the
                 previous one in place)
  report.html    the same report as one self-contained page (app.evaluate.report)

The suite tests the run's best checkpoint on the test split of the dataset (and dataset
version) it was trained on. The task comes from the dataset: binary and multiclass are
classification, regression and forecasting are regression, segmentation is segmentation; a
run whose graph reconstructs its Input (an autoencoder) is anomaly detection, scored by
reconstruction error against a threshold set on normal validation rows (app.evaluate.anomaly).
report.json holds:

  run, model, task, kind, created, checkpoint ("best"), checkpoint_state (its epoch), data
  {name, version, split, rows}, output (the Output node tested), settings, duration_s
  summary       metric name -> number: the task's metrics (`settings.gate_metrics` names
                them; one that cannot be computed on the split, such as roc_auc without
                both classes, is left out)
  metrics       the task's detail: per-class table, confusion matrix, ROC and precision-recall
                curves, calibration; residuals and predicted against actual; IoU and Dice
  baselines     simple models scored on the same test split, beside the model, on its headline
                metric (accuracy, r2 or mean_iou; app.evaluate.baselines): metric, model,
                model_metrics, results [{name, value, metrics, detail, skipped}], best,
                best_value, margin (the model's metric minus the best baseline's), fit or
                season
  samples       best, worst and misclassified: lists of {index (the row in the dataset),
                target, prediction, confidence, loss, values (the row as read), image (a
                base64 PNG of an image input), mask and target_mask (segmentation)}
  explanations  {method, detail} and, by method, "saliency": [{index, target, prediction,
                input, image (the map over the input), caption}] for image inputs, or
                "permutation_importance": [{feature, importance, std, columns}] (with metric,
                baseline, repeats, rows) for tabular ones
  performance   latency per sample and per batch (p50, p95 in ms), model size
  checks        production checks, each {name, passed (true, false, or null when not run),
                value, detail, informational}
  gates         {passed, results: [{metric, op, value, actual, passed, detail}]}
  passed        the gates passed and no production check failed (informational ones, such as
                latency and size, never fail a report)

Gates are thresholds a user sets per model, kept in `models/<model>/gates.json`; `layerflow
export` refuses a run whose report is missing or did not pass.

The suite's parts live beside it in app.evaluate: settings (TestSettings, gates and the metric
names), subject and predictions (the run tested and what its model made of the test split),
classification, regression and segmentation (the metrics of each task), baselines (simple
models beside the model), samples and images
(the samples shown and their pictures), checks (the production checks) and explain (saliency
maps and permutation importance). This module runs them and owns the test folder.

Importing this module does not import TensorFlow; the functions that need it import it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.evaluate.anomaly import anomaly_metrics, error_threshold
from app.evaluate.baselines import compute_baselines
from app.evaluate.checks import behaviour_checks, measure_performance, parity_checks
from app.evaluate.classification import classification_metrics
from app.evaluate.explain import explain
from app.evaluate.predictions import BATCH, Predictions, predict_split
from app.evaluate.regression import regression_metrics
from app.evaluate.samples import choose_samples
from app.evaluate.segmentation import segmentation_metrics
from app.evaluate.settings import (
    TestSettings,
    check_gates,
    evaluate_gates,
    known_metrics,
    load_gates,
    report_passed,
)
from app.evaluate.subject import Subject
from app.files import atomic_write_text
from app.jsonable import json_ready
from app.workspace import Workspace, runs
from app.workspace.runs import RunError

TEST_DIR = runs.TEST_DIR
SETTINGS, STATUS, LOG = "settings.json", "status.json", "tester.log"
REPORT_JSON, REPORT_HTML = "report.json", "report.html"
ACTIVE = ("queued", "running")
START_SECONDS = 60  # a test queued this long without a process never started
Progress = Callable[[float, str], None]


# The suite


def run_suite(
    run: str | os.PathLike,
    settings: TestSettings | dict[str, Any] | None = None,
    progress: Progress | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Test a run's best checkpoint on its dataset's test split, in this process, and write
    report.json and report.html into `<run>/test/` (a staging folder renamed into place).

    Raises RunError when the run cannot be tested (no best checkpoint, its dataset gone or at
    another version, no test rows) and ValueError for invalid settings or a gate on an unknown
    metric.

    Args:
        settings: TestSettings, or a dict of them; None for the defaults.
        progress: called with (fraction done, step) as the suite goes.
        write: False returns the report without writing it.
    """
    started = time.time()
    settings = TestSettings.from_value(settings)
    say = progress or (lambda fraction, step: None)
    say(0.01, "checking the run")
    subject = Subject.of(run)
    subject.source = subject.dataset.source()
    gates = settings.gates if settings.gates is not None else load_gates(subject.info["model"])
    check_gates(gates, known_metrics(subject.kind, len(subject.classes), settings.top_k))

    say(0.03, "loading the best checkpoint")
    from app.keras.builder import load_run_model

    model = load_run_model(subject.folder, "best")
    say(0.08, "predicting the test split")
    predictions = predict_split(
        model, subject, lambda done: say(0.08 + 0.37 * done, "predicting the test split")
    )
    say(0.45, "computing the metrics")
    summary, metrics = _metrics(subject, predictions, settings)
    say(0.47, "computing the baselines")
    baselines = compute_baselines(subject, predictions, summary, settings.seed)
    say(0.5, "choosing samples")
    samples = choose_samples(subject, predictions, settings)

    checks: list[dict[str, Any]] = []
    first = predictions.inputs.take(range(min(BATCH, len(predictions.rows))))
    say(0.55, "production checks")
    checks += behaviour_checks(model, first, settings)
    say(0.6, "measuring latency")
    performance, latency_checks = measure_performance(model, first, subject, settings)
    checks += latency_checks
    say(0.65, "export parity")
    checks += parity_checks(model, first, settings)
    say(0.85, "explanations")
    explanations = (
        explain(model, subject, predictions, settings)
        if settings.explanations
        else {"method": None, "detail": "explanations are off in the settings"}
    )
    report: dict[str, Any] = {
        "run": subject.run_id,
        "model": subject.info["model"],
        "task": subject.task,
        "kind": subject.kind,
        "created": time.time(),
        "checkpoint": "best",
        "checkpoint_state": _checkpoint_state(subject.folder),
        "data": {
            "name": subject.dataset.name,
            "version": subject.dataset.version,
            "split": "test",
            "rows": len(subject.rows),
            "samples": len(predictions.rows),
        },
        "output": {"node": subject.output, "activation": subject.activation},
        "settings": settings.to_dict(),
        "summary": summary,
        "metrics": metrics,
        "baselines": baselines,
        "samples": samples,
        "explanations": explanations,
        "performance": performance,
        "checks": checks,
    }
    report["gates"] = evaluate_gates(report, gates)
    report["passed"] = report_passed(report)
    report["duration_s"] = round(time.time() - started, 3)
    report = json_ready(report)
    if write:
        say(0.95, "writing the report")
        write_report(subject.folder, report)
    say(1.0, "done")
    return report


def _checkpoint_state(folder: Path) -> dict[str, Any] | None:
    path = folder / runs.CHECKPOINTS / runs.CHECKPOINT_STATE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _metrics(
    subject: Subject, predictions: Predictions, settings: TestSettings
) -> tuple[dict[str, float], dict[str, Any]]:
    if subject.kind == "classification":
        return classification_metrics(
            predictions.targets, predictions.outputs, subject.classes, settings.top_k
        )
    if subject.kind == "regression":
        return regression_metrics(
            predictions.targets,
            predictions.outputs,
            settings.max_points,
            settings.seed,
            rows=predictions.rows,
        )
    if subject.kind == "anomaly":
        return _anomaly_metrics(subject, predictions, settings)
    return segmentation_metrics(predictions.confusion, subject.classes)


def _anomaly_metrics(
    subject: Subject, predictions: Predictions, settings: TestSettings
) -> tuple[dict[str, float], dict[str, Any]]:
    """An autoencoder's metrics: the threshold set on normal validation rows, the test rows'
    errors against it and, with labels, against the rows that are not of the normal class."""
    normal = predictions.extra["normal_errors"]
    threshold = error_threshold(normal["errors"], settings.anomaly_percentile)
    predictions.extra["threshold"] = threshold  # the samples say which rows it flags
    anomalous = None
    if normal["normal"] is not None:
        anomalous = predictions.targets != subject.classes.index(normal["normal"])
    summary, detail = anomaly_metrics(predictions.outputs, anomalous, threshold)
    detail.update(
        percentile=settings.anomaly_percentile,
        threshold_split=normal["split"],
        threshold_rows=normal["rows"],
        normal_class=normal["normal"],
    )
    return summary, detail


# The report on disk


def test_dir(run: str | os.PathLike) -> Path:
    """The run's test folder, <run>/test/."""
    return Workspace.current().run(run) / TEST_DIR


def write_report(run: str | os.PathLike, report: dict[str, Any]) -> Path:
    """Write report.json and report.html into <run>/test/: both are written whole into a
    staging folder first, then renamed into place (the page first, so that a new report.json
    always has its page)."""
    from app.evaluate.report import render

    folder = test_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_ready(report), indent=2, allow_nan=False) + "\n"
    page = render(report)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    try:
        atomic_write_text(staging / REPORT_HTML, page)
        atomic_write_text(staging / REPORT_JSON, text)
        os.replace(staging / REPORT_HTML, folder / REPORT_HTML)
        os.replace(staging / REPORT_JSON, folder / REPORT_JSON)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / REPORT_JSON


def read_report(run: str | os.PathLike) -> dict[str, Any] | None:
    """The run's last report, or None when it has not been tested."""
    path = test_dir(run) / REPORT_JSON
    return json.loads(path.read_text()) if path.exists() else None


# The tester process and its status


def _status_path(folder: Path) -> Path:
    return folder / TEST_DIR / STATUS


def update_status(run_dir: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge fields into <run>/test/status.json (atomically, one writer at a time)."""
    return runs.update_status(Path(run_dir) / TEST_DIR, **fields)


def test_status(run: str | os.PathLike) -> dict[str, Any]:
    """The state of the run's test: state (None when never tested; queued, running, finished
    or failed), progress (0..1), step, reason, pid, passed. A test whose process ended
    without saying so reads as failed."""
    folder = Workspace.current().run(run)
    path = _status_path(folder)
    if not path.exists():
        return {"state": None, "progress": 0.0, "step": None, "reason": None}
    current = json.loads(path.read_text())
    pid = current.get("pid")
    if current.get("state") not in ACTIVE:
        return current
    if pid is not None and not runs.alive(pid, current.get("pid_started")):
        reason = f"the tester process (pid {pid}) ended without finishing; see {LOG}"
    elif pid is None and time.time() - current.get("started", 0) > START_SECONDS:
        reason = "the tester process never started"
    else:
        return current
    return {**current, "state": "failed", "reason": reason}


def start_test(
    run: str | os.PathLike, settings: TestSettings | dict[str, Any] | None = None
) -> subprocess.Popen:
    """Start testing a run in its own process (`python -m app.evaluate.tester RUN_DIR`, in its own
    session, so that it outlives the caller); returns the process.

    What keeps the run from being tested (no best checkpoint, its dataset gone, a gate on an
    unknown metric, a test already running) is raised here, before anything starts.
    """
    workspace = Workspace.current()
    folder = workspace.run(run)
    settings = TestSettings.from_value(settings)
    subject = Subject.of(folder)
    gates = settings.gates if settings.gates is not None else load_gates(subject.info["model"])
    check_gates(gates, known_metrics(subject.kind, len(subject.classes), settings.top_k))
    test = folder / TEST_DIR
    with runs.status_lock(folder / TEST_DIR):  # two launchers cannot both find it idle
        current = test_status(folder)
        if current["state"] in ACTIVE:
            raise RunError(
                [f"Run '{subject.run_id}' is being tested already (pid {current.get('pid')})"]
            )
        atomic_write_text(test / SETTINGS, json.dumps(settings.to_dict(), indent=2) + "\n")
        queued = {
            "state": "queued",
            "progress": 0.0,
            "step": "starting",
            "reason": None,
            "pid": None,
            "pid_started": None,
            "passed": None,
            "started": time.time(),
        }
        runs.merge_status(folder / TEST_DIR, queued)
    process, started = runs.spawn(workspace.root, "app.evaluate.tester", folder, test / LOG)
    # The tester writes the same pid when it starts; whichever comes first, both agree.
    update_status(folder, pid=process.pid, pid_started=started)
    return process


__all__ = [
    "read_report",
    "run_suite",
    "start_test",
    "test_dir",
    "test_status",
    "write_report",
]
