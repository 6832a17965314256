"""Configuring a graph from its data: the Input's shape, the Output's head and loss, the
fitting template, and where graph and data disagree.

A graph that reconstructs its Input (an autoencoder, app.data.anomaly) keeps doing so: its
Output's target is that Input, with as many linear units as the Input has features and a
mean squared error, whatever the dataset's task; the label column is not its target.
"""

from __future__ import annotations

from typing import Any

from app.data.anomaly import ANOMALY_TASK, reconstructs
from app.graph.analysis import analyze
from app.graph.components import CATALOGUE
from app.graph.document import GraphDocument, Node
from app.graph.problems import Fix, Problem, node_ref
from app.graph.rules import DataFacts

# The Output a task calls for: units (None = number of classes), activation, loss.
HEADS: dict[str, tuple[int | None, str, str]] = {
    "binary": (1, "sigmoid", "binary_crossentropy"),
    "multiclass": (None, "softmax", "sparse_categorical_crossentropy"),
    "segmentation": (None, "softmax", "sparse_categorical_crossentropy"),
    "regression": (1, "linear", "mean_squared_error"),
    "forecasting": (1, "linear", "mean_squared_error"),
}

TEMPLATE_FOR = {
    ("image_folder", "multiclass"): "image_classification",
    ("image_folder", "binary"): "image_classification",
    ("segmentation", "segmentation"): "image_segmentation",
    ("table", "binary"): "tabular_classification",
    ("table", "multiclass"): "tabular_classification",
    ("table", "regression"): "tabular_regression",
    ("table", "forecasting"): "time_series_forecasting",
}


def suggest_template(kind: str, task: str | None, columns: dict[str, str] | None = None) -> str:
    """The model template that fits a dataset's kind and task."""
    types = set((columns or {}).values())
    if kind == "table" and "image_path" in types:
        kind = "segmentation" if task == "segmentation" else "image_folder"
    if kind == "table" and "text" in types:
        return "text_classification"
    return TEMPLATE_FOR.get((kind, task or ""), "tabular_classification")


def facts(meta: dict[str, Any], train_rows: int) -> DataFacts:
    classes = meta["profile"].get("classes")
    target = meta.get("target")
    return DataFacts(
        samples=train_rows,
        classes={target: len(classes)} if target and classes else {},
    )


def wanted_head(task: str | None, classes: list | None) -> dict[str, Any] | None:
    if task not in HEADS:
        return None
    units, activation, loss = HEADS[task]
    return {"units": units or len(classes or []), "activation": activation, "loss": loss}


def reconstruction_head(
    doc: GraphDocument, inputs: dict[str, tuple[list[int], str]]
) -> tuple[dict[str, Any], str] | None:
    """An autoencoder's Output settings (its Input as target, one linear unit per feature,
    mean squared error) and that Input's id; None for a graph that does not reconstruct its
    Input, or whose Input the data does not provide."""
    source = reconstructs(doc)
    graph_inputs = [n.id for n in doc.nodes if n.component == "Input"]
    name = next(iter(inputs)) if len(inputs) == 1 and len(graph_inputs) == 1 else source
    if source is None or name not in inputs or not inputs[name][0]:
        return None
    units = inputs[name][0][-1]
    head = {"target": source, "units": units, "activation": "linear", "loss": "mean_squared_error"}
    return head, source


def configure(
    doc: GraphDocument,
    inputs: dict[str, tuple[list[int], str]],
    task: str | None,
    target: str | None,
    classes: list | None,
) -> tuple[GraphDocument, list[str]]:
    """A copy of doc with its Input and Output set from the data, and what changed.

    inputs: the data's model inputs by name -> (shape without batch, dtype), as
    app.runtime.transform.input_spec gives them. With one graph Input and one data input they
    are paired whatever their names; otherwise by name.
    """
    doc = doc.model_copy(deep=True)
    changes: list[str] = []
    graph_inputs = [n for n in doc.nodes if n.component == "Input"]
    for node in graph_inputs:
        name = next(iter(inputs)) if len(inputs) == 1 and len(graph_inputs) == 1 else node.id
        if name not in inputs:
            continue
        shape, dtype = inputs[name]
        update = {"shape": list(shape), "dtype": dtype}
        changes += _apply(node, update)
    outputs = [n for n in doc.nodes if n.component == "Output"]
    reconstruction = reconstruction_head(doc, inputs)
    if reconstruction:
        changes += _apply(outputs[0], reconstruction[0])
        return doc, changes
    head = wanted_head(task, classes)
    if head and target and len(outputs) == 1:
        changes += _apply(outputs[0], {**_head_of(doc, outputs[0], head), "target": target})
    said = described_task(doc.meta.task, task)
    if said != doc.meta.task:
        changes.append(f"meta.task: {doc.meta.task!r} -> {said!r}")
        doc.meta.task = said
    return doc, changes


TASK_NAMES = {"binary": "binary_classification", "multiclass": "multiclass_classification",
              "regression": "regression", "forecasting": "forecasting",
              "segmentation": "segmentation"}  # fmt: skip


def described_task(said: str | None, task: str | None) -> str | None:
    """What a graph's meta.task says once configured for data of `task` (the profile's word):
    kept where the data does not contradict it (image_classification is any classification of
    images), else the data's task."""
    if task not in TASK_NAMES or said == ANOMALY_TASK:  # the graph's purpose, not the data's
        return said
    contradicted = {"binary": "multiclass_classification", "multiclass": "binary_classification"}
    if task in contradicted and (said or "").endswith("classification"):
        return TASK_NAMES[task] if said == contradicted[task] else said
    return TASK_NAMES[task]


def _head_of(doc: GraphDocument, node: Node, head: dict[str, Any]) -> dict[str, Any]:
    """The head an Output needs: `head`, but no Dense head of its own where it has none and
    its input already gives the values wanted (a graph that computes its prediction itself, as
    the forecasting template adds a predicted change to the last value)."""
    if _settings(node).get("units") is not None:
        return head
    sources = [edge.source for edge in doc.edges if edge.target == node.id]
    info = analyze(doc).infos.get(sources[0]) if len(sources) == 1 else None
    if info is None or info.shape[1:] != (head["units"],):
        return head
    return {key: value for key, value in head.items() if key != "units"}


def _apply(node, update: dict[str, Any]) -> list[str]:
    changes = []
    for key, value in update.items():
        if node.settings.get(key) != value:
            changes.append(f"{node.id}.{key}: {node.settings.get(key)!r} -> {value!r}")
            node.settings[key] = value
    return changes


def mismatches(
    doc: GraphDocument,
    inputs: dict[str, tuple[list[int], str]],
    task: str | None,
    target: str | None,
    classes: list | None,
) -> list[Problem]:
    """Where graph and data disagree: input shape or type, output head, target name."""
    problems = []
    graph_inputs = [n for n in doc.nodes if n.component == "Input"]
    for node in graph_inputs:
        name = next(iter(inputs)) if len(inputs) == 1 and len(graph_inputs) == 1 else node.id
        if name not in inputs:
            problems.append(
                _mismatch(
                    node, f"the data has no input named {node.id!r} (inputs: {', '.join(inputs)})"
                )
            )
            continue
        shape, dtype = inputs[name]
        settings = _settings(node)
        if list(settings.get("shape", [])) != list(shape):
            problems.append(
                _mismatch(
                    node,
                    f"the data's samples have shape {tuple(shape)}, the Input "
                    f"expects {tuple(settings.get('shape', []))}",
                    {"shape": list(shape)},
                )
            )
        if settings.get("dtype", "float32") != dtype:
            problems.append(
                _mismatch(
                    node,
                    f"the data is {dtype}, the Input expects {settings.get('dtype', 'float32')}",
                    {"dtype": dtype},
                )
            )
    head = wanted_head(task, classes)
    reconstruction = reconstruction_head(doc, inputs)
    if reconstruction:  # an autoencoder's target is its Input, not the label column
        head = {k: v for k, v in reconstruction[0].items() if k != "target"}
        task, target = "reconstruction", reconstruction[1]
    for node in (n for n in doc.nodes if n.component == "Output"):
        settings = _settings(node)
        if target and settings.get("target", "label") != target:
            problems.append(
                _mismatch(
                    node,
                    f"predicts {settings.get('target', 'label')!r} but "
                    f"the data's target is {target!r}",
                    {"target": target},
                )
            )
        if head:
            wanted = _head_of(doc, node, head)
            wrong = {k: v for k, v in wanted.items() if settings.get(k) != v}
            if wrong:
                described = ", ".join(f"{k}={v!r}" for k, v in wrong.items())
                problems.append(_mismatch(node, f"a {task} target wants {described}", wrong))
    return problems


def _settings(node: Node) -> dict[str, Any]:
    """The node's settings with defaults filled in (invalid values are left out)."""
    return CATALOGUE[node.component].resolve(node.settings)[0]


def _mismatch(node, message: str, settings: dict[str, Any] | None = None) -> Problem:
    fix = Fix("Configure from the data", node.id, settings) if settings else None
    return Problem(
        "error",
        "data_mismatch",
        f"{node_ref(node.id, node.component)}: {message}",
        node=node.id,
        fix=fix,
    )
