"""Baselines in the test report (app.evaluate.baselines) and the `beats_baseline` gate: each
baseline on small synthetic data against an answer computed here, the gate passing and failing,
and the real suite on a trained run through `layerflow test --gate beats_baseline`.

The synthetic tests need no model: the "model" is a set of predictions made up here, so that
its own scores are known too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape

from app.evaluate.baselines import (
    compute_baselines,
    detect_period,
    headline,
    mase,
    naive_forecasts,
    seasonal_naive_forecasts,
)
from app.evaluate.predictions import Predictions
from app.evaluate.settings import Gate, evaluate_gates, known_metrics, save_gates
from app.evaluate.subject import KINDS, Inputs, Subject
from app.workspace import Workspace
from app.workspace.datasets import Dataset


def add_table(folder: Path, name: str, frame: pd.DataFrame, target: str) -> Dataset:
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return Workspace.current().add_dataset(path, name, target=target)


def add_sample(name: str) -> Dataset:
    from app.data.samples import make_sample

    with tempfile.TemporaryDirectory() as folder:
        return Workspace.current().add_dataset(make_sample(name, Path(folder) / name), name)


def subject_of(dataset: Dataset) -> Subject:
    """A Subject of the dataset as Subject.of makes one for a run, without a run."""
    config, state = dataset.preprocessing()
    task = dataset.meta["task"]
    kind = KINDS[task]
    return Subject(
        folder=Path("."),
        info={"id": "synthetic", "model": "synthetic"},
        dataset=dataset,
        config=config,
        state=state,
        task=task,
        kind=kind,
        classes=list(state.classes or []) if kind == "classification" else [],
        rows=sorted(int(i) for i in dataset.splits["test"]),
        output="output",
        activation="softmax",
        source=dataset.source(),
    )


def made_up_predictions(subject: Subject, outputs) -> Predictions:
    """The test split as predict_split holds it, with `outputs(targets)` as the model's."""
    from app.runtime.transform import transform, window_starts

    inputs, targets = transform(subject.config, subject.state, subject.source, subject.rows)
    rows = subject.rows
    if subject.config.window is not None:
        rows = [subject.rows[p] for p in window_starts(subject.config, subject.rows)]
    return Predictions(
        rows=rows,
        targets=targets,
        outputs=outputs(targets),
        inputs=Inputs(subject, rows, inputs),
    )


def summary_of(subject: Subject, predictions: Predictions) -> dict[str, float]:
    from app.evaluate.classification import classification_metrics
    from app.evaluate.regression import regression_metrics

    if subject.kind == "classification":
        return classification_metrics(predictions.targets, predictions.outputs, subject.classes)[0]
    return regression_metrics(predictions.targets, predictions.outputs)[0]


def by_name(baselines: dict) -> dict[str, dict]:
    return {result["name"]: result for result in baselines["results"]}


# Classification and regression


def test_majority_class_scores_the_test_share_of_the_train_majority(workspace, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=400)
    frame = pd.DataFrame({"x": x, "noise": rng.normal(size=400),
                          "label": np.where(x > 0.65, "yes", "no")})  # fmt: skip
    subject = subject_of(add_table(tmp_path, "imbalanced", frame, "label"))
    # A model that is right but for its first three test rows.
    right = made_up_predictions(subject, lambda y: np.eye(2)[y])
    right.outputs[:3] = right.outputs[:3, ::-1]
    baselines = compute_baselines(subject, right, summary_of(subject, right))

    labels = frame["label"].to_numpy()
    train = labels[subject.dataset.splits["train"]]
    majority = pd.Series(train).value_counts().idxmax()
    share = float(np.mean(labels[subject.rows] == majority))
    found = by_name(baselines)
    assert majority == "no"
    assert found["majority class"]["value"] == pytest.approx(share)
    assert found["majority class"]["metrics"]["balanced_accuracy"] == pytest.approx(0.5)
    assert "'no'" in found["majority class"]["detail"]
    # One threshold on x separates the classes: a linear model finds it.
    assert found["logistic regression"]["value"] > 0.9
    assert found["HistGradientBoosting"]["value"] > 0.9
    model = 1 - 3 / len(subject.rows)
    assert baselines["metric"] == "accuracy" and baselines["model"] == pytest.approx(model)
    best = max(r["value"] for r in baselines["results"])
    assert baselines["best_value"] == best and found[baselines["best"]]["value"] == best
    assert baselines["margin"] == pytest.approx(model - best)
    assert baselines["fit"]["rows"] == baselines["fit"]["of"] == len(train)


def test_the_mean_baseline_has_the_r2_of_the_train_mean(workspace, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    frame = pd.DataFrame({"x": x, "y": 2 * x + 5 + rng.normal(0, 0.1, 300)})
    subject = subject_of(add_table(tmp_path, "line", frame, "y"))
    predictions = made_up_predictions(subject, lambda y: y + 1.0)
    baselines = compute_baselines(subject, predictions, summary_of(subject, predictions))

    y = frame["y"].to_numpy()
    test, train_mean = y[subject.rows], y[subject.dataset.splits["train"]].mean()
    r2 = 1 - np.sum((test - train_mean) ** 2) / np.sum((test - test.mean()) ** 2)
    found = by_name(baselines)
    assert baselines["metric"] == "r2"
    assert found["mean"]["value"] == pytest.approx(r2, abs=1e-6)
    assert found["mean"]["metrics"]["mae"] == pytest.approx(np.mean(np.abs(test - train_mean)))
    assert found["linear regression"]["value"] > 0.99  # y is a line in x
    assert baselines["model_metrics"]["mae"] == pytest.approx(1.0, abs=1e-5)
    assert baselines["best"] in ("linear regression", "HistGradientBoosting")
    assert baselines["margin"] < 0  # the made-up model is off by 1 everywhere


def test_text_is_read_as_a_bag_of_words(workspace, tmp_path):
    # The label is one word's (good or bad) among ten words of noise.
    rng = np.random.default_rng(5)
    vocabulary = [f"word{i}" for i in range(200)]
    labels = rng.choice(["good", "bad"], size=400)
    sentences = [" ".join([*rng.choice(vocabulary, 10), label]) for label in labels]
    frame = pd.DataFrame({"review": sentences, "verdict": labels})
    subject = subject_of(add_table(tmp_path, "reviews", frame, "verdict"))
    assert subject.config.features[0].kind == "text"
    predictions = made_up_predictions(subject, lambda y: np.full((len(y), 2), 0.5))
    baselines = compute_baselines(subject, predictions, summary_of(subject, predictions))
    found = by_name(baselines)
    assert found["logistic regression"]["value"] > 0.9
    assert "TF-IDF" in found["logistic regression"]["detail"]
    assert found["HistGradientBoosting"]["value"] is None
    assert "not image or text" in found["HistGradientBoosting"]["skipped"]


def test_a_baseline_that_cannot_be_fitted_is_skipped_with_one_line(workspace, tmp_path):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=200), "label": ["a", "b"] * 100})
    dataset = add_table(tmp_path, "one_class_train", frame, "label")
    # The train split holds class 'a' only: a classifier cannot be fitted.
    train = [i for i in dataset.splits["train"] if i % 2 == 0]
    dataset.__dict__["splits"] = {**dataset.splits, "train": train}
    subject = subject_of(dataset)
    predictions = made_up_predictions(subject, lambda y: np.eye(2)[y])
    baselines = compute_baselines(subject, predictions, summary_of(subject, predictions))
    found = by_name(baselines)
    skipped = found["logistic regression"]["skipped"]
    assert found["logistic regression"]["value"] is None
    assert "class" in skipped and "\n" not in skipped and "Traceback" not in skipped
    assert found["majority class"]["value"] == pytest.approx(0.5)
    assert baselines["best"] is not None and baselines["margin"] is not None


# Anomaly detection


def test_anomaly_baselines_score_the_distance_from_normal_rows_and_an_isolation_forest(
    workspace, tmp_path
):
    from dataclasses import replace

    from sklearn.metrics import roc_auc_score

    from app.runtime.transform import transform

    rng = np.random.default_rng(3)
    odd = rng.uniform(size=500) < 0.1
    x = rng.normal(size=(500, 2)) + 4 * odd[:, None]
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "kind": np.where(odd, "odd", "ok")})
    subject = replace(subject_of(add_table(tmp_path, "odd", frame, "kind")), kind="anomaly")
    predictions = made_up_predictions(subject, lambda y: np.zeros(len(y)))
    predictions.extra["normal_errors"] = {"normal": "ok"}
    baselines = compute_baselines(subject, predictions, {"roc_auc": 0.5})

    config, state, source = subject.config, subject.state, subject.source
    normal = [r for r in sorted(subject.dataset.splits["train"]) if not odd[r]]
    fitted = transform(config, state, source, normal)[0]["features"]
    test = transform(config, state, source, subject.rows)[0]["features"]
    distance = (((test - fitted.mean(axis=0)) / fitted.std(axis=0)) ** 2).mean(axis=1)
    found = by_name(baselines)
    assert baselines["metric"] == "roc_auc" and baselines["fit"]["rows"] == len(normal)
    assert found["distance from the normal mean"]["value"] == pytest.approx(
        roc_auc_score(odd[subject.rows], distance)
    )
    assert found["IsolationForest"]["value"] > 0.9
    assert baselines["margin"] == pytest.approx(0.5 - baselines["best_value"])
    # without labels there is nothing to score "anomalous" against
    predictions.extra["normal_errors"] = {"normal": None}
    unlabelled = compute_baselines(subject, predictions, {})
    assert unlabelled["margin"] is None and unlabelled["best"] is None
    assert all("no label column" in r["skipped"] for r in unlabelled["results"])


# Forecasting


def test_naive_and_seasonal_naive_forecasts_of_a_known_series():
    line = np.arange(20.0)
    starts = np.array([0, 5, 10])
    naive = naive_forecasts(line, starts, size=4, horizon=2)
    assert naive.tolist() == [[3, 3], [8, 8], [13, 13]]
    truth = line[starts[:, None] + 4 + np.arange(2)]  # 4, 5 / 9, 10 / 14, 15
    assert np.mean(np.abs(truth - naive)) == pytest.approx(1.5)  # off by 1, then by 2
    periodic = np.tile([0.0, 1.0, 5.0, 2.0], 5)
    seasonal = seasonal_naive_forecasts(periodic, starts, size=4, horizon=6, period=4)
    assert seasonal.tolist() == periodic[starts[:, None] + 4 + np.arange(6)].tolist()
    assert mase(truth, truth + 0.75, naive) == pytest.approx(0.75 / 1.5)
    with pytest.raises(ValueError, match="season of 5 rows does not fit in a window of 4"):
        seasonal_naive_forecasts(periodic, starts, size=4, horizon=1, period=5)


def test_the_season_is_found_in_a_noisy_trending_series():
    rng = np.random.default_rng(3)
    t = np.arange(600)
    series = 0.05 * t + 2 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.3, 600)
    period, correlation = detect_period(series, max_lag=30)
    assert period == 12 and correlation > 0.5
    period, correlation = detect_period(rng.normal(size=600), max_lag=30)
    assert period is None and correlation < 0.2  # the highest of white noise: no season


def test_forecasting_baselines_give_mase_against_the_naive_forecast(workspace):
    subject = subject_of(add_sample("timeseries"))
    predictions = made_up_predictions(subject, lambda y: y + 0.1)
    baselines = compute_baselines(subject, predictions, summary_of(subject, predictions))

    values = subject.source.frame["value"].to_numpy()
    size = subject.config.window.size
    rows = np.asarray(subject.rows)
    actual, last = values[rows[size:]], values[rows[size - 1 : -1]]  # one step ahead
    naive_mae = np.mean(np.abs(actual - last))
    found = by_name(baselines)
    assert found["naive"]["metrics"]["mae"] == pytest.approx(naive_mae, rel=1e-5)
    assert found["naive"]["metrics"]["mase"] == pytest.approx(1.0)
    assert baselines["model_metrics"]["mase"] == pytest.approx(0.1 / naive_mae, rel=1e-4)
    # The sample's seasons are 7 and 50 steps; only 7 fits in its window of 24.
    assert baselines["season"]["period"] == 7
    seasonal = np.mean(np.abs(actual - values[rows[size - 7 : -7]]))
    assert found["seasonal naive"]["metrics"]["mae"] == pytest.approx(seasonal, rel=1e-5)
    assert found["seasonal naive"]["metrics"]["mase"] == pytest.approx(seasonal / naive_mae)


# Segmentation


def test_all_background_mean_iou_from_the_models_pixel_counts():
    classes = ["0", "255"]
    subject = Subject(Path("."), {}, None, None, None, "segmentation", "segmentation", classes,
                      [0], "output", "softmax")  # fmt: skip
    # 60 background pixels, 40 foreground; the model's mistakes do not matter here.
    predictions = Predictions(rows=[0], targets=np.zeros(1),
                              confusion=np.array([[50, 10], [5, 35]]))  # fmt: skip
    baselines = compute_baselines(subject, predictions, {"mean_iou": 0.7, "pixel_accuracy": 0.85})
    result = by_name(baselines)["all background"]
    # Background: IoU 60 / 100; foreground: never predicted, IoU 0.
    assert result["value"] == pytest.approx((0.6 + 0.0) / 2)
    assert result["metrics"]["pixel_accuracy"] == pytest.approx(0.6)
    assert baselines["margin"] == pytest.approx(0.7 - 0.3)


# The gate


def report_with(margin: float | None, skipped: str | None = None) -> dict:
    results = [{"name": "majority class", "value": 0.6, "metrics": {"accuracy": 0.6},
                "detail": "always 'no'", "skipped": None},
               {"name": "logistic regression", "value": None, "metrics": {}, "detail": None,
                "skipped": skipped or "lbfgs failed"}]  # fmt: skip
    if margin is None:
        results = results[1:]
    return {
        "kind": "classification",
        "metrics": {"classes": ["no", "yes"], "top_k": 3},
        "summary": {"accuracy": 0.6 + (margin or 0.0)},
        "performance": {},
        "baselines": {
            "metric": "accuracy",
            "model": 0.6 + (margin or 0.0),
            "results": results,
            "best": None if margin is None else "majority class",
            "best_value": None if margin is None else 0.6,
            "margin": margin,
        },
    }


def test_beats_baseline_passes_only_when_the_model_beats_the_best_baseline():
    gate = Gate.parse("beats_baseline")
    assert gate == Gate("beats_baseline", ">", 0.0)
    for kind in ("classification", "regression", "segmentation"):
        assert "beats_baseline" in known_metrics(kind)

    passed = evaluate_gates(report_with(0.05), [gate])
    assert passed["passed"] is True
    result = passed["results"][0]
    assert result["actual"] == pytest.approx(0.05)
    assert "majority class (0.6)" in result["detail"] and "meets" in result["detail"]

    for margin in (0.0, -0.1):  # a tie is not a win: a model stuck on the majority class ties
        failed = evaluate_gates(report_with(margin), [gate])["results"][0]
        assert failed["passed"] is False and "misses beats_baseline > 0" in failed["detail"]

    by_two_points = Gate.parse("beats_baseline>=0.02")
    assert not evaluate_gates(report_with(0.01), [by_two_points])["passed"]
    assert evaluate_gates(report_with(0.03), [by_two_points])["passed"]


def test_beats_baseline_fails_when_no_baseline_was_computed():
    gate = Gate.parse("beats_baseline")
    result = evaluate_gates(report_with(None, "not enough rows"), [gate])["results"][0]
    assert result["passed"] is False and "not enough rows" in result["detail"]
    older = {**report_with(0.1), "baselines": None}  # a report made before baselines
    result = evaluate_gates(older, [gate])["results"][0]
    assert result["passed"] is False and "no baselines" in result["detail"]


def test_beats_baseline_is_saved_like_any_gate(workspace):
    from app.evaluate.settings import load_gates

    save_gates("some-model", [Gate.parse("beats_baseline"), Gate.parse("accuracy>0.5")])
    assert load_gates("some-model") == [Gate("beats_baseline", ">", 0), Gate("accuracy", ">", 0.5)]


# Through the real suite


def test_layerflow_test_reports_baselines_and_gates_on_beating_them(trained_workspace, capsys):
    from app.cli.main import main
    from app.evaluate import suite as testsuite
    from app.export.exporter import check_gate
    from app.runtime.transform import transform

    run = trained_workspace.runs["binary"]
    quick = ["--parity", "none", "--latency-repeats", "2"]
    code = main(["test", str(run), "--gate", "beats_baseline", *quick])
    out = capsys.readouterr().out
    report = testsuite.read_report(run)
    baselines = report["baselines"]

    dataset = Workspace.current().dataset(trained_workspace.data["binary"])
    config, state = dataset.preprocessing()
    _, train = transform(config, state, dataset.source(), sorted(dataset.splits["train"]))
    _, test = transform(config, state, dataset.source(), sorted(dataset.splits["test"]))
    share = float(np.mean(test == np.bincount(train).argmax()))
    found = by_name(baselines)
    assert set(found) == {"majority class", "logistic regression", "HistGradientBoosting"}
    assert found["majority class"]["value"] == pytest.approx(share)
    assert baselines["model"] == report["summary"]["accuracy"]
    computed = [r["value"] for r in baselines["results"] if r["value"] is not None]
    assert baselines["margin"] == pytest.approx(baselines["model"] - max(computed))

    gate = report["gates"]["results"][0]
    beats = baselines["margin"] > 0
    assert gate["metric"] == "beats_baseline" and gate["passed"] is beats
    assert baselines["best"] in gate["detail"]
    assert f"baselines (accuracy)\n  {headline(baselines)}" in out
    assert f"  {'pass' if beats else 'FAIL'}  accuracy {baselines['model']:.4g} against" in out
    assert code == (0 if report["passed"] else 1)
    if not beats:
        assert "gate beats_baseline > 0" in check_gate(run)["reason"]

    page = (run / "test" / "report.html").read_text()
    assert "Model vs baselines" in page and 'id="chart-baselines"' in page
    assert str(escape(headline(baselines))) in page
    for name in found:
        assert name in page
    assert f"{found['majority class']['value']:.4g}" in page
