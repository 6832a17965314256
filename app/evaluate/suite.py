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
classification, regression and forecasting are regression, segmentation is segmentation.
report.json holds:

  run, model, task, kind, created, checkpoint ("best"), checkpoint_state (its epoch), data
  {name, version, split, rows}, output (the Output node tested), settings, duration_s
  summary       metric name -> number: the task's metrics (`gate_metrics` names them; one that
                cannot be computed on the split, such as roc_auc without both classes, is
                left out)
  metrics       the task's detail: per-class table, confusion matrix, ROC and precision-recall
                curves, calibration; residuals and predicted against actual; IoU and Dice
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

Importing this module does not import TensorFlow; the functions that need it import it.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.data.profile import json_ready
from app.files import atomic_write_text, locked
from app.workspace import inside, runs, workspace_root
from app.workspace.runs import RunError

TEST_DIR = "test"
SETTINGS, STATUS, LOG = "settings.json", "status.json", "tester.log"
REPORT_JSON, REPORT_HTML = "report.json", "report.html"
GATES = "gates.json"
STATES = ("queued", "running", "finished", "failed")
ACTIVE = ("queued", "running")
START_SECONDS = 60  # a test queued this long without a process never started

KINDS = {
    "binary": "classification",
    "multiclass": "classification",
    "regression": "regression",
    "forecasting": "regression",
    "segmentation": "segmentation",
}
CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "f1_weighted",
    "roc_auc",
    "average_precision",
    "log_loss",
    "ece",
)
TOP_K_METRIC = "top_k_accuracy"
REGRESSION_METRICS = ("mae", "mse", "rmse", "r2")
SEGMENTATION_METRICS = ("mean_iou", "mean_dice", "pixel_accuracy")
PERFORMANCE_METRICS = ("latency_p50_ms", "latency_p95_ms", "model_size_mb")
ALL_METRICS = (
    *CLASSIFICATION_METRICS,
    TOP_K_METRIC,
    *REGRESSION_METRICS,
    *SEGMENTATION_METRICS,
    *PERFORMANCE_METRICS,
)
PARITY_FORMATS = ("savedmodel", "tflite", "onnx")

BATCH = 64  # predictions on the test split, and the batch of the batch checks
BATCH_ATOL, BATCH_RTOL = 1e-4, 1e-5
CALIBRATION_BINS = 10
CURVE_POINTS = 200  # points kept per ROC or precision-recall curve
HISTOGRAM_BINS = 30
HOLD_BYTES = 256 * 2**20  # test inputs up to this size stay in memory; larger are read again
THUMBNAIL = 96  # small images are scaled up (nearest) to about this many pixels a side
THUMBNAIL_MAX = 160
EPSILON = 1e-12
Progress = Callable[[float, str], None]


# Settings and gates


def _setting(default: Any, expected: str, help_text: str, **constraints: Any) -> Any:
    """A field whose error message says what it expects, in Keras' words."""
    return Field(
        default, description=help_text, json_schema_extra={"expected": expected}, **constraints
    )


def _invalid(name: str, expected: str, value: Any) -> str:
    return (
        f"Received an invalid value for `{name}`, expected {expected}. Received: {name}={value!r}"
    )


class Gate(BaseModel):
    """A threshold a report must meet: `metric op value`, such as accuracy >= 0.9.

    Args:
        metric: a key of the report's summary (accuracy, f1_macro, r2, mae, mean_iou, ...)
            or latency_p50_ms, latency_p95_ms, model_size_mb.
        op: ">=" (at least) or "<=" (at most).
        value: the threshold, a finite number.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    op: Literal[">=", "<="]
    value: float

    def __init__(self, metric: Any = None, op: Any = None, value: Any = None) -> None:
        # Checked here, so that a bad gate reads like a Keras error, not a pydantic report.
        if not isinstance(metric, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", metric):
            raise ValueError(_invalid("metric", "a metric name such as accuracy", metric))
        if op not in (">=", "<="):
            raise ValueError(_invalid("op", "'>=' or '<='", op))
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(_invalid("value", "a finite number", value))
        super().__init__(metric=metric, op=op, value=float(value))

    @classmethod
    def parse(cls, text: str) -> Gate:
        """'accuracy>=0.9' -> Gate('accuracy', '>=', 0.9)."""
        found = re.fullmatch(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*(>=|<=)\s*(\S+)\s*", text)
        value = None
        if found:
            try:
                value = float(found.group(3))
            except ValueError:
                value = None
        if value is None or not math.isfinite(value):
            raise ValueError(
                _invalid("gate", "METRIC>=VALUE or METRIC<=VALUE (e.g. accuracy>=0.9)", text)
            )
        return cls(found.group(1).lower(), found.group(2), value)  # type: ignore[union-attr]

    def holds(self, actual: float) -> bool:
        return actual >= self.value if self.op == ">=" else actual <= self.value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class TestSettings(BaseModel):
    """What the test suite does. Every field has a default, so `TestSettings()` is usable."""

    __test__ = False  # not a pytest test class
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    top_k: int = _setting(
        3, "an integer >= 1", "Top-k accuracy's k (computed when there are more classes).", ge=1
    )
    samples: int = _setting(
        8,
        "an integer in [0, 100]",
        "Best and worst samples shown (each); up to twice as many misclassified ones.",
        ge=0,
        le=100,
    )
    latency_repeats: int = _setting(
        20, "an integer in [1, 10000]", "Timed predictions per latency measure.", ge=1, le=10_000
    )
    parity_formats: list[Literal["savedmodel", "tflite", "onnx"]] = _setting(
        list(PARITY_FORMATS),
        f"a list of {', '.join(PARITY_FORMATS)} (empty: no export parity check)",
        "Export formats whose predictions are compared with the Keras model's (slow).",
    )
    gates: list[Gate] | None = _setting(
        None,
        "a list of gates {metric, op, value} or null",
        "The gates of this test; null: the model's saved gates.",
    )
    nan_check: bool = _setting(True, "true or false", "Predict on inputs holding NaN and inf.")
    batch_check: bool = _setting(
        True, "true or false", "Compare predictions made one by one with a batch's."
    )
    determinism_check: bool = _setting(
        True, "true or false", "Predict the same batch twice and compare."
    )
    latency_check: bool = _setting(
        True, "true or false", "Time predictions of one sample and of a batch."
    )
    explanations: bool = _setting(
        True,
        "true or false",
        "Saliency maps for image inputs, permutation importance for tabular ones.",
    )
    explain_samples: int = _setting(
        4, "an integer in [0, 32]", "Samples given a saliency map.", ge=0, le=32
    )
    importance_repeats: int = _setting(
        5, "an integer in [1, 100]", "Permutations per feature.", ge=1, le=100
    )
    max_points: int = _setting(
        2000,
        "an integer in [10, 100000]",
        "Most points kept for charts, and rows used for permutation importance.",
        ge=10,
        le=100_000,
    )
    seed: int = _setting(0, "an integer >= 0", "Seed of the permutations and point samples.", ge=0)

    @classmethod
    def from_value(cls, value: TestSettings | dict[str, Any] | None) -> TestSettings:
        """Validated settings from settings, a dict (as in JSON) or None (the defaults);
        ValueError with one Keras-like message per fault."""
        if isinstance(value, TestSettings):
            return value
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise ValueError(
                f"Test settings must be a JSON object. Received: {type(value).__name__}"
            )
        data = dict(value)
        if data.get("gates") is not None:  # gates come as dicts in JSON
            data["gates"] = [_gate(item) for item in data["gates"]]
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ValueError("\n".join(_messages(err, data))) from None

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["gates"] = None if self.gates is None else [g.model_dump() for g in self.gates]
        return data


def _gate(item: Any) -> Gate:
    if isinstance(item, Gate):
        return item
    if isinstance(item, str):
        return Gate.parse(item)
    if isinstance(item, dict) and set(item) == {"metric", "op", "value"}:
        return Gate(item["metric"], item["op"], item["value"])
    raise ValueError(
        _invalid("gates", "a list of {metric, op, value} or 'accuracy>=0.9' strings", item)
    )


def _messages(err: ValidationError, data: dict[str, Any]) -> list[str]:
    fields = TestSettings.model_fields
    messages = []
    for error in err.errors():
        name = str(error["loc"][0]) if error["loc"] else None
        if error["type"] == "extra_forbidden":
            messages.append(f"Unknown test setting `{name}`; the settings are: {', '.join(fields)}")
        elif name in fields:
            expected = (fields[name].json_schema_extra or {})["expected"]
            messages.append(_invalid(name, expected, data.get(name)))
        else:
            messages.append(str(error["msg"]).removeprefix("Value error, "))
    return list(dict.fromkeys(messages))


def gates_path(model: str, root: Path | None = None) -> Path:
    """Where a model's gates live: models/<model-slug>/gates.json."""
    return inside(runs.models_dir(root or workspace_root()), runs.model_slug(model), GATES)


def load_gates(model: str, root: Path | None = None) -> list[Gate]:
    """The gates saved for a model (its slug or name); none when it has none."""
    path = gates_path(model, root)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [_gate(item) for item in data["gates"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a gates file ({err})") from None


def save_gates(model: str, gates: Sequence[Gate], root: Path | None = None) -> Path:
    """Save a model's gates (replacing any it had); an unknown metric is refused."""
    gates = [_gate(g) for g in gates]
    check_gates(gates, ALL_METRICS)
    data = {"gates": [g.model_dump() for g in gates], "updated": time.time()}
    return atomic_write_text(gates_path(model, root), json.dumps(data, indent=2) + "\n")


def check_gates(gates: Sequence[Gate], known: Sequence[str]) -> None:
    """Raise ValueError for a gate whose metric is not one of `known`, naming them."""
    for gate in gates:
        if gate.metric not in known:
            raise ValueError(
                f"Received an unknown gate metric `{gate.metric}`, expected one of "
                f"{', '.join(known)}. Received: metric={gate.metric!r}"
            )


def known_metrics(kind: str, classes: int = 0, top_k: int = 3) -> list[str]:
    """The metric names a gate can use for a task kind (classification, regression,
    segmentation) with `classes` classes."""
    task = {
        "classification": list(CLASSIFICATION_METRICS)
        + ([TOP_K_METRIC] if classes > top_k else []),
        "regression": list(REGRESSION_METRICS),
        "segmentation": list(SEGMENTATION_METRICS),
    }[kind]
    return task + list(PERFORMANCE_METRICS)


def gate_metrics(run: str | os.PathLike, settings: TestSettings | dict | None = None) -> list[str]:
    """The metric names a gate can use for this run's report."""
    settings = TestSettings.from_value(settings)
    subject = _Subject.of(run)
    return known_metrics(subject.kind, len(subject.classes), settings.top_k)


def evaluate_gates(report: dict[str, Any], gates: Sequence[Gate]) -> dict[str, Any]:
    """{passed, results} of the gates against a report's summary and performance; an unknown
    metric is a ValueError naming the known ones."""
    metrics = report.get("metrics", {})
    check_gates(
        gates,
        known_metrics(report["kind"], len(metrics.get("classes", [])), metrics.get("top_k", 3)),
    )
    values = {**report.get("summary", {}), **_performance_values(report.get("performance", {}))}
    results = []
    for gate in gates:
        actual = values.get(gate.metric)
        if actual is None:
            passed = False
            detail = f"{gate.metric} was not measured in this test"
        else:
            passed = gate.holds(actual)
            detail = f"{gate.metric} is {actual:.6g}, {'meets' if passed else 'misses'} {gate}"
        results.append({**gate.model_dump(), "actual": actual, "passed": passed, "detail": detail})
    return {"passed": all(r["passed"] for r in results), "results": results}


def apply_gates(report: dict[str, Any], gates: Sequence[Gate]) -> dict[str, Any]:
    """The report judged by other gates: its gates and passed replaced."""
    judged = {**report, "gates": evaluate_gates(report, gates)}
    judged["passed"] = _passed(judged)
    return judged


def _performance_values(performance: dict[str, Any]) -> dict[str, float]:
    return {k: performance[k] for k in PERFORMANCE_METRICS if performance.get(k) is not None}


def _passed(report: dict[str, Any]) -> bool:
    checks_pass = all(
        check["passed"] is not False for check in report["checks"] if not check["informational"]
    )
    return bool(report["gates"]["passed"] and checks_pass)


# What is tested


@dataclass
class _Subject:
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

    @classmethod
    def of(cls, run: str | os.PathLike) -> _Subject:
        """The run's subject, or RunError when it cannot be tested."""
        from app.data import store
        from app.graph.components import CATALOGUE
        from app.graph.document import load

        folder = runs.find_run(run)
        info = json.loads((folder / runs.RUN).read_text())
        name = f"Run '{info['id']}'"
        if not (folder / runs.CHECKPOINTS / runs.BEST).exists():
            raise RunError([f"{name} has no best checkpoint yet; test it after an epoch"])
        data, version = info["data"]["name"], info["data"]["version"]
        try:
            dataset = store.get(data)
        except ValueError:
            raise RunError(
                [
                    f"{name} was trained on dataset '{data}', which is no longer in the "
                    "workspace; add it again under that name to test the run"
                ]
            ) from None
        if dataset.version != version:
            raise RunError(
                [
                    f"{name} was trained on version {str(version)[:10]} of dataset '{data}', "
                    f"which is now at {str(dataset.version)[:10]}; restore it with "
                    f"`layerflow data restore {data} {str(version)[:10]}`"
                ]
            )
        task = dataset.meta.get("task")
        if task not in KINDS:
            raise RunError([f"{name}: dataset '{data}' has task {task!r}; nothing to test"])
        rows = sorted(int(i) for i in dataset.splits.get("test", []))
        if not rows:
            raise RunError([f"{name}: dataset '{data}' has no rows in its test split"])
        config, state = dataset.preprocessing()
        kind = KINDS[task]
        if kind == "classification":
            classes = list(state.classes or dataset.meta["profile"].get("classes") or [])
        elif kind == "segmentation":
            classes = [str(v) for v in state.mask_values or []]
        else:
            classes = []
        doc = load(folder / runs.GRAPH)
        outputs = [node for node in doc.nodes if node.component == "Output"]
        output = outputs[0]
        activation = CATALOGUE["Output"].resolve(output.settings)[0].get("activation") or "linear"
        return cls(
            folder, info, dataset, config, state, task, kind, classes, rows, output.id, activation
        )

    @property
    def run_id(self) -> str:
        return self.info["id"]

    @property
    def probabilities(self) -> bool:
        """Whether the Output gives probabilities (else logits, made probabilities here)."""
        return self.activation in ("softmax", "sigmoid")


@dataclass
class _Inputs:
    """The test split's model inputs by data name: held in memory when small, read again from
    the data for the rows asked for when not."""

    subject: _Subject
    positions_rows: list[int]  # row number of each position (each window, with a window)
    held: dict[str, np.ndarray] | None = None

    def take(self, positions: Sequence[int]) -> dict[str, np.ndarray]:
        positions = [int(p) for p in positions]
        if self.held is not None:
            return {name: values[positions] for name, values in self.held.items()}
        from app.runtime.preprocessing import transform

        order = sorted(set(positions))
        inputs, _ = transform(
            self.subject.config,
            self.subject.state,
            self.subject.source,
            [self.positions_rows[p] for p in order],
        )
        where = [order.index(p) for p in positions]
        return {name: values[where] for name, values in inputs.items()}


@dataclass
class _Predictions:
    """What the model made of the test split, position by position."""

    rows: list[int]
    targets: np.ndarray  # class ids (n,), values (n, k), or masks (n, h, w)
    outputs: np.ndarray | None = None  # classification probabilities, regression values
    masks: np.ndarray | None = None  # segmentation: predicted class ids (n, h, w)
    losses: np.ndarray | None = None  # per sample: the loss that orders best and worst
    confidence: np.ndarray | None = None  # segmentation: mean top probability per image
    pixel_accuracy: np.ndarray | None = None
    confusion: np.ndarray | None = None  # segmentation: pixel confusion matrix
    inputs: _Inputs | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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
    subject = _Subject.of(run)
    subject.source = subject.dataset.source()
    gates = settings.gates if settings.gates is not None else load_gates(subject.info["model"])
    check_gates(gates, known_metrics(subject.kind, len(subject.classes), settings.top_k))

    say(0.03, "loading the best checkpoint")
    from app.keras.builder import load_run_model

    model = load_run_model(subject.folder, "best")
    say(0.08, "predicting the test split")
    predictions = _predict_split(
        model, subject, lambda done: say(0.08 + 0.37 * done, "predicting the test split")
    )
    say(0.45, "computing the metrics")
    summary, metrics = _metrics(subject, predictions, settings)
    say(0.5, "choosing samples")
    samples = _samples(subject, predictions, settings)

    checks: list[dict[str, Any]] = []
    first = predictions.inputs.take(range(min(BATCH, len(predictions.rows))))
    say(0.55, "production checks")
    checks += _behaviour_checks(model, first, settings)
    say(0.6, "measuring latency")
    performance, latency_checks = _performance(model, first, subject, settings)
    checks += latency_checks
    say(0.65, "export parity")
    checks += _parity_checks(model, first, settings)
    say(0.85, "explanations")
    explanations = (
        _explanations(model, subject, predictions, settings)
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
        "samples": samples,
        "explanations": explanations,
        "performance": performance,
        "checks": checks,
    }
    report["gates"] = evaluate_gates(report, gates)
    report["passed"] = _passed(report)
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


def _feed(model, inputs: dict[str, np.ndarray]) -> Any:
    """The model's input: its one input as an array, or a dict by Input name."""
    names = [tensor.name for tensor in model.inputs]
    if len(names) == 1 and len(inputs) == 1:
        return next(iter(inputs.values()))
    return {name: inputs[name] for name in names}


def _first_output(outputs: Any) -> np.ndarray:
    """The first Output's prediction, as NumPy."""
    if isinstance(outputs, dict):
        outputs = next(iter(outputs.values()))
    elif isinstance(outputs, list | tuple):
        outputs = outputs[0]
    return np.asarray(outputs)


def _predict(model, inputs: dict[str, np.ndarray], batch: int = 1024) -> np.ndarray:
    """The first output for inputs held in memory, a batch at a time."""
    count = len(next(iter(inputs.values())))
    parts = [
        _first_output(
            model.predict_on_batch(
                _feed(model, {k: v[start : start + batch] for k, v in inputs.items()})
            )
        )
        for start in range(0, count, batch)
    ]
    return np.concatenate(parts)


def _probabilities(values: np.ndarray, from_logits: bool) -> np.ndarray:
    """Class probabilities on the last axis: one sigmoid unit becomes two columns."""
    values = values.astype(np.float64)
    if values.shape[-1] == 1:
        positive = 1 / (1 + np.exp(-values[..., 0])) if from_logits else values[..., 0]
        positive = np.clip(positive, 0.0, 1.0)
        return np.stack([1 - positive, positive], axis=-1)
    if from_logits:
        shifted = np.exp(values - values.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return values


def _predict_split(model, subject: _Subject, done: Callable[[float], None]) -> _Predictions:
    """Predict the test split a batch at a time, keeping only what the report needs."""
    from sklearn.metrics import confusion_matrix

    from app.keras.pipeline import make_dataset
    from app.runtime.preprocessing import input_spec, window_starts

    config, state = subject.config, subject.state
    rows = subject.rows
    if config.window is not None:
        rows = [subject.rows[p] for p in window_starts(config, subject.rows)]
    per_sample = sum(
        int(np.prod(shape)) * (8 if dtype == "int64" else 4)
        for shape, dtype in input_spec(config, state).values()
    )
    hold = config.window is not None or per_sample * len(rows) <= HOLD_BYTES
    dataset = make_dataset(config, state, subject.source, subject.rows, batch_size=BATCH)
    held: dict[str, list[np.ndarray]] = {}
    targets, outputs, masks, losses, confidence, accuracy = [], [], [], [], [], []
    classes = max(len(subject.classes), 2)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    total = max(1, math.ceil(len(rows) / BATCH))
    for step, (x, y) in enumerate(dataset):
        x = {name: np.asarray(values) for name, values in x.items()}
        y = np.asarray(y)
        if hold:
            for name, values in x.items():
                held.setdefault(name, []).append(values)
        out = _first_output(model.predict_on_batch(_feed(model, x)))
        if subject.kind == "segmentation":
            probs = _probabilities(out, not subject.probabilities)
            predicted = probs.argmax(axis=-1)
            true = y.astype(np.int64)
            confusion += confusion_matrix(
                true.ravel(), predicted.ravel(), labels=list(range(classes))
            )
            p_true = np.take_along_axis(probs, np.clip(true, 0, classes - 1)[..., None], -1)
            losses.append(-np.log(np.clip(p_true[..., 0], EPSILON, 1)).mean(axis=(1, 2)))
            confidence.append(probs.max(axis=-1).mean(axis=(1, 2)))
            accuracy.append((predicted == true).mean(axis=(1, 2)))
            masks.append(predicted.astype(np.uint8 if classes <= 256 else np.int32))
            targets.append(true.astype(np.uint8 if classes <= 256 else np.int32))
        else:
            outputs.append(out)
            targets.append(y)
        done((step + 1) / total)
    predictions = _Predictions(rows=rows, targets=np.concatenate(targets))
    if subject.kind == "segmentation":
        predictions.masks = np.concatenate(masks)
        predictions.losses = np.concatenate(losses)
        predictions.confidence = np.concatenate(confidence)
        predictions.pixel_accuracy = np.concatenate(accuracy)
        predictions.confusion = confusion
    elif subject.kind == "classification":
        values = np.concatenate(outputs)
        probs = _probabilities(values.reshape(len(values), -1), not subject.probabilities)
        predictions.outputs = probs
        true = predictions.targets.astype(np.int64).reshape(-1)
        predictions.targets = true
        p_true = probs[np.arange(len(true)), np.clip(true, 0, probs.shape[1] - 1)]
        predictions.losses = -np.log(np.clip(p_true, EPSILON, 1))
    else:
        values = np.concatenate(outputs).astype(np.float64)
        predictions.outputs = values.reshape(len(values), -1)
        predictions.targets = predictions.targets.astype(np.float64).reshape(len(values), -1)
        predictions.losses = np.abs(predictions.outputs - predictions.targets).mean(axis=1)
    predictions.inputs = _Inputs(
        subject, rows, {k: np.concatenate(v) for k, v in held.items()} if hold else None
    )
    return predictions


# Metrics


def _metrics(
    subject: _Subject, predictions: _Predictions, settings: TestSettings
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
    return segmentation_metrics(predictions.confusion, subject.classes)


def classification_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    top_k: int = 3,
    bins: int = CALIBRATION_BINS,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Summary and detail of a classifier's predictions, with scikit-learn.

    Args:
        y_true: class ids (n,).
        probabilities: (n, classes) class probabilities.
        classes: the class names, in id order.
        top_k: top-k accuracy's k; computed when there are more than k classes.
        bins: the calibration bins.

    Returns:
        (summary: accuracy, balanced_accuracy, precision/recall/f1 macro, f1_weighted,
        roc_auc and average_precision (positive class for two classes, macro one-vs-rest
        over the classes present otherwise), log_loss, ece and top_k_accuracy;
        detail: per_class, confusion, roc, pr, calibration).
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        balanced_accuracy_score,
        confusion_matrix,
        log_loss,
        precision_recall_curve,
        precision_recall_fscore_support,
        roc_auc_score,
        roc_curve,
        top_k_accuracy_score,
    )

    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    count = probabilities.shape[1]
    names = list(classes) if len(classes) == count else [str(i) for i in range(count)]
    labels = list(range(count))
    y_pred = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    summary: dict[str, float] = {
        "accuracy": accuracy_score(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "f1_weighted": precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average="weighted", zero_division=0
        )[2],
        "log_loss": log_loss(y_true, _normalized(probabilities), labels=labels),
    }
    if count > top_k:
        summary[TOP_K_METRIC] = top_k_accuracy_score(y_true, probabilities, k=top_k, labels=labels)
    # Binary: the positive class (id 1); more classes: each one against the rest.
    curve_classes = [1] if count == 2 else labels
    roc, pr, aucs, precisions = [], [], {}, {}
    for c in curve_classes:
        truth = (y_true == c).astype(int)
        if truth.min() == truth.max():
            continue  # AUC is undefined for a class the split lacks (or holds alone)
        fpr, tpr, _ = roc_curve(truth, probabilities[:, c])
        aucs[c] = roc_auc_score(truth, probabilities[:, c])
        roc.append({"class": names[c], "auc": aucs[c], **_thin(fpr=fpr, tpr=tpr)})
        curve_precision, curve_recall, _ = precision_recall_curve(truth, probabilities[:, c])
        precisions[c] = average_precision_score(truth, probabilities[:, c])
        pr.append(
            {
                "class": names[c],
                "average_precision": precisions[c],
                "prevalence": float(truth.mean()),
                **_thin(precision=curve_precision, recall=curve_recall),
            }
        )
    if aucs:
        summary["roc_auc"] = float(np.mean(list(aucs.values())))
        summary["average_precision"] = float(np.mean(list(precisions.values())))
    calibration = calibration_detail(y_true, probabilities, bins)
    summary["ece"] = calibration["ece"]
    per_class = [
        {
            "class": names[c],
            "precision": precision[c],
            "recall": recall[c],
            "f1": f1[c],
            "support": int(support[c]),
            "roc_auc": aucs.get(c),
            "average_precision": precisions.get(c),
        }
        for c in labels
    ]
    detail = {
        "classes": names,
        "top_k": top_k,
        "per_class": per_class,
        "confusion": {
            "labels": names,
            "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
        "roc": roc,
        "pr": pr,
        "calibration": calibration,
    }
    return {k: float(v) for k, v in summary.items()}, detail


def _normalized(probabilities: np.ndarray) -> np.ndarray:
    """Rows summing to 1 exactly (float32 softmax rows are off by about 1e-7, which
    log_loss warns of)."""
    clipped = np.clip(probabilities, EPSILON, 1)
    return clipped / clipped.sum(axis=1, keepdims=True)


def calibration_detail(
    y_true: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS
) -> dict[str, Any]:
    """The reliability curve and expected calibration error (ECE): for two classes of the
    positive class's probability, for more of the top class's (its confidence) against being
    right. ECE is the mean of |observed - predicted| over `bins` equal-width bins, weighted by
    the samples in each."""
    from sklearn.calibration import calibration_curve

    if probabilities.shape[1] == 2:
        kind, outcome, predicted = "positive class", y_true == 1, probabilities[:, 1]
    else:
        kind = "top class"
        outcome = probabilities.argmax(axis=1) == y_true
        predicted = probabilities.max(axis=1)
    outcome = outcome.astype(int)
    observed, mean_predicted = calibration_curve(outcome, predicted, n_bins=bins)
    # The bins calibration_curve uses, to count the samples in each.
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], predicted)
    counts = np.bincount(ids, minlength=bins)
    filled = counts > 0
    ece = float(np.sum(counts[filled] / len(predicted) * np.abs(observed - mean_predicted)))
    return {
        "kind": kind,
        "bins": bins,
        "observed": observed.tolist(),
        "predicted": mean_predicted.tolist(),
        "counts": counts[filled].tolist(),
        "ece": ece,
    }


def regression_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    max_points: int = 2000,
    seed: int = 0,
    rows: Sequence[int] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Summary (mae, mse, rmse, r2) and detail (points of predicted against actual and of
    residuals, at most `max_points`; a histogram of every residual) of a regression, with
    scikit-learn. Several values per sample (a forecast horizon) count as one each.

    Args:
        y_true, y_pred: the targets and predictions, (n,) or (n, k).
        max_points: the most points kept for charts (an even random subset).
        seed: the seed of that subset.
        rows: each sample's row in the dataset, kept with its points (default: 0..n-1).
    """
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    actual = np.asarray(y_true, dtype=np.float64).reshape(-1)
    predicted = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    mse = mean_squared_error(actual, predicted)
    summary = {
        "mae": float(mean_absolute_error(actual, predicted)),
        "mse": float(mse),
        "rmse": float(math.sqrt(mse)),
    }
    if len(actual) > 1:
        summary["r2"] = float(r2_score(actual, predicted))
    residuals = actual - predicted
    samples = len(np.asarray(y_true))
    per_sample = max(1, len(actual) // max(samples, 1))
    rows = list(range(samples)) if rows is None else list(rows)
    kept = np.arange(len(actual))
    if len(kept) > max_points:
        kept = np.sort(np.random.default_rng(seed).choice(len(kept), max_points, replace=False))
    counts, edges = np.histogram(residuals, bins=HISTOGRAM_BINS)
    detail = {
        "points": {
            "rows": [int(rows[k // per_sample]) for k in kept],
            "actual": actual[kept].tolist(),
            "predicted": predicted[kept].tolist(),
            "residual": residuals[kept].tolist(),
            "total": len(actual),
        },
        "residual_histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        "residual_mean": float(residuals.mean()),
        "residual_std": float(residuals.std()),
    }
    return summary, detail


def segmentation_metrics(
    confusion: np.ndarray, classes: Sequence[str]
) -> tuple[dict[str, float], dict[str, Any]]:
    """IoU and Dice per class, their means and pixel accuracy, from a pixel confusion matrix
    (rows: true class, columns: predicted). A class neither present nor predicted has no IoU
    or Dice and is left out of the means.

    Args:
        confusion: (classes, classes) pixel counts.
        classes: the class names (mask values), in id order.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    count = len(confusion)
    names = list(classes) if len(classes) == count else [str(i) for i in range(count)]
    tp = np.diag(confusion)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        dice = np.where(union > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    summary = {
        "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        "mean_dice": float(np.nanmean(dice)) if np.isfinite(dice).any() else None,
        "pixel_accuracy": float(tp.sum() / max(confusion.sum(), 1)),
    }
    per_class = [
        {
            "class": names[c],
            "iou": None if np.isnan(iou[c]) else float(iou[c]),
            "dice": None if np.isnan(dice[c]) else float(dice[c]),
            "pixels": int(confusion[c].sum()),
            "predicted_pixels": int(confusion[:, c].sum()),
        }
        for c in range(count)
    ]
    detail = {
        "classes": names,
        "per_class": per_class,
        "confusion": {"labels": names, "matrix": confusion.astype(np.int64).tolist()},
    }
    return {k: v for k, v in summary.items() if v is not None}, detail


def _thin(**curves: np.ndarray) -> dict[str, list[float]]:
    """Curves cut to at most CURVE_POINTS evenly spread points, the first and last kept."""
    length = len(next(iter(curves.values())))
    if length > CURVE_POINTS:
        keep = np.unique(np.linspace(0, length - 1, CURVE_POINTS).round().astype(int))
        curves = {name: values[keep] for name, values in curves.items()}
    return {name: np.asarray(values, dtype=float).tolist() for name, values in curves.items()}


# Samples


def _samples(
    subject: _Subject, predictions: _Predictions, settings: TestSettings
) -> dict[str, list[dict[str, Any]]]:
    """The best and worst predicted samples (by their loss: cross-entropy of the true class,
    absolute error, mean pixel cross-entropy) and the misclassified ones, worst first."""
    count = settings.samples
    order = np.argsort(predictions.losses, kind="stable")
    best = [int(p) for p in order[:count]]
    worst = [int(p) for p in order[::-1][:count]]
    wrong: list[int] = []
    if subject.kind == "classification":
        predicted = predictions.outputs.argmax(axis=1)
        wrong = [int(p) for p in order[::-1] if predicted[p] != predictions.targets[p]]
        wrong = wrong[: 2 * count]
    chosen = sorted(set(best + worst + wrong))
    described = _describe(subject, predictions, chosen)
    return {
        "best": [described[p] for p in best],
        "worst": [described[p] for p in worst],
        "misclassified": [described[p] for p in wrong],
    }


def _describe(
    subject: _Subject, predictions: _Predictions, positions: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Position -> what a page shows of the sample: row, target, prediction, confidence,
    loss, its raw values (a table row) and PNGs of its image and masks."""
    if not positions:
        return {}
    images = _image_specs(subject)
    inputs = predictions.inputs.take(positions) if images else {}
    described = {}
    for i, p in enumerate(positions):
        entry: dict[str, Any] = {
            "index": predictions.rows[p],
            "loss": float(predictions.losses[p]),
        }
        if subject.kind == "classification":
            probs = predictions.outputs[p]
            true, guess = int(predictions.targets[p]), int(probs.argmax())
            entry.update(
                target=_class_name(subject.classes, true),
                prediction=_class_name(subject.classes, guess),
                confidence=float(probs[guess]),
                true_confidence=float(probs[true]) if 0 <= true < len(probs) else None,
                correct=true == guess,
            )
        elif subject.kind == "regression":
            target, output = predictions.targets[p], predictions.outputs[p]
            entry.update(
                target=_scalar_or_list(target),
                prediction=_scalar_or_list(output),
                error=_scalar_or_list(output - target),
                confidence=None,
            )
        else:
            entry.update(
                target=None,
                prediction=None,
                confidence=float(predictions.confidence[p]),
                pixel_accuracy=float(predictions.pixel_accuracy[p]),
                mask=mask_png(predictions.masks[p]),
                target_mask=mask_png(predictions.targets[p]),
            )
        if images:  # the first image input stands for the sample
            name, spec = next(iter(images.items()))
            entry["image"] = image_png(inputs[name][i], spec)
        values = _raw_values(subject, predictions.rows[p])
        if values:
            entry["values"] = values
        described[p] = entry
    return described


def _class_name(classes: Sequence[str], class_id: int) -> str:
    return classes[class_id] if 0 <= class_id < len(classes) else str(class_id)


def _scalar_or_list(values: np.ndarray) -> float | list[float]:
    values = np.asarray(values, dtype=float).reshape(-1)
    return float(values[0]) if len(values) == 1 else values.tolist()


def _image_specs(subject: _Subject) -> dict[str, Any]:
    """Model input name -> FeatureSpec of each image feature."""
    from app.runtime.preprocessing import input_names

    names = input_names(subject.config)
    return {names[s.column]: s for s in subject.config.features if s.kind == "image"}


def _raw_values(subject: _Subject, row: int, limit: int = 20) -> dict[str, Any]:
    """A row's values as read (a table's columns, an image's path and label), for display."""
    source = subject.source
    if source.sampled or source.frame is None or row >= len(source.frame):
        return {}
    values = {}
    for column, value in list(source.frame.iloc[row].items())[:limit]:
        if isinstance(value, float | np.floating):
            values[str(column)] = None if math.isnan(value) else float(value)
        elif isinstance(value, int | np.integer | bool | np.bool_):
            values[str(column)] = value.item() if hasattr(value, "item") else value
        else:
            values[str(column)] = str(value)
    return values


# Pictures


def _png(pixels: np.ndarray) -> str:
    """A uint8 (h, w) or (h, w, 3) array as a base64 PNG, scaled up (nearest) when tiny and
    down when large."""
    from PIL import Image

    image = Image.fromarray(pixels)
    side = max(image.size)
    if side < THUMBNAIL:
        factor = math.ceil(THUMBNAIL / side)
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    elif side > THUMBNAIL_MAX:
        image.thumbnail((THUMBNAIL_MAX, THUMBNAIL_MAX))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pixels(image: np.ndarray, spec: Any) -> np.ndarray:
    """A model input image (h, w, channels) as uint8 pixels (h, w) or (h, w, 3)."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if getattr(spec, "normalize", False) or (values.size and values.max() <= 1.0):
        values = values * 255
    pixels = np.clip(values, 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        return pixels[..., 0]
    return pixels[..., :3] if pixels.ndim == 3 else pixels


def image_png(image: np.ndarray, spec: Any = None) -> str:
    """A model input image (h, w, channels; as the preprocessing gives it) as a base64 PNG."""
    return _png(_pixels(image, spec))


PALETTE = np.array(
    [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
    ],
    dtype=np.uint8,
)


def mask_png(mask: np.ndarray) -> str:
    """A mask of class ids (h, w) as a base64 PNG, one colour per class."""
    return _png(PALETTE[np.asarray(mask, dtype=np.int64) % len(PALETTE)])


def saliency_png(image: np.ndarray, saliency: np.ndarray, spec: Any = None) -> str:
    """An image with its saliency (h, w, in [0, 1]) laid over it in a heat colour map."""
    pixels = _pixels(image, spec).astype(np.float64)
    base = np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels
    base = base.mean(axis=-1, keepdims=True).repeat(3, axis=-1)  # grey, so the heat shows
    s = np.clip(np.asarray(saliency, dtype=np.float64), 0, 1)
    heat = np.stack([np.clip(3 * s, 0, 1), np.clip(3 * s - 1, 0, 1), np.clip(3 * s - 2, 0, 1)], -1)
    alpha = 0.7 * s[..., None]
    blended = (1 - alpha) * base + alpha * heat * 255
    return _png(np.clip(blended, 0, 255).astype(np.uint8))


# Production checks


def _check(
    name: str, passed: bool | None, value: Any, detail: str, informational: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "passed": passed,
        "value": value,
        "detail": detail,
        "informational": informational,
    }


def _behaviour_checks(
    model, inputs: dict[str, np.ndarray], settings: TestSettings
) -> list[dict[str, Any]]:
    checks = []
    if settings.nan_check:
        checks.append(nan_check(model, inputs))
    else:
        checks.append(_check("nan_inputs", None, None, "off in the settings", True))
    if settings.batch_check:
        checks.append(batch_check(model, inputs))
    else:
        checks.append(_check("batch_consistency", None, None, "off in the settings", True))
    if settings.determinism_check:
        checks.append(determinism_check(model, inputs))
    else:
        checks.append(_check("determinism", None, None, "off in the settings", True))
    return checks


def nan_check(model, inputs: dict[str, np.ndarray], samples: int = 8) -> dict[str, Any]:
    """Predict a few samples with NaN, inf or -inf put into their float inputs: passes when
    the model returns an array of the right shape without raising; value is the fraction of
    samples whose outputs are all finite."""
    count = min(samples, len(next(iter(inputs.values()))))
    floats = [name for name, values in inputs.items() if values.dtype.kind == "f"]
    if not floats:
        return _check("nan_inputs", None, None, "no float inputs to put NaN into", True)
    broken = {name: values[:count].copy() for name, values in inputs.items()}
    poison = (np.nan, np.inf, -np.inf)
    for name in floats:
        flat = broken[name].reshape(count, -1)
        for i in range(count):
            flat[i, (i * 7) % flat.shape[1]] = poison[i % 3]
        if count > 3:
            flat[3, :] = np.nan  # and one sample that is all NaN
        broken[name] = flat.reshape(broken[name].shape)
    expected = _first_output(model.predict_on_batch(_feed(model, _take(inputs, count)))).shape
    try:
        out = _first_output(model.predict_on_batch(_feed(model, broken)))
    except Exception as err:  # noqa: BLE001 - a crash is what this check finds
        return _check("nan_inputs", False, None, f"prediction raised {_one_line(err)}")
    if out.shape != expected:
        return _check(
            "nan_inputs",
            False,
            None,
            f"predicted shape {list(out.shape)} for NaN inputs, {list(expected)} otherwise",
        )
    finite = np.isfinite(out.reshape(count, -1)).all(axis=1)
    return _check(
        "nan_inputs",
        True,
        float(finite.mean()),
        f"{count} samples with NaN or inf inputs predicted without error; outputs finite for "
        f"{int(finite.sum())} of {count}",
    )


def batch_check(model, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Predictions one sample at a time against one batch: passes when they agree within
    atol 1e-4 (and rtol 1e-5, for outputs of large magnitude); value is the largest
    difference."""
    count = len(next(iter(inputs.values())))
    batch = _first_output(model.predict_on_batch(_feed(model, inputs)))
    single = np.concatenate(
        [
            _first_output(model.predict_on_batch(_feed(model, _take(inputs, i, i + 1))))
            for i in range(count)
        ]
    )
    difference = _max_difference(single, batch)
    passed = bool(np.allclose(single, batch, atol=BATCH_ATOL, rtol=BATCH_RTOL, equal_nan=True))
    return _check(
        "batch_consistency",
        passed,
        difference,
        f"batch size 1 against {count}: largest difference {difference:.3g} "
        f"(tolerance {BATCH_ATOL:g} + {BATCH_RTOL:g} x value)",
    )


def determinism_check(model, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The same batch predicted twice: passes when the two are identical."""
    first = _first_output(model.predict_on_batch(_feed(model, inputs)))
    second = _first_output(model.predict_on_batch(_feed(model, inputs)))
    difference = _max_difference(first, second)
    passed = bool(np.array_equal(first, second, equal_nan=True))
    return _check(
        "determinism",
        passed,
        difference,
        "two predictions of the same batch are identical"
        if passed
        else f"two predictions of the same batch differ by up to {difference:.3g}",
    )


def _take(inputs: dict[str, np.ndarray], start: int, stop: int | None = None) -> dict:
    if stop is None:
        start, stop = 0, start
    return {name: values[start:stop] for name, values in inputs.items()}


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
    difference = difference[np.isfinite(difference)]
    return float(difference.max()) if difference.size else 0.0


def _performance(
    model, inputs: dict[str, np.ndarray], subject: _Subject, settings: TestSettings
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Latency of one sample and of a batch (p50, p95 in ms) and the model's size on disk."""
    size = (subject.folder / runs.CHECKPOINTS / runs.BEST).stat().st_size
    performance: dict[str, Any] = {"model_size_bytes": size, "model_size_mb": size / 2**20}
    checks = []
    if settings.latency_check:
        count = len(next(iter(inputs.values())))
        one = _latency(model, _take(inputs, 1), settings.latency_repeats)
        many = _latency(model, inputs, settings.latency_repeats)
        performance.update(
            latency_p50_ms=one[0],
            latency_p95_ms=one[1],
            batch_size=count,
            batch_latency_p50_ms=many[0],
            batch_latency_p95_ms=many[1],
            latency_repeats=settings.latency_repeats,
        )
        checks.append(
            _check(
                "latency_batch_1",
                True,
                one[1],
                f"one sample: p50 {one[0]:.2f} ms, p95 {one[1]:.2f} ms "
                f"({settings.latency_repeats} predictions)",
                informational=True,
            )
        )
        checks.append(
            _check(
                f"latency_batch_{count}",
                True,
                many[1],
                f"a batch of {count}: p50 {many[0]:.2f} ms, p95 {many[1]:.2f} ms "
                f"({many[0] / count:.3f} ms per sample at p50)",
                informational=True,
            )
        )
    else:
        checks.append(_check("latency", None, None, "off in the settings", True))
    checks.append(
        _check(
            "model_size",
            True,
            size,
            f"best.keras takes {size / 2**20:.2f} MB ({size:,} bytes)",
            informational=True,
        )
    )
    return performance, checks


def _latency(model, inputs: dict[str, np.ndarray], repeats: int) -> tuple[float, float]:
    """p50 and p95 in milliseconds of `repeats` predictions, after two untimed ones."""
    fed = _feed(model, inputs)
    for _ in range(2):
        model.predict_on_batch(fed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(fed)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def _parity_checks(
    model, inputs: dict[str, np.ndarray], settings: TestSettings, samples: int = 16
) -> list[dict[str, Any]]:
    """Each export format's predictions against the Keras model's (app.export.exporter.parity)."""
    if not settings.parity_formats:
        return [_check("export_parity", None, None, "no formats asked for in the settings", True)]
    try:
        from app.export.exporter import parity
    except (ImportError, AttributeError):
        return [_check("export_parity", None, None, "export module not available", True)]
    names = [tensor.name for tensor in model.inputs]
    count = min(samples, len(next(iter(inputs.values()))))
    fed = _feed(model, _take(inputs, count))
    by_name = fed if isinstance(fed, dict) else {names[0]: fed}
    try:
        results = parity(model, by_name, formats=tuple(settings.parity_formats))
    except Exception as err:  # noqa: BLE001 - a failing export is this check's finding
        return [_check("export_parity", False, None, f"parity raised {_one_line(err)}")]
    return [
        _check(
            f"export_parity_{result['format']}",
            result.get("passed"),
            result.get("max_abs_diff"),
            str(result.get("detail") or ""),
        )
        for result in results
    ]


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    line = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return line if len(line) <= 300 else line[:297] + "..."


# Explanations


def _explanations(
    model, subject: _Subject, predictions: _Predictions, settings: TestSettings
) -> dict[str, Any]:
    images = _image_specs(subject)
    if images:
        return saliency_maps(model, subject, predictions, settings, images)
    held = predictions.inputs.held or {}
    if "features" in held:
        return permutation_importance(model, subject, predictions, settings)
    if "features" in subject.dataset.input_spec():
        return {"method": None, "detail": "the test inputs are too large to permute in memory"}
    return {"method": None, "detail": "no explanation for these inputs (text) yet"}


def saliency_maps(
    model,
    subject: _Subject,
    predictions: _Predictions,
    settings: TestSettings,
    images: dict[str, Any],
) -> dict[str, Any]:
    """Saliency maps of a few samples, the worst predicted and the best: the gradient of the
    top class score (the output, for regression; for segmentation the sum over pixels of the
    predicted class's score) with respect to the image, absolute, maximum over channels,
    scaled to [0, 1] per image, laid over the image."""
    import tensorflow as tf

    count = settings.explain_samples
    order = np.argsort(predictions.losses, kind="stable")
    chosen = list(dict.fromkeys([*order[::-1][: (count + 1) // 2], *order[: count // 2]]))
    chosen = [int(p) for p in chosen][:count]
    if not chosen:
        return {"method": "saliency", "saliency": [], "detail": "no samples asked for"}
    name, spec = next(iter(images.items()))
    inputs = predictions.inputs.take(chosen)
    tensors = {k: tf.convert_to_tensor(v) for k, v in inputs.items()}
    with tf.GradientTape() as tape:
        tape.watch(tensors[name])
        out = model(_feed(model, tensors), training=False)
        if isinstance(out, dict):
            out = next(iter(out.values()))
        elif isinstance(out, list | tuple):
            out = out[0]
        score = tf.reduce_max(out, axis=-1) if out.shape[-1] > 1 else out[..., 0]
        total = tf.reduce_sum(score)
    gradients = tape.gradient(total, tensors[name])
    saliency = np.max(np.abs(np.asarray(gradients)), axis=-1)
    described = _describe(subject, predictions, chosen)
    items = []
    for i, p in enumerate(chosen):
        peak = saliency[i].max()
        scaled = saliency[i] / peak if peak > 0 else saliency[i]
        entry = {
            key: described[p].get(key)
            for key in ("index", "target", "prediction", "confidence", "loss", "pixel_accuracy")
        }
        entry["input"] = image_png(inputs[name][i], spec)
        entry["image"] = saliency_png(inputs[name][i], scaled, spec)
        entry["caption"] = _caption(entry)
        items.append(entry)
    return {
        "method": "saliency",
        "input": name,
        "detail": "gradient of the top score with respect to the input pixels (absolute, "
        "maximum over channels), for the worst and the best predicted samples",
        "saliency": items,
    }


def _caption(sample: dict[str, Any]) -> str:
    """'row 12: true 3, predicted 5 (0.61)'."""
    text = f"row {sample['index']}"
    if sample.get("target") is not None:
        text += f": true {sample['target']}, predicted {sample['prediction']}"
        if sample.get("confidence") is not None:
            text += f" ({sample['confidence']:.2f})"
    elif sample.get("pixel_accuracy") is not None:
        text += f": pixel accuracy {sample['pixel_accuracy']:.3f}"
    return text


def feature_columns(config: Any, state: Any) -> list[tuple[str, list[int]]]:
    """Each tabular feature's column and the columns of the "features" input it fills, in
    order (a one-hot category fills several)."""
    from app.runtime.preprocessing import TABULAR_KINDS, feature_width

    groups, start = [], 0
    for spec in config.features:
        if spec.kind in TABULAR_KINDS:
            width = feature_width(spec, state.columns[spec.column])
            groups.append((spec.column, list(range(start, start + width))))
            start += width
    return groups


def permutation_importance(
    model, subject: _Subject, predictions: _Predictions, settings: TestSettings
) -> dict[str, Any]:
    """How much the main metric (accuracy, or r2 for regression) drops when one original
    column's values are shuffled among the test rows, `importance_repeats` times each; the
    columns a feature fills in the "features" input (one-hot categories: several) are
    shuffled together. At most `max_points` rows are used."""
    inputs = predictions.inputs.held
    count = len(predictions.rows)
    rng = np.random.default_rng(settings.seed)
    positions = np.arange(count)
    if count > settings.max_points:
        positions = np.sort(rng.choice(count, settings.max_points, replace=False))
    inputs = {name: values[positions] for name, values in inputs.items()}
    targets = predictions.targets[positions]
    metric = "accuracy" if subject.kind == "classification" else "r2"

    def score(values: dict[str, np.ndarray]) -> float:
        out = _predict(model, values)
        if subject.kind == "classification":
            probs = _probabilities(out.reshape(len(out), -1), not subject.probabilities)
            return float((probs.argmax(axis=1) == targets).mean())
        from sklearn.metrics import r2_score

        return float(r2_score(targets.reshape(-1), out.reshape(-1).astype(np.float64)))

    if metric == "r2" and len(targets.reshape(-1)) < 2:
        return {"method": None, "detail": "too few test rows for permutation importance"}
    baseline = score(inputs)
    items = []
    for column, columns in feature_columns(subject.config, subject.state):
        drops = []
        for _ in range(settings.importance_repeats):
            order = rng.permutation(len(positions))
            shuffled = dict(inputs)
            features = inputs["features"].copy()
            features[..., columns] = inputs["features"][order][..., columns]
            shuffled["features"] = features
            drops.append(baseline - score(shuffled))
        items.append(
            {
                "feature": column,
                "importance": float(np.mean(drops)),
                "std": float(np.std(drops)),
                "columns": len(columns),
            }
        )
    items.sort(key=lambda item: item["importance"], reverse=True)
    return {
        "method": "permutation_importance",
        "metric": metric,
        "baseline": baseline,
        "repeats": settings.importance_repeats,
        "rows": len(positions),
        "detail": f"drop of {metric} when a column's values are shuffled among the test rows",
        "permutation_importance": items,
    }


# The report on disk


def test_dir(run: str | os.PathLike) -> Path:
    """The run's test folder, <run>/test/."""
    return runs.find_run(run) / TEST_DIR


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


def _status_lock(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """The launcher and the tester both write status.json; one at a time."""
    return locked(run_dir / TEST_DIR / ".status.lock")


def _merge_status(run_dir: Path, fields: dict[str, Any]) -> dict[str, Any]:
    path = _status_path(run_dir)
    current = json.loads(path.read_text()) if path.exists() else {}
    new = {**current, **fields, "updated": time.time()}
    atomic_write_text(path, json.dumps(new, indent=2) + "\n")
    return new


def update_status(run_dir: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge fields into <run>/test/status.json (atomically, one writer at a time)."""
    with _status_lock(Path(run_dir)):
        return _merge_status(Path(run_dir), fields)


def test_status(run: str | os.PathLike) -> dict[str, Any]:
    """The state of the run's test: state (None when never tested; queued, running, finished
    or failed), progress (0..1), step, reason, pid, passed. A test whose process ended
    without saying so reads as failed."""
    folder = runs.find_run(run)
    path = _status_path(folder)
    if not path.exists():
        return {"state": None, "progress": 0.0, "step": None, "reason": None}
    current = json.loads(path.read_text())
    pid = current.get("pid")
    if current.get("state") not in ACTIVE:
        return current
    if pid is not None and not runs._alive(pid, current.get("pid_started")):
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
    folder = runs.find_run(run)
    settings = TestSettings.from_value(settings)
    subject = _Subject.of(folder)
    gates = settings.gates if settings.gates is not None else load_gates(subject.info["model"])
    check_gates(gates, known_metrics(subject.kind, len(subject.classes), settings.top_k))
    test = folder / TEST_DIR
    with _status_lock(folder):  # two launchers cannot both find it idle
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
        _merge_status(folder, queued)
    process, started = runs.spawn("app.evaluate.tester", folder, test / LOG)
    # The tester writes the same pid when it starts; whichever comes first, both agree.
    update_status(folder, pid=process.pid, pid_started=started)
    return process


__all__ = [
    "ALL_METRICS",
    "Gate",
    "TestSettings",
    "apply_gates",
    "calibration_detail",
    "check_gates",
    "classification_metrics",
    "evaluate_gates",
    "feature_columns",
    "gate_metrics",
    "known_metrics",
    "load_gates",
    "read_report",
    "regression_metrics",
    "run_suite",
    "save_gates",
    "segmentation_metrics",
    "start_test",
    "test_dir",
    "test_status",
    "write_report",
]
