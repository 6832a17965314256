"""What a test does and what its report must reach: TestSettings, and the gates a user sets
per model (`metric op value`, such as accuracy >= 0.9), kept in `models/<model>/gates.json`.

The metric names a gate can use are the task's summary metrics (CLASSIFICATION_METRICS, with
TOP_K_METRIC when there are more classes than k; REGRESSION_METRICS; SEGMENTATION_METRICS;
ANOMALY_METRICS), PERFORMANCE_METRICS and BASELINE_METRIC, `beats_baseline`: the margin by which
the model's headline metric beats the best baseline of the report (app.evaluate.baselines), so
that `beats_baseline > 0` (or `beats_baseline` alone) asks the model to beat it and
`beats_baseline >= 0.02` to beat it by 0.02. `evaluate_gates` judges a report's summary,
performance and baselines against gates; `report_passed` says whether a report passed: its
gates, and no production check that failed (informational ones never fail it).

Settings and gates that are not valid raise ValueError with Keras-like messages that name the
setting, what was expected and what was received. Importing this module does not import
TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.evaluate.subject import Subject
from app.files import atomic_write_text
from app.paths import inside
from app.workspace import Workspace, runs

GATES = "gates.json"
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
ANOMALY_METRICS = (
    "roc_auc",
    "average_precision",
    "precision",
    "recall",
    "f1",
    "threshold",
    "flagged_rate",
    "error_mean",
)
PERFORMANCE_METRICS = ("latency_p50_ms", "latency_p95_ms", "model_size_mb")
BASELINE_METRIC = "beats_baseline"
BARE_GATES = {BASELINE_METRIC: (">", 0.0)}  # a gate written as its metric alone
OPS = (">=", "<=", ">", "<")
ALL_METRICS = (
    *CLASSIFICATION_METRICS,
    TOP_K_METRIC,
    *REGRESSION_METRICS,
    *SEGMENTATION_METRICS,
    *ANOMALY_METRICS,
    *PERFORMANCE_METRICS,
    BASELINE_METRIC,
)
PARITY_FORMATS = ("savedmodel", "tflite", "onnx")


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
        metric: a key of the report's summary (accuracy, f1_macro, r2, mae, mean_iou, ...),
            latency_p50_ms, latency_p95_ms, model_size_mb or beats_baseline.
        op: ">=" (at least), "<=" (at most), ">" (more than) or "<" (less than).
        value: the threshold, a finite number.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    metric: str
    op: Literal[">=", "<=", ">", "<"]
    value: float

    def __init__(self, metric: Any = None, op: Any = None, value: Any = None) -> None:
        # Checked here, so that a bad gate reads like a Keras error, not a pydantic report.
        if not isinstance(metric, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", metric):
            raise ValueError(_invalid("metric", "a metric name such as accuracy", metric))
        if op not in OPS:
            raise ValueError(_invalid("op", "'>=', '<=', '>' or '<'", op))
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(_invalid("value", "a finite number", value))
        super().__init__(metric=metric, op=op, value=float(value))

    @classmethod
    def parse(cls, text: str) -> Gate:
        """'accuracy>=0.9' -> Gate('accuracy', '>=', 0.9); 'beats_baseline' -> Gate(
        'beats_baseline', '>', 0.0) (BARE_GATES)."""
        bare = BARE_GATES.get(text.strip().lower()) if isinstance(text, str) else None
        if bare is not None:
            return cls(text.strip().lower(), *bare)
        found = re.fullmatch(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*(>=|<=|>|<)\s*(\S+)\s*", text)
        value = None
        if found:
            try:
                value = float(found.group(3))
            except ValueError:
                value = None
        if value is None or not math.isfinite(value):
            raise ValueError(
                _invalid(
                    "gate",
                    "METRIC>=VALUE, METRIC<=VALUE, METRIC>VALUE or METRIC<VALUE (e.g. "
                    "accuracy>=0.9), or beats_baseline",
                    text,
                )
            )
        return cls(found.group(1).lower(), found.group(2), value)  # type: ignore[union-attr]

    def holds(self, actual: float) -> bool:
        return {
            ">=": actual >= self.value,
            "<=": actual <= self.value,
            ">": actual > self.value,
            "<": actual < self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class TestSettings(BaseModel):
    """What the test suite does. Every field has a default, so `TestSettings()` is usable."""

    __test__ = False  # not a pytest test class
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

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
    anomaly_percentile: float = _setting(
        95.0,
        "a number in (0, 100]",
        "Anomaly detection: the threshold is this percentile of the reconstruction errors of "
        "normal validation rows.",
        gt=0,
        le=100,
    )

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


def gates_path(model: str) -> Path:
    """Where a model's gates live: models/<model-slug>/gates.json."""
    return inside(Workspace.current().models_dir, runs.model_slug(model), GATES)


def load_gates(model: str) -> list[Gate]:
    """The gates saved for a model (its slug or name); none when it has none."""
    path = gates_path(model)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [_gate(item) for item in data["gates"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a gates file ({err})") from None


def save_gates(model: str, gates: Sequence[Gate]) -> Path:
    """Save a model's gates (replacing any it had); an unknown metric is refused."""
    gates = [_gate(g) for g in gates]
    check_gates(gates, ALL_METRICS)
    data = {"gates": [g.model_dump() for g in gates], "updated": time.time()}
    return atomic_write_text(gates_path(model), json.dumps(data, indent=2) + "\n")


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
    segmentation, anomaly) with `classes` classes."""
    task = {
        "classification": list(CLASSIFICATION_METRICS)
        + ([TOP_K_METRIC] if classes > top_k else []),
        "regression": list(REGRESSION_METRICS),
        "segmentation": list(SEGMENTATION_METRICS),
        "anomaly": list(ANOMALY_METRICS),
    }[kind]
    return task + list(PERFORMANCE_METRICS) + [BASELINE_METRIC]


def gate_metrics(run: str | os.PathLike, settings: TestSettings | dict | None = None) -> list[str]:
    """The metric names a gate can use for this run's report."""
    settings = TestSettings.from_value(settings)
    subject = Subject.of(run)
    return known_metrics(subject.kind, len(subject.classes), settings.top_k)


def evaluate_gates(report: dict[str, Any], gates: Sequence[Gate]) -> dict[str, Any]:
    """{passed, results} of the gates against a report's summary, performance and baselines;
    an unknown metric is a ValueError naming the known ones."""
    metrics = report.get("metrics", {})
    check_gates(
        gates,
        known_metrics(report["kind"], len(metrics.get("classes", [])), metrics.get("top_k", 3)),
    )
    baselines = report.get("baselines") or {}
    values = {
        **report.get("summary", {}),
        **_performance_values(report.get("performance", {})),
        BASELINE_METRIC: baselines.get("margin"),
    }
    results = []
    for gate in gates:
        actual = values.get(gate.metric)
        if actual is None:
            passed = False
            detail = f"{gate.metric} was not measured in this test"
            if gate.metric == BASELINE_METRIC:
                detail = _no_baseline(baselines)
        else:
            passed = gate.holds(actual)
            detail = f"{gate.metric} is {actual:.6g}, {'meets' if passed else 'misses'} {gate}"
            if gate.metric == BASELINE_METRIC:
                detail = _against_baseline(baselines, passed, gate)
        results.append({**gate.model_dump(), "actual": actual, "passed": passed, "detail": detail})
    return {"passed": all(r["passed"] for r in results), "results": results}


def apply_gates(report: dict[str, Any], gates: Sequence[Gate]) -> dict[str, Any]:
    """The report judged by other gates: its gates and passed replaced."""
    judged = {**report, "gates": evaluate_gates(report, gates)}
    judged["passed"] = report_passed(judged)
    return judged


def _against_baseline(baselines: dict[str, Any], passed: bool, gate: Gate) -> str:
    """'accuracy 0.93 against the best baseline, logistic regression (0.9): +0.03, meets
    beats_baseline > 0'."""
    metric, best, value = baselines["metric"], baselines["best"], baselines["best_value"]
    return (
        f"{metric} {baselines['model']:.4g} against the best baseline, {best} ({value:.4g}): "
        f"{baselines['margin']:+.4g}, {'meets' if passed else 'misses'} {gate}"
    )


def _no_baseline(baselines: dict[str, Any]) -> str:
    if not baselines:
        return "this report has no baselines; test the run again"
    if baselines.get("model") is None:
        return f"the model's {baselines.get('metric')} was not measured in this test"
    results = baselines.get("results") or []
    reasons = [f"{r['name']}: {r['skipped']}" for r in results if r.get("skipped")]
    return "no baseline could be computed" + (f" ({'; '.join(reasons)})" if reasons else "")


def _performance_values(performance: dict[str, Any]) -> dict[str, float]:
    return {k: performance[k] for k in PERFORMANCE_METRICS if performance.get(k) is not None}


def report_passed(report: dict[str, Any]) -> bool:
    checks_pass = all(
        check["passed"] is not False for check in report["checks"] if not check["informational"]
    )
    return bool(report["gates"]["passed"] and checks_pass)
