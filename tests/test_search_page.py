"""The Search page, driven by Streamlit's AppTest: the space proposed and edited, a search started
from its form and followed to its end, and a trial made the project's model."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from streamlit.testing.v1 import AppTest

from app.graph.space import dimensions
from app.search import study as studies
from app.workspace import Workspace
from tests.test_app import ENTRY, ROOT, add_iris, button
from tests.trained import configured

PAGE = str(ROOT / "pages" / "search.py")


def search_page() -> AppTest:
    app = AppTest.from_file(ENTRY, default_timeout=120)
    app.query_params["project"] = "flowers"
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    return app


@pytest.fixture
def flowers(workspace):
    """A project of the tabular template configured for iris, trained for 2 epochs; the
    workers its searches start are killed afterwards."""
    add_iris()
    project = Workspace.current().create_project("flowers", configured("tabular_classification",
                                                                       "iris"))  # fmt: skip
    project.use_dataset("iris")
    project.save_settings("training", {"epochs": 2})
    yield project
    for name in studies.list_names(workspace):
        for worker in studies.workers(workspace, name):
            os.kill(worker["pid"], signal.SIGKILL)


def test_a_space_is_proposed_then_a_bad_edit_is_refused_naming_its_row(flowers):
    app = search_page()
    start = next(b for b in app.get("button") if b.label == "Start search")
    assert start.disabled, "no space: nothing to search"
    button(app, "Propose a space").click().run()
    space = flowers.graph().search
    assert space is not None and "training.learning_rate" in dimensions(space)
    assert not next(b for b in app.get("button") if b.label == "Start search").disabled


def test_the_edited_space_table_becomes_a_space_or_one_message_per_row_at_fault():
    import pandas as pd

    from ui.search import space_from_table, space_table

    space = configured_space()
    table = space_table(space)
    again, problems = space_from_table(table)
    assert problems == [] and again == space
    bad = pd.DataFrame([
        {"name": "dense1.units", "kind": "choices", "choices": "[8, 16"},
        {"name": "units", "kind": "range", "low": 1, "high": 2},
        {"name": "dropout.rate", "kind": "range", "low": "a lot", "high": 0.5},
    ])  # fmt: skip
    _, problems = space_from_table(bad)
    assert len(problems) == 3
    assert problems[0].startswith("row 1 (dense1.units): ")
    assert problems[1].startswith("row 2: 'units' must be node.setting")
    assert problems[2].startswith("row 3 (dropout.rate): ")


def configured_space():
    from app.graph.document import Choice, Range, SearchSpace

    return SearchSpace(settings={"dense1": {"units": Choice(choices=[8, 16])},
                                 "dropout": {"rate": Range(low=0.0, high=0.5)},
                                 "cell/conv.1": {"filters": Choice(choices=[4, 8])}},
                       optional=["dropout"],
                       training={"learning_rate": Range(low=1e-4, high=1e-2, log=True)})


@pytest.mark.slow
def test_a_search_started_on_the_page_ends_and_a_trial_becomes_the_model(flowers, workspace):
    app = search_page()
    button(app, "Propose a space").click().run()
    trials = next(n for n in app.number_input if n.label == "Trials")
    trials.set_value(3)
    button(app, "Start search").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    (name,) = studies.list_names(workspace)
    deadline = time.monotonic() + 240
    while studies.summary(workspace, name)["state"] == "running":
        assert time.monotonic() < deadline, studies.summary(workspace, name)
        time.sleep(2)
    found = studies.summary(workspace, name)
    assert found["state"] == "finished" and found["done"] == 3

    app = search_page()
    assert not app.exception, app.exception
    trials_table = next(d.value for d in app.dataframe if "trial" in d.value.columns)
    assert list(trials_table["trial"]) == [0, 1, 2]
    titles = [json.loads(chart.proto.spec)["layout"].get("title", {}).get("text", "")
              for chart in app.get("plotly_chart")]  # fmt: skip
    assert any("against params" in (t or "") for t in titles), titles
    chosen = found["best"]
    assert chosen is not None
    next(s for s in app.selectbox if s.label == "Trial").select(chosen).run()
    button(app, "Use this trial").click().run()
    assert not app.exception, app.exception
    graph = flowers.graph()
    row = next(r for r in found["rows"] if r["trial"] == chosen)
    nodes = {n.id: n for n in graph.nodes}
    for dimension, value in row["values"].items():
        head, _, setting = dimension.partition(".")
        if head == "training":
            assert flowers.settings("training")[setting] == value
        elif head != "optional":
            assert nodes[head].settings[setting] == value
    assert flowers.settings("training")["epochs"] == 2
