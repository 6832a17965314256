"""The Playground: toy sets, a network that learns them step by step, its figures, the page
(AppTest) and "Open in LayerFlow"."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.graph.analysis import analyze
from app.playground.data import SETS, toy_set
from app.playground.network import GRID, Playground
from app.playground.project import network_graph, open_in_layerflow
from app.workspace import Workspace
from tests.test_app import ENTRY, ROOT, button
from ui.playground import boundary_image, loss_figure, units_image


@pytest.mark.parametrize("kind", SETS)
def test_a_toy_set_is_split_with_both_classes_on_each_side_and_inside_the_plane(kind):
    data = toy_set(kind, points=200, noise=0.2, train=0.7, seed=3)
    assert len(data.y_train) == 140 and len(data.y_test) == 60
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert set(np.unique(y)) == {0, 1}
        assert np.abs(x).max() <= 1
    again = toy_set(kind, points=200, noise=0.2, train=0.7, seed=3)
    np.testing.assert_array_equal(data.x_train, again.x_train)


def test_bad_settings_are_refused_naming_them():
    with pytest.raises(ValueError, match="`kind`, expected one of circles"):
        toy_set("moons")
    with pytest.raises(ValueError, match="`train`"):
        toy_set("xor", train=1.0)
    with pytest.raises(ValueError, match="`layers`"):
        Playground(toy_set("xor"), layers=(0,))


@pytest.mark.parametrize("kind, layers", [("circles", (4, 4)), ("xor", (8, 8)),
                                          ("spirals", (8, 8, 8)), ("blobs", (2,))])  # fmt: skip
def test_the_network_learns_each_set_and_its_test_loss_falls(kind, layers):
    playground = Playground(toy_set(kind, noise=0.05), layers=layers, activation="tanh",
                            learning_rate=0.03)  # fmt: skip
    playground.step(5)
    first = playground.test_loss[-1]
    for _ in range(80):
        playground.step(5)
    _, test_accuracy = playground.accuracy()
    assert playground.steps == 405
    assert playground.test_loss[-1] < first
    assert test_accuracy >= 0.8, (kind, test_accuracy)


def test_the_pictures_show_the_boundary_the_losses_and_every_hidden_unit():
    from ui.playground import PIXELS, UNIT_STRIDE

    playground = Playground(toy_set("blobs", noise=0.0), layers=(3, 2))
    assert units_image(playground) is None  # no weights before the first step
    for _ in range(20):
        playground.step(5)
    image = boundary_image(playground)
    assert image.shape == (GRID * PIXELS, GRID * PIXELS, 3) and image.dtype == np.uint8
    # class 1's blob is up and to the right: blue there, orange down and to the left
    top_right, bottom_left = image[8, -8].astype(int), image[-8, 8].astype(int)
    assert top_right[2] > top_right[0] and bottom_left[0] > bottom_left[2]
    assert loss_figure(playground)["data"][1]["x"] == list(range(5, 105, 5))
    units = units_image(playground)
    side = GRID // UNIT_STRIDE
    assert units.shape == (2 * (side + 3), 3 * (side + 3), 3)
    assert (units[side + 3 : 2 * side + 3, 2 * (side + 3) :] == 255).all()  # no third unit


def test_the_network_opens_in_layerflow_as_a_project_that_builds(workspace):
    playground = Playground(toy_set("xor"), layers=(5, 3), activation="relu",
                            learning_rate=0.01)  # fmt: skip
    doc = network_graph(playground, "xor")
    assert [(n.component, n.settings.get("units")) for n in doc.nodes] == [
        ("Input", None), ("Dense", 5), ("Dense", 3), ("Output", 2)]  # fmt: skip
    project = open_in_layerflow(Workspace.current(), playground, "xor-net")
    assert project.dataset == "xor-net"
    assert analyze(project.graph()).ok
    assert project.settings("training")["learning_rate"] == 0.01
    frame = Workspace.current().dataset("xor-net").source().frame
    assert list(frame.columns)[:3] == ["x1", "x2", "label"] and len(frame) == 400


def test_the_page_steps_the_network_and_redraws(workspace):
    app = AppTest.from_file(ENTRY, default_timeout=60)
    app.run()
    app.switch_page(str(ROOT / "pages" / "playground.py")).run()
    assert not app.exception, app.exception
    button(app, "Step").click().run()
    button(app, "Step").click().run()
    assert not app.exception, app.exception
    epoch = next(m for m in app.metric if m.label == "Epoch")
    assert epoch.value == "10"  # five a step
    assert len(app.get("plotly_chart")) == 1  # the losses
    assert len(app.get("image")) == 2  # the boundary, the hidden units
    app.selectbox(key="pg:kind").select("spirals").run()  # new data: a new network
    assert not [m for m in app.metric if m.label == "Epoch"]
    assert app.text_input(key="pg:name:spirals").value == "playground-spirals"


@pytest.mark.parametrize("name", ["/tmp/elsewhere", "a/b", "", "9lives"])
def test_a_bad_project_name_is_refused_before_anything_is_written(workspace, name):
    with pytest.raises(ValueError, match="`name`"):
        open_in_layerflow(Workspace.current(), Playground(toy_set("xor")), name)
    assert Workspace.current().datasets() == [] and Workspace.current().projects() == []
