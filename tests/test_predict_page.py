"""The Predict page, driven by Streamlit's AppTest over a copy of the trained workspace: it asks
the run's warm model server (a real child process, stopped after each test) and never imports
TensorFlow itself."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.graph.canvas import escape_markdown
from app.serve import client
from tests.test_app import ENTRY, ROOT, project_of_run

PAGE = str(ROOT / "pages" / "predict.py")


@pytest.fixture
def trained(trained_workspace):
    """The trained workspace; the model servers its pages start are stopped afterwards."""
    yield trained_workspace
    for folder in trained_workspace.runs.values():
        client.stop(folder)


def predict_page(project: str = "trained") -> AppTest:
    """The app showing the Predict page of `project`, run once (the server starts in it)."""
    app = AppTest.from_file(ENTRY, default_timeout=240)
    app.query_params["project"] = project
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    return app


def probabilities(app: AppTest) -> dict[str, float]:
    chart = app.get("plotly_chart")[0]  # the prediction's, above the what-if charts
    bars = json.loads(chart.proto.spec)["data"][0]
    return dict(zip(bars["y"], bars["x"], strict=True))


def test_a_table_row_is_a_form_of_its_columns_and_each_change_predicts_again(trained):
    project_of_run(trained, "classification")
    app = predict_page()
    columns = [spec["column"] for spec in client.metadata(client.running(
        trained.runs["classification"]))["layerflow"]["inputs"]]  # fmt: skip
    assert [n.label for n in app.number_input] == [escape_markdown(c) for c in columns]
    assert "Train range" in app.number_input[0].help
    before = probabilities(app)
    assert set(before) == {"setosa", "versicolor", "virginica"}
    assert sum(before.values()) == pytest.approx(1, abs=1e-4)
    assert app.metric[0].value == max(before, key=before.get)
    for widget in app.number_input:  # a large flower: far from the test row it started from
        widget.set_value(10.0)
    app.run()
    assert not app.exception and not app.error
    after = probabilities(app)
    assert set(after) == set(before) and after != before


def test_why_what_if_and_the_nearest_other_prediction_of_a_table_row(trained):
    project_of_run(trained, "classification")
    app = predict_page()
    record = client.running(trained.runs["classification"])
    columns = [spec["column"] for spec in client.metadata(record)["layerflow"]["inputs"]]
    _, parts, sweep = (json.loads(chart.proto.spec) for chart in app.get("plotly_chart"))
    assert sorted(parts["data"][0]["y"]) == sorted(columns)  # each column's part
    lines = sweep["data"]  # each class's probability over the first column's train range
    assert {line["name"] for line in lines} == {"setosa", "versicolor", "virginica"}
    assert len(lines[0]["x"]) == 25 and lines[0]["x"][0] < lines[0]["x"][-1]
    totals = np.sum([line["y"] for line in lines], axis=0)
    np.testing.assert_allclose(totals, 1, atol=1e-4)  # three classes: they share each point
    predicted = app.metric[0].value
    (nearest,) = [m.value for m in app.markdown if m.value.startswith("Test row")]
    assert "is predicted" in nearest and f"**{predicted}**" not in nearest
    assert len(app.dataframe) == 1


def test_an_image_model_offers_an_upload_and_predicts_a_test_image(trained):
    project_of_run(trained, "image")
    app = predict_page()
    assert len(app.get("file_uploader")) == 1
    assert not app.number_input
    assert set(probabilities(app)) <= {str(digit) for digit in range(10)}
    assert len(probabilities(app)) == 10


def test_an_image_shows_where_the_prediction_looks_and_a_probe_changes_it(trained):
    project_of_run(trained, "image")
    app = predict_page()
    before = probabilities(app)
    saliency = json.loads(app.get("plotly_chart")[1].proto.spec)
    image, heatmap = saliency["data"]
    assert (image["type"], heatmap["type"]) == ("image", "heatmap")
    assert np.asarray(heatmap["z"]).shape == (8, 8)  # an 8x8 digit: one cell per pixel
    assert np.nanmax(heatmap["z"]) > 0  # covering some pixel lowers the predicted class
    next(s for s in app.slider if s.label.startswith("Noise")).set_value(60).run()
    assert not app.exception and not app.error
    assert probabilities(app) != before


def test_a_text_shows_each_words_part(extra_workspace):
    project_of_run(extra_workspace, "text")
    try:
        app = predict_page()
        (text,) = app.text_area
        assert text.value.strip()
        words = json.loads(app.get("plotly_chart")[1].proto.spec)["data"][0]["y"]
        assert words and all(w.rsplit(" (", 1)[0] in text.value.split() for w in words)
        text.set_value("good " * 3).run()
        assert not app.exception and not app.error
        assert {w.rsplit(" (", 1)[0] for w in json.loads(
            app.get("plotly_chart")[1].proto.spec)["data"][0]["y"]} == {"good"}  # fmt: skip
    finally:
        for folder in extra_workspace.runs.values():
            client.stop(folder)


def test_a_forecast_follows_its_window_and_moves_with_it(extra_workspace):
    project_of_run(extra_workspace, "forecasting")
    try:
        app = predict_page()
        (window,) = app.slider
        assert window.value == window.max  # the latest window first

        def traces() -> dict[str, list[float]]:
            figure = json.loads(app.get("plotly_chart")[0].proto.spec)
            return {trace["name"]: trace["y"] for trace in figure["data"]}

        latest = traces()
        assert len(latest["window"]) == 24 and len(latest["forecast"]) >= 1
        assert len(latest["what came"]) == len(latest["forecast"])
        window.set_value(1).run()
        assert not app.exception and not app.error
        assert traces()["forecast"] != latest["forecast"]
    finally:
        for folder in extra_workspace.runs.values():
            client.stop(folder)


def test_an_autoencoder_shows_its_reconstruction_error_and_a_walk_between_rows(
    extra_workspace,
):
    project_of_run(extra_workspace, "anomaly")
    try:
        app = predict_page()
        error, verdict = app.metric
        threshold = client.metadata(client.running(extra_workspace.runs["anomaly"]))[
            "layerflow"]["threshold"]  # fmt: skip
        assert verdict.value == ("anomalous" if float(error.value) > threshold else "normal")

        def figure(key: str) -> dict[str, list]:
            chart = next(c for c in app.get("plotly_chart") if c.proto.id.endswith(f"-{key}"))
            return {t.get("name"): t for t in json.loads(chart.proto.spec)["data"]}

        lines = figure("reconstruction")
        assert len(lines["input"]["y"]) == len(lines["reconstruction"]["y"]) == 30
        assert lines["input"]["x"][0] == "mean_radius"  # features named by their columns
        given, rebuilt = (np.asarray(lines[n]["y"]) for n in ("input", "reconstruction"))
        assert float(error.value) == pytest.approx(((given - rebuilt) ** 2).mean(), rel=1e-3)
        walked = figure("walk")
        (share,) = app.slider
        share.set_value(0.0).run()
        assert not app.exception and not app.error
        at_start = np.asarray(figure("walk")["decoded mix"]["y"])
        # all of this row's code: its decoding is its reconstruction
        np.testing.assert_allclose(at_start, rebuilt, rtol=1e-4, atol=1e-4)
        assert walked["decoded mix"]["y"] != at_start.tolist()
        app.number_input[0].set_value(1e4).run()  # a tumour far beyond any in the data
        assert not app.exception and not app.error
        assert app.metric[1].value == "anomalous"
    finally:
        for folder in extra_workspace.runs.values():
            client.stop(folder)


def test_the_page_predicts_without_importing_tensorflow(trained):
    project_of_run(trained, "classification")
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"app = AppTest.from_file({ENTRY!r}, default_timeout=240)\n"
        "app.query_params['project'] = 'trained'\n"
        "app.run()\n"
        f"app.switch_page({PAGE!r}).run()\n"
        "assert not app.exception and not app.error, (app.exception, app.error)\n"
        "assert app.get('plotly_chart'), 'no prediction'\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["False", "False"]
