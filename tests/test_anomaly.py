"""Anomaly detection: the metrics of reconstruction errors (on errors whose answers are worked
out by hand), and the autoencoder template trained on breast cancer and tested end to end."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

from app.evaluate.anomaly import anomaly_metrics, error_threshold, reconstruction_errors

# Normal rows' errors 1, 2, 3, 4; anomalous ones' 2.5, 5, 6.
ERRORS = np.array([1.0, 2.0, 3.0, 4.0, 2.5, 5.0, 6.0])
ANOMALOUS = np.array([False, False, False, False, True, True, True])


def test_reconstruction_error_is_the_mean_squared_difference_per_row():
    inputs = np.array([[0.0, 0.0], [1.0, 2.0]])
    outputs = np.array([[1.0, 1.0], [1.0, 0.0]])
    assert reconstruction_errors(outputs, inputs).tolist() == [1.0, 2.0]


def test_the_threshold_is_a_percentile_of_the_normal_errors():
    # 95th percentile of 1..20, interpolated: rank 0.95 * 19 = 18.05, between 19 and 20
    assert error_threshold(np.arange(1.0, 21.0), 95) == pytest.approx(19.05)
    assert error_threshold(np.arange(1.0, 21.0), 50) == pytest.approx(10.5)


def test_anomaly_metrics_on_errors_with_known_answers():
    summary, detail = anomaly_metrics(ERRORS, ANOMALOUS, threshold=3.5)
    # AUC: of the 12 (anomalous, normal) pairs, 2.5 beats 2, 5 and 6 beat all 4: 10 of 12
    assert summary["roc_auc"] == pytest.approx(10 / 12)
    # AP: ranked 6, 5, 4, 3, 2.5, ...: the anomalies come at ranks 1, 2 and 5
    assert summary["average_precision"] == pytest.approx((1 + 1 + 3 / 5) / 3)
    # flagged above 3.5: 4 (normal), 5 and 6 (anomalous); 2.5 is missed
    assert summary["precision"] == pytest.approx(2 / 3)
    assert summary["recall"] == pytest.approx(2 / 3)
    assert summary["f1"] == pytest.approx(2 / 3)
    assert summary["flagged_rate"] == pytest.approx(3 / 7)
    assert detail["confusion"]["matrix"] == [[3, 1], [1, 2]]
    histogram = detail["histogram"]
    assert sum(histogram["normal"]) == 4 and sum(histogram["anomalous"]) == 3
    assert detail["roc"][0]["auc"] == summary["roc_auc"]


def test_without_labels_only_the_threshold_and_the_errors_are_reported():
    summary, detail = anomaly_metrics(ERRORS, None, threshold=3.5)
    assert set(summary) == {"threshold", "flagged_rate", "error_mean"}
    assert sum(detail["histogram"]["all"]) == len(ERRORS)


def test_the_threshold_percentile_is_a_test_setting_checked_like_the_others():
    from app.evaluate.settings import TestSettings

    assert TestSettings().anomaly_percentile == 95
    assert TestSettings.from_value({"anomaly_percentile": 99.5}).anomaly_percentile == 99.5
    with pytest.raises(ValueError, match=r"`anomaly_percentile`, expected a number in \(0, 100\]"):
        TestSettings.from_value({"anomaly_percentile": 0})


def breast_cancer_autoencoder():
    """The breast cancer sample in the current workspace and the template configured for it."""
    from app.data.samples import make_sample
    from app.graph.model_templates import load_template
    from app.workspace import Workspace

    with tempfile.TemporaryDirectory() as folder:
        sample = make_sample("breast_cancer", Path(folder) / "bc")
        dataset = Workspace.current().add_dataset(sample, "breast_cancer")
    return dataset, dataset.configure(load_template("anomaly_autoencoder"))[0]


def test_an_unknown_normal_class_is_refused_before_the_run_starts(workspace):
    from app.train import launch
    from app.workspace.runs import RunError

    _, doc = breast_cancer_autoencoder()
    with pytest.raises(RunError, match=r"\(benign, malignant\).*normal_class='healthy'"):
        launch.create_run(doc, {"normal_class": "healthy"}, "breast_cancer")


@pytest.mark.slow
def test_the_autoencoder_template_tells_malignant_from_benign_tumours(workspace):
    from app.evaluate.suite import read_report, run_suite
    from app.keras.builder import load_run_model
    from app.runtime.transform import transform
    from app.train import launch
    from app.workspace import runs

    dataset, doc = breast_cancer_autoencoder()
    folder = launch.create_run(doc, {"epochs": 10}, "breast_cancer")
    launch.start_run(folder).wait(timeout=120)
    assert runs.status(folder)["state"] == "finished", runs.status(folder)["reason"]
    # it trained on the benign (normal) train rows only, 32 a batch
    labels = dataset.source().frame["target"]
    benign = sum(labels.iloc[r] == "benign" for r in dataset.splits["train"])
    assert benign < len(dataset.splits["train"])
    assert runs.status(folder)["steps"] == math.ceil(benign / 32)
    run_suite(folder, {"parity_formats": [], "latency_repeats": 1, "explanations": False})
    report = read_report(folder)
    assert (report["kind"], report["task"]) == ("anomaly", "anomaly_detection")
    assert report["metrics"]["normal_class"] == "benign"
    assert report["summary"]["roc_auc"] >= 0.85
    assert report["summary"]["threshold"] == report["metrics"]["threshold"] > 0
    assert report["metrics"]["threshold_split"] == "validation"
    # the threshold is the 95th percentile of the errors on the benign validation rows
    config, state = dataset.preprocessing()
    rows = [r for r in dataset.splits["validation"] if labels.iloc[r] == "benign"]
    x = transform(config, state, dataset.source(), rows)[0]["features"]
    errors = ((load_run_model(folder, "best").predict(x, verbose=0) - x) ** 2).mean(axis=1)
    assert report["summary"]["threshold"] == pytest.approx(np.percentile(errors, 95), rel=1e-5)
    page = (folder / runs.TEST_DIR / "report.html").read_text()
    assert "Reconstruction error on the test rows" in page
    # beside the baselines fitted on the benign train rows, scored on the same test rows
    baselines = report["baselines"]
    assert baselines["metric"] == "roc_auc" and baselines["model"] == report["summary"]["roc_auc"]
    found = {r["name"]: r for r in baselines["results"]}
    assert set(found) == {"distance from the normal mean", "IsolationForest"}
    assert all(0.5 < r["value"] <= 1 and r["skipped"] is None for r in found.values())
    assert baselines["margin"] == pytest.approx(report["summary"]["roc_auc"] - max(
        r["value"] for r in found.values()
    ))
    benign_train = [r for r in dataset.splits["train"] if labels.iloc[r] == "benign"]
    assert baselines["fit"]["rows"] == len(benign_train)
    shows_the_report_on_the_test_page(folder, report)


def shows_the_report_on_the_test_page(folder: Path, report: dict) -> None:
    """The Test page of a project on the run's model and data shows the report's figures."""
    from app.graph.document import load
    from app.workspace import Workspace
    from tests.test_app import page

    project = Workspace.current().create_project("anomaly", load(folder / "graph.json"))
    project.use_dataset("breast_cancer")
    app = page("test", "anomaly")
    metrics = {m.label: m.value for m in app.metric}
    for name in ("roc_auc", "average_precision", "threshold", "precision", "recall", "f1"):
        assert metrics[name] == f"{report['summary'][name]:.4g}"
    assert any(f"above {report['summary']['threshold']:.4g}" in c.value for c in app.caption)
    figures = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    bars = [trace["name"] for trace in figures[0]["data"]]
    assert bars == ["normal", "anomalous"]
