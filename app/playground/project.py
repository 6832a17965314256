""""Open in LayerFlow": the Playground's network as a project's graph (Input of two numbers,
a Dense layer per hidden layer, a softmax Output of two classes), trained on the toy set as a
dataset of the workspace."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from app.graph.document import GraphDocument, parse
from app.graph.layout import layered_layout
from app.paths import named
from app.playground.network import Playground

KERAS_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "identity": "linear"}


def network_graph(playground: Playground, name: str) -> GraphDocument:
    nodes = [{"id": "points", "component": "Input", "settings": {"shape": [2]}}]
    for number, units in enumerate(playground.layers, start=1):
        activation = KERAS_ACTIVATIONS[playground.activation]
        nodes.append({"id": f"hidden{number}", "component": "Dense",
                      "settings": {"units": units, "activation": activation}})  # fmt: skip
    nodes.append({"id": "label", "component": "Output",
                  "settings": {"units": 2, "activation": "softmax", "target": "label",
                               "loss": "sparse_categorical_crossentropy"}})  # fmt: skip
    edges = [{"source": a["id"], "target": b["id"]} for a, b in zip(nodes, nodes[1:], strict=False)]
    doc = parse({"schema_version": 1, "meta": {"name": name}, "nodes": nodes, "edges": edges})
    return layered_layout(doc)


def toy_frame(playground: Playground) -> pd.DataFrame:
    data = playground.data
    frame = pd.DataFrame(
        [*data.x_train.tolist(), *data.x_test.tolist()], columns=["x1", "x2"]
    ).assign(label=[*data.y_train.tolist(), *data.y_test.tolist()])
    return frame


def open_in_layerflow(workspace, playground: Playground, name: str):
    """A new project `name` with the network as its graph and the toy set as its dataset
    (named after it); the project, configured for the data. Refuses a name that is not a
    project name, or that a project or dataset has already, before writing anything."""
    named(workspace.projects_dir, name)  # a project name, or the one-line ValueError
    taken = {entry["name"] for entry in workspace.datasets()}
    if name in workspace.projects() or name in taken:
        raise ValueError(f"A project or dataset named {name!r} exists already; choose another "
                         "name")  # fmt: skip
    frame = toy_frame(playground)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "points.csv"
        frame.to_csv(path, index=False)
        dataset = workspace.add_dataset(path, name, target="label")
    doc, _ = dataset.configure(network_graph(playground, name))
    project = workspace.create_project(name, doc)
    project.use_dataset(name)
    project.save_settings("training", {"learning_rate": playground.learning_rate, "epochs": 50})
    return project
