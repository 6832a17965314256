"""The Predict page in a real browser (Chromium, as tests/test_e2e.py drives it) over a copy of
the trained workspace: a changed value reaches the run's warm model server and changes the
prediction on the page."""

from __future__ import annotations

import pytest

from app.serve import client
from tests.test_app import project_of_run
from tests.test_e2e import browser_page, server, settle  # noqa: F401 - fixtures used below

pytestmark = pytest.mark.slow


@pytest.fixture
def workspace(trained_workspace):
    """The trained workspace, with a project of the iris run; its model servers stopped after."""
    project_of_run(trained_workspace, "classification", "iris")
    yield trained_workspace.root
    for folder in trained_workspace.runs.values():
        client.stop(folder)


def set_flower(page, petal_length: str, petal_width: str) -> str:
    """Type the petal's size into the form; the predicted class the page then shows."""
    for part, value in (("length", petal_length), ("width", petal_width)):
        field = page.locator(f'input[aria-label*="petal"][aria-label*="{part}"]')
        field.fill(value)
        field.press("Enter")
    settle(page)
    return page.locator('[data-testid="stMetricValue"]').first.inner_text()


def test_a_changed_value_on_the_predict_page_changes_the_prediction(browser_page, server):  # noqa: F811
    page = browser_page
    page.goto(server + "predict?project=iris")
    drawn = page.get_by_text("Predicted class").or_(page.locator('[data-testid="stAlert"]'))
    drawn.first.wait_for(timeout=180_000)
    assert page.get_by_text("Predicted class").is_visible(), page.inner_text("body")
    settle(page)
    assert "/v1/models/" in page.inner_text("body")  # the server's URL, in the caption
    assert set_flower(page, "1.4", "0.2") == "setosa"
    assert set_flower(page, "6.0", "2.3") == "virginica"
