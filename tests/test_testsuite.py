"""The test suite (app.evaluate: the suite and its parts, the tester, the report): metrics against
scikit-learn computed here from the model's own predictions, samples, production checks,
explanations, gates, the report on disk and as HTML, the tester process and `layerflow test`.

One report per trained run is made once for the module (in its own copy of the trained
workspace); tests that change a workspace use `trained_workspace`, a copy of their own.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.evaluate import suite as testsuite
from app.evaluate.checks import nan_check
from app.evaluate.regression import regression_metrics
from app.evaluate.settings import (
    Gate,
    TestSettings,
    apply_gates,
    evaluate_gates,
    load_gates,
    save_gates,
)
from app.keras import builder
from app.workspace import Workspace, runs

# Few latency repeats and permutations: the tests check what is measured, not how well.
FAST = {"latency_repeats": 3, "importance_repeats": 2, "parity_formats": []}
FORMATS = ["savedmodel", "tflite", "onnx"]


@dataclass
class ModuleReports:
    runs: dict[str, Path]
    data: dict[str, str]
    reports: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def tested(_trained_once, tmp_path_factory):
    """A copy of the trained workspace for this module, with one report per run (written by
    run_suite, in this process); export parity is checked for the classification run only."""
    from tests.trained import copy_trained

    target = tmp_path_factory.mktemp("tested") / "workspace"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERFLOW_WORKSPACE", str(target))
        trained = copy_trained(_trained_once, target)
        reports = {
            name: testsuite.run_suite(
                folder, {**FAST, "parity_formats": FORMATS if name == "classification" else []}
            )
            for name, folder in trained.runs.items()
        }
        yield ModuleReports(trained.runs, trained.data, reports)


def predictions(run: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The test split's inputs and targets, and the best checkpoint's predictions of them,
    made here without the suite."""
    from app.runtime.transform import transform
    from app.workspace import Workspace

    info = json.loads((run / runs.RUN).read_text())
    dataset = Workspace.current().dataset(info["data"]["name"])
    config, state = dataset.preprocessing()
    inputs, targets = transform(config, state, dataset.source(), sorted(dataset.splits["test"]))
    model = builder.load_run_model(run, "best")
    return inputs, targets, np.asarray(model.predict(next(iter(inputs.values())), verbose=0))


def decoded(png: str):
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(png)))
    image.load()
    return image


# Metrics, against scikit-learn


def test_classification_metrics_agree_with_sklearn_on_the_models_predictions(tested):
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        log_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    report = tested.reports["classification"]
    _, y, probs = predictions(tested.runs["classification"])
    y_pred = probs.argmax(axis=1)
    summary, metrics = report["summary"], report["metrics"]
    assert report["task"] == "multiclass" and report["kind"] == "classification"
    assert summary["accuracy"] == pytest.approx(accuracy_score(y, y_pred))
    assert summary["f1_macro"] == pytest.approx(f1_score(y, y_pred, average="macro"))
    assert summary["roc_auc"] == pytest.approx(
        roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-6
    )
    assert summary["log_loss"] == pytest.approx(log_loss(y, probs), abs=1e-5)
    precision, recall, f1, support = precision_recall_fscore_support(y, y_pred, zero_division=0)
    rows = metrics["per_class"]
    assert [row["class"] for row in rows] == ["setosa", "versicolor", "virginica"]
    assert [row["precision"] for row in rows] == pytest.approx(precision)
    assert [row["recall"] for row in rows] == pytest.approx(recall)
    assert [row["f1"] for row in rows] == pytest.approx(f1)
    assert [row["support"] for row in rows] == support.tolist()
    assert metrics["confusion"]["matrix"] == confusion_matrix(y, y_pred).tolist()
    assert "top_k_accuracy" not in summary  # 3 classes, k = 3: nothing to measure
    assert {curve["class"] for curve in metrics["roc"]} == {"setosa", "versicolor", "virginica"}


def test_binary_metrics_use_the_positive_class_probability(tested):
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

    report = tested.reports["binary"]
    _, y, out = predictions(tested.runs["binary"])
    assert out.shape[1] == 1  # one sigmoid unit
    positive = out[:, 0].astype(np.float64)
    summary = report["summary"]
    assert summary["accuracy"] == pytest.approx(accuracy_score(y, positive >= 0.5))
    assert summary["roc_auc"] == pytest.approx(roc_auc_score(y, positive), abs=1e-6)
    assert summary["average_precision"] == pytest.approx(
        average_precision_score(y, positive), abs=1e-6
    )
    # ECE over the calibration curve's bins, weighted by the samples in each.
    observed, predicted = calibration_curve(y, positive, n_bins=10)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], positive), minlength=10)
    ece = np.sum(counts[counts > 0] / len(y) * np.abs(observed - predicted))
    assert summary["ece"] == pytest.approx(ece, abs=1e-6)
    calibration = report["metrics"]["calibration"]
    assert calibration["kind"] == "positive class"
    assert calibration["observed"] == pytest.approx(observed.tolist(), abs=1e-6)
    assert [curve["class"] for curve in report["metrics"]["roc"]] == ["malignant"]


def test_image_report_has_top_k_accuracy_and_saliency_maps(tested):
    from sklearn.metrics import top_k_accuracy_score

    report = tested.reports["image"]
    inputs, y, probs = predictions(tested.runs["image"])
    assert report["summary"]["top_k_accuracy"] == pytest.approx(
        top_k_accuracy_score(y, probs, k=3, labels=list(range(10)))
    )
    explanations = report["explanations"]
    assert explanations["method"] == "saliency"
    items = explanations["saliency"]
    assert len(items) == TestSettings().explain_samples
    height, width = inputs["image"].shape[1:3]
    for item in items:
        overlay, plain = decoded(item["image"]), decoded(item["input"])
        assert overlay.size == plain.size and overlay.mode == "RGB"
        assert overlay.size[0] % width == 0 and overlay.size[1] % height == 0  # scaled up whole
        assert item["target"] in [str(d) for d in range(10)]


def test_regression_metrics_agree_with_sklearn(tested):
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    report = tested.reports["regression"]
    _, y, out = predictions(tested.runs["regression"])
    summary = report["summary"]
    assert summary["mae"] == pytest.approx(mean_absolute_error(y, out[:, 0]), rel=1e-6)
    assert summary["rmse"] == pytest.approx(root_mean_squared_error(y, out[:, 0]), rel=1e-6)
    assert summary["r2"] == pytest.approx(r2_score(y, out[:, 0]), rel=1e-6)
    points = report["metrics"]["points"]
    assert points["total"] == len(y) == len(points["actual"])
    assert np.allclose(
        points["residual"], np.asarray(points["actual"]) - np.asarray(points["predicted"])
    )
    assert sum(report["metrics"]["residual_histogram"]["counts"]) == len(y)


def test_regression_points_are_capped(tested):
    rng = np.random.default_rng(0)
    actual = rng.normal(size=5000)
    _, detail = regression_metrics(actual, actual + rng.normal(size=5000), 100)
    assert len(detail["points"]["actual"]) == 100
    assert detail["points"]["total"] == 5000
    assert len(set(detail["points"]["rows"])) == 100


def test_segmentation_iou_and_dice_agree_with_sklearn(tested):
    from sklearn.metrics import f1_score, jaccard_score

    report = tested.reports["segmentation"]
    _, y, probs = predictions(tested.runs["segmentation"])
    truth, guess = y.ravel(), probs.argmax(axis=-1).ravel()
    labels = list(range(probs.shape[-1]))
    iou = jaccard_score(truth, guess, labels=labels, average=None, zero_division=0)
    dice = f1_score(truth, guess, labels=labels, average=None, zero_division=0)
    rows = report["metrics"]["per_class"]
    assert [row["class"] for row in rows] == ["0", "1", "2"]  # the mask values
    assert [row["iou"] for row in rows] == pytest.approx(iou)
    assert [row["dice"] for row in rows] == pytest.approx(dice)
    assert report["summary"]["mean_iou"] == pytest.approx(iou.mean())
    assert report["summary"]["pixel_accuracy"] == pytest.approx((truth == guess).mean())
    best = report["samples"]["best"][0]
    assert decoded(best["mask"]).size == decoded(best["image"]).size
    assert report["explanations"]["method"] == "saliency"


# Samples and explanations


def test_samples_are_the_best_worst_and_misclassified_rows_of_the_test_split(tested):
    from app.workspace import Workspace

    report = tested.reports["image"]
    samples = report["samples"]
    test_rows = set(Workspace.current().dataset(tested.data["image"]).splits["test"])
    best, worst, wrong = samples["best"], samples["worst"], samples["misclassified"]
    assert len(best) == len(worst) == 8
    assert max(s["loss"] for s in best) <= min(s["loss"] for s in worst)
    assert [s["loss"] for s in best] == sorted(s["loss"] for s in best)
    assert 0 < len(wrong) <= 16
    assert all(s["target"] != s["prediction"] for s in wrong)
    for sample in best + worst + wrong:
        assert sample["index"] in test_rows
        assert 0 <= sample["confidence"] <= 1
        assert sample["loss"] == pytest.approx(-np.log(max(sample["true_confidence"], 1e-12)))
        assert decoded(sample["image"]).size[0] >= 64  # 8x8 digits, scaled up to be seen


def test_permutation_importance_names_the_original_columns(tested):
    from app.workspace import Workspace

    explanations = tested.reports["regression"]["explanations"]
    assert explanations["method"] == "permutation_importance"
    config, _ = Workspace.current().dataset(tested.data["regression"]).preprocessing()
    items = explanations["permutation_importance"]
    assert sorted(item["feature"] for item in items) == sorted(s.column for s in config.features)
    widths = {item["feature"]: item["columns"] for item in items}
    assert widths["sex"] == 3  # one-hot: two categories and "unseen", shuffled together
    assert sum(widths.values()) == 12  # the width of the model's "features" input
    importances = [item["importance"] for item in items]
    assert importances == sorted(importances, reverse=True)


# Production checks


def test_production_checks_pass_for_a_trained_model(tested):
    report = tested.reports["binary"]
    checks = {check["name"]: check for check in report["checks"]}
    for name in ("nan_inputs", "batch_consistency", "determinism"):
        assert checks[name]["passed"] is True, checks[name]
        assert checks[name]["informational"] is False
    assert 0.0 <= checks["nan_inputs"]["value"] <= 1.0
    performance = report["performance"]
    assert 0 < performance["latency_p50_ms"] <= performance["latency_p95_ms"]
    assert performance["batch_size"] == 57  # the whole test split: fewer rows than 64
    best = tested.runs["binary"] / runs.CHECKPOINTS / runs.BEST
    assert performance["model_size_bytes"] == checks["model_size"]["value"] == best.stat().st_size
    assert checks["export_parity"]["passed"] is None  # not asked for in this report


def test_nan_check_fails_when_the_serving_path_raises_on_nan():
    import keras
    import tensorflow as tf

    inputs = keras.Input((4,), name="features")
    checked = keras.layers.Lambda(lambda x: tf.debugging.check_numerics(x, "NaN input"))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(checked))
    features = {"features": np.ones((8, 4), dtype=np.float32)}
    check = nan_check(model, features)
    assert check["passed"] is False
    assert "InvalidArgumentError" in check["detail"]
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert nan_check(plain, features)["passed"] is True


def test_export_parity_is_checked_for_each_format(tested):
    checks = {check["name"]: check for check in tested.reports["classification"]["checks"]}
    for fmt in FORMATS:
        check = checks[f"export_parity_{fmt}"]
        assert check["passed"] is True, check
        assert check["informational"] is False
        assert 0 <= check["value"] <= 1e-3


# Gates


def test_a_gate_above_the_accuracy_fails_the_report_and_one_below_passes_it(tested):
    report = tested.reports["classification"]
    accuracy = report["summary"]["accuracy"]
    failed = apply_gates(report, [Gate("accuracy", ">=", accuracy + 0.01)])
    assert failed["passed"] is False and failed["gates"]["passed"] is False
    result = failed["gates"]["results"][0]
    assert result["actual"] == accuracy and result["passed"] is False
    passed = apply_gates(report, [Gate("accuracy", ">=", accuracy - 0.01)])
    assert passed["passed"] is True and passed["gates"]["results"][0]["passed"] is True
    slow = apply_gates(report, [Gate.parse("latency_p95_ms<=0.000001")])
    assert slow["passed"] is False
    assert slow["gates"]["results"][0]["actual"] == report["performance"]["latency_p95_ms"]


def test_saved_gates_judge_the_next_report(tested):
    run = tested.runs["regression"]
    model = json.loads((run / runs.RUN).read_text())["model"]
    mae = tested.reports["regression"]["summary"]["mae"]
    path = save_gates(model, [Gate("mae", "<=", mae / 2), Gate("r2", ">=", -1e9)])
    try:
        assert path == Workspace.current().models_dir / model / "gates.json"
        assert load_gates(model) == [Gate("mae", "<=", mae / 2), Gate("r2", ">=", -1e9)]
        report = testsuite.run_suite(run, {**FAST, "explanations": False}, write=False)
        assert [r["passed"] for r in report["gates"]["results"]] == [False, True]
        assert report["passed"] is False
    finally:
        path.unlink()


def test_a_gate_on_an_unknown_metric_is_an_error_naming_the_known_ones(tested):
    report = tested.reports["regression"]
    with pytest.raises(ValueError, match="acuracy") as error:
        evaluate_gates(report, [Gate("acuracy", ">=", 0.9)])
    assert "mae, mse, rmse, r2" in str(error.value)
    # A regression report has no accuracy.
    with pytest.raises(ValueError, match="unknown gate metric `accuracy`"):
        evaluate_gates(report, [Gate("accuracy", ">=", 0.9)])
    with pytest.raises(ValueError, match="acuracy"):
        save_gates("regression-model", [Gate("acuracy", ">=", 0.9)])


def test_bad_gates_and_settings_read_like_keras_errors():
    with pytest.raises(ValueError, match=r"expected METRIC>=VALUE.* Received: gate='acc=0.9'"):
        Gate.parse("acc=0.9")
    with pytest.raises(ValueError, match=r"`op`, expected '>=', '<=', '>' or '<'. Received: op="):
        Gate("accuracy", "==", 0.9)
    assert Gate.parse("acc>0.9") == Gate("acc", ">", 0.9)  # a strict threshold
    with pytest.raises(ValueError, match=r"`top_k`, expected an integer >= 1. Received: top_k=0"):
        TestSettings.from_value({"top_k": 0})
    with pytest.raises(ValueError, match="Unknown test setting `topk`"):
        TestSettings.from_value({"topk": 2})


# The report


def test_report_json_holds_what_export_and_the_pages_read(tested):
    run = tested.runs["classification"]
    report = testsuite.read_report(run)
    assert report == tested.reports["classification"]
    for key in (
        "passed",
        "summary",
        "task",
        "created",
        "run",
        "checkpoint",
        "data",
        "gates",
        "checks",
        "metrics",
        "samples",
        "explanations",
        "settings",
    ):
        assert key in report
    assert report["checkpoint"] == "best" and report["run"] == run.name
    assert isinstance(report["passed"], bool)
    assert all(isinstance(v, float) for v in report["summary"].values())
    assert report["data"]["name"] == "iris" and report["data"]["version"]
    assert {"name", "passed", "value", "detail"} <= set(report["checks"][0])
    page = (run / "test" / "report.html").read_text()
    assert "<script src=" not in page  # self-contained
    assert "Confusion matrix" in page and "ROC curves" in page and "Calibration" in page
    assert not [p for p in (run / "test").iterdir() if p.name.startswith(".staging")]


def crafted_report() -> dict[str, Any]:
    """A classification report whose names and texts try to inject HTML."""
    evil = "<script>alert(1)</script>"
    column = "<img src=x onerror=alert(2)>"
    classes = [evil, "plain"]
    return {
        "run": "<b>run</b>",
        "model": evil,
        "task": "binary",
        "kind": "classification",
        "created": 0.0,
        "checkpoint": "best",
        "data": {"name": evil, "version": evil, "split": "test", "rows": 2},
        "summary": {"accuracy": 0.5},
        "performance": {"latency_p50_ms": 1.0, "latency_p95_ms": 2.0, "model_size_mb": 0.1},
        "metrics": {
            "classes": classes,
            "per_class": [{"class": c, "precision": 0.5, "recall": 0.5} for c in classes],
            "confusion": {"labels": classes, "matrix": [[1, 0], [1, 0]]},
            "roc": [{"class": evil, "auc": 0.5, "fpr": [0, 1], "tpr": [0, 1]}],
            "pr": [
                {"class": evil, "average_precision": 0.5, "precision": [1, 0.5], "recall": [0, 1]}
            ],
            "calibration": {
                "kind": "positive class",
                "observed": [0.5],
                "predicted": [0.5],
                "counts": [2],
                "ece": 0.0,
            },
        },
        "samples": {
            "best": [
                {
                    "index": 1,
                    "target": evil,
                    "prediction": evil,
                    "confidence": 0.9,
                    "loss": 0.1,
                    "values": {column: evil},
                    "image": "javascript:alert(3)",
                }
            ],
            "worst": [],
            "misclassified": [],
        },
        "explanations": {
            "method": "permutation_importance",
            "metric": "accuracy",
            "baseline": 0.5,
            "repeats": 1,
            "rows": 2,
            "detail": evil,
            "permutation_importance": [
                {"feature": column, "importance": 0.1, "std": 0.0, "columns": 1}
            ],
        },
        "checks": [
            {
                "name": "nan_inputs",
                "passed": True,
                "value": 1.0,
                "detail": evil,
                "informational": False,
            }
        ],
        "gates": {
            "passed": True,
            "results": [
                {
                    "metric": "accuracy",
                    "op": ">=",
                    "value": 0.1,
                    "actual": 0.5,
                    "passed": True,
                    "detail": evil,
                }
            ],
        },
        "passed": True,
        "settings": {"note": evil},
    }


def test_report_html_escapes_names_from_the_data():
    from plotly.offline import get_plotlyjs

    from app.evaluate.report import render

    page = render(crafted_report())
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page
    assert "<b>run</b>" not in page and "&lt;b&gt;run&lt;/b&gt;" in page
    assert "javascript:alert(3)" not in page  # an image that is not base64 is left out
    assert page.count(get_plotlyjs()[:500]) == 1  # plotly's JavaScript, inline, once


# The process, its status and the command line


def test_a_run_that_cannot_be_tested_is_refused_before_anything_starts(trained_workspace):
    from app.workspace.runs import RunError

    run = trained_workspace.runs["classification"]
    (run / runs.CHECKPOINTS / runs.BEST).unlink()
    with pytest.raises(RunError, match="has no best checkpoint"):
        testsuite.start_test(run)
    assert testsuite.test_status(run)["state"] is None
    other = trained_workspace.runs["regression"]
    shutil.rmtree(trained_workspace.root / "data" / trained_workspace.data["regression"])
    with pytest.raises(RunError, match="dataset 'diabetes', which is no longer in the workspace"):
        testsuite.run_suite(other)
    assert not (other / "test").exists()


def test_a_failing_test_keeps_the_previous_report(trained_workspace):
    from app.evaluate import tester

    run = trained_workspace.runs["classification"]
    previous = '{"passed": true, "previous": 1}\n'
    (run / "test").mkdir()
    (run / "test" / "report.json").write_text(previous)
    (run / runs.CHECKPOINTS / runs.BEST).write_bytes(b"not a keras file")
    assert tester.execute(run) == 1
    status = testsuite.test_status(run)
    assert status["state"] == "failed"
    assert status["reason"] and "\n" not in status["reason"]
    assert (run / "test" / "report.json").read_text() == previous


@pytest.mark.slow
def test_layerflow_test_exits_1_when_a_gate_fails_and_0_when_they_pass(tested, capsys):
    from app.cli.main import main

    run = tested.runs["classification"]
    accuracy = tested.reports["classification"]["summary"]["accuracy"]
    quick = ["--parity", "none", "--latency-repeats", "2"]
    code = main(["test", str(run), "--gate", f"accuracy>={accuracy + 0.01}", "--json", *quick])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["passed"] is False and out["gates"]["results"][0]["passed"] is False
    assert out["summary"]["accuracy"] == pytest.approx(accuracy)
    status = testsuite.test_status(run)
    assert status["state"] == "finished" and status["progress"] == 1.0
    assert status["passed"] is False and status["pid"]

    code = main(["test", str(run), "--gate", f"accuracy>={accuracy - 0.01}", *quick])
    text = capsys.readouterr().out
    assert code == 0
    assert "PASSED" in text and "pass  accuracy is" in text and "report: " in text
    assert testsuite.read_report(run)["passed"] is True


def test_layerflow_test_exits_2_on_an_unknown_gate_metric(tested, capsys):
    from app.cli.main import main

    run = tested.runs["classification"]
    before = testsuite.test_status(run)
    assert main(["test", str(run), "--gate", "acuracy>=0.9"]) == 2
    error = capsys.readouterr().err
    assert "acuracy" in error and "accuracy, balanced_accuracy" in error
    assert testsuite.test_status(run) == before  # nothing started


def test_a_tested_run_still_reads_as_its_recorded_dvc_version(tested):
    import subprocess
    import sys

    run = tested.runs["classification"]
    root = run.parents[3]  # models/<model>/runs/<run> in the workspace
    assert (run / "test" / "report.json").is_file() and run.with_suffix(".dvc").is_file()
    done = subprocess.run([sys.executable, "-m", "dvc", "status", str(run.with_suffix(".dvc"))],
                          cwd=root, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "modified" not in done.stdout and "up to date" in done.stdout, done.stdout
