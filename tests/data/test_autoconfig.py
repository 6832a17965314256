"""A graph configured from its data, and told where it disagrees with it."""

from __future__ import annotations

import pytest

from app.data.autoconfig import suggest_template
from app.data.samples import make_sample
from app.graph.analysis import analyze
from app.graph.model_templates import load_template
from app.workspace import Workspace


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    workspace = Workspace(tmp_path_factory.mktemp("workspace"))
    made = {}
    for name in ("digits", "iris", "diabetes", "breast_cancer", "timeseries"):
        path = make_sample(name, tmp_path_factory.mktemp(name))
        made[name] = workspace.add_dataset(path, name)
    return made


def output_settings(doc):
    return next(n for n in doc.nodes if n.component == "Output").settings


@pytest.mark.parametrize(
    ("dataset", "template", "head"),
    [
        ("iris", "tabular_classification",
         {"units": 3, "activation": "softmax", "loss": "sparse_categorical_crossentropy"}),
        ("breast_cancer", "tabular_classification",
         {"units": 1, "activation": "sigmoid", "loss": "binary_crossentropy"}),
        ("diabetes", "tabular_regression",
         {"units": 1, "activation": "linear", "loss": "mean_squared_error"}),
        ("digits", "image_classification",
         {"units": 10, "activation": "softmax", "loss": "sparse_categorical_crossentropy"}),
    ],
)  # fmt: skip
def test_configure_sets_input_and_head_from_the_data(datasets, dataset, template, head):
    data = datasets[dataset]
    doc, changes = data.configure(load_template(template))
    ((shape, dtype),) = data.input_spec().values()
    graph_input = next(n for n in doc.nodes if n.component == "Input")
    assert graph_input.settings["shape"] == shape and graph_input.settings["dtype"] == dtype
    assert output_settings(doc) | head == output_settings(doc)
    assert output_settings(doc)["target"] == data.meta["target"]
    assert data.mismatches(doc) == []
    assert analyze(doc).ok


def test_mismatches_name_the_input_shape_and_the_class_count(datasets):
    doc = load_template("tabular_classification")  # 30 features, binary head
    problems = datasets["iris"].mismatches(doc)
    messages = " | ".join(p.message for p in problems)
    assert "the data's samples have shape (4,), the Input expects (30,)" in messages
    assert "a multiclass target wants units=3" in messages
    assert all(p.level == "error" and p.fix is not None for p in problems)


def test_a_graph_that_computes_its_forecast_keeps_its_output_without_a_head(datasets):
    # the template adds a predicted change to the last value: a Dense head would undo that
    data = datasets["timeseries"]
    doc, _ = data.configure(load_template("time_series_forecasting"))
    assert output_settings(doc)["units"] is None
    assert output_settings(doc)["target"] == "value"
    assert data.mismatches(doc) == []
    assert analyze(doc).ok


def test_an_output_without_a_head_on_many_values_is_given_one(datasets):
    doc = load_template("tabular_regression")
    output_settings(doc)["units"] = None  # its input is a Dense layer of 16 units
    messages = " | ".join(p.message for p in datasets["diabetes"].mismatches(doc))
    assert "a regression target wants units=1" in messages
    configured, _ = datasets["diabetes"].configure(doc)
    assert output_settings(configured)["units"] == 1


def test_configure_reports_what_it_changed(datasets):
    _, changes = datasets["iris"].configure(load_template("tabular_classification"))
    assert any(c.endswith("shape: [30] -> [4]") for c in changes)


@pytest.mark.parametrize(
    ("kind", "task", "columns", "expected"),
    [
        ("image_folder", "multiclass", None, "image_classification"),
        ("segmentation", "segmentation", None, "image_segmentation"),
        ("table", "regression", {"a": "numeric"}, "tabular_regression"),
        ("table", "binary", {"a": "numeric"}, "tabular_classification"),
        ("table", "forecasting", {"value": "numeric"}, "time_series_forecasting"),
        ("table", "binary", {"text": "text"}, "text_classification"),
        ("table", "multiclass", {"image": "image_path"}, "image_classification"),
    ],
)
def test_suggest_template(kind, task, columns, expected):
    assert suggest_template(kind, task, columns) == expected


def test_configure_keeps_an_autoencoder_reconstructing_its_input(datasets):
    data = datasets["breast_cancer"]  # a binary dataset: a classifier's head would be sigmoid
    doc, _ = data.configure(load_template("anomaly_autoencoder"))
    ((shape, _),) = data.input_spec().values()
    assert output_settings(doc) == {
        "target": "features",
        "units": shape[-1],
        "activation": "linear",
        "loss": "mean_squared_error",
    }
    assert data.mismatches(doc) == []
    assert analyze(doc).ok


def test_configure_turns_a_classifier_headed_autoencoder_back(datasets):
    data = datasets["iris"]  # 4 features: the template's 30 units must follow the data
    doc = load_template("anomaly_autoencoder")
    output = next(n for n in doc.nodes if n.component == "Output")
    output.settings.update(target="target", units=1, activation="sigmoid",
                           loss="binary_crossentropy")  # fmt: skip
    messages = " | ".join(p.message for p in data.mismatches(doc))
    assert "the data's target is 'features'" in messages
    assert "a reconstruction target wants units=4, activation='linear'" in messages
    configured, _ = data.configure(doc)
    assert output_settings(configured) == {
        "target": "features", "units": 4, "activation": "linear", "loss": "mean_squared_error"
    }  # fmt: skip


def test_an_output_targeting_its_input_is_an_autoencoder_without_the_task(datasets):
    doc = load_template("anomaly_autoencoder")
    doc.meta.task = None
    configured, _ = datasets["breast_cancer"].configure(doc)
    assert output_settings(configured)["target"] == "features"
    assert output_settings(configured)["loss"] == "mean_squared_error"
