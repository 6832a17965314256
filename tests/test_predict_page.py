"""The Predict page, driven by Streamlit's AppTest over a copy of the trained workspace: it asks
the run's warm model server (a real child process, stopped after each test) and never imports
TensorFlow itself."""

from __future__ import annotations

import json
import subprocess
import sys

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
    (chart,) = app.get("plotly_chart")
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


def test_an_image_model_offers_an_upload_and_predicts_a_test_image(trained):
    project_of_run(trained, "image")
    app = predict_page()
    assert len(app.get("file_uploader")) == 1
    assert not app.number_input
    assert set(probabilities(app)) <= {str(digit) for digit in range(10)}
    assert len(probabilities(app)) == 10


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
