"""Warning and tip rules: each fires on a small graph with its fault, names the node, offers
its fix, and stays silent on the same graph without the fault."""

from __future__ import annotations

from typing import Any

import pytest

from app.graph.analysis import Analysis, analyze, with_data
from app.graph.document import parse
from app.graph.problems import Problem
from app.graph.rules import DataFacts
from tests.graphs import chain, chain_data, single

IMAGE = ("in", "Input", {"shape": [8, 8, 3]})
TABLE = ("in", "Input", {"shape": [5]})
RESCALE = ("scale", "Rescaling", {})
NORMALIZE = ("norm", "Normalization", {})


def output(**settings: Any) -> tuple[str, str, dict[str, Any]]:
    return ("out", "Output", settings)


def found(analysis: Analysis, code: str) -> list[Problem]:
    return [p for p in analysis.problems if p.code == code]


def the_one(analysis: Analysis, code: str) -> Problem:
    problems = found(analysis, code)
    assert len(problems) == 1, [p.message for p in analysis.problems]
    return problems[0]


# Dense on feature maps


def test_dense_on_rank4_tensor_warns_with_a_pooling_fix_before_it():
    doc = chain(IMAGE, RESCALE, ("conv", "Conv2D", {"filters": 4}),
                ("dense", "Dense", {"units": 3}), output(units=3))  # fmt: skip
    problem = the_one(analyze(doc), "dense_rank4")
    assert (problem.level, problem.node) == ("warning", "dense")
    assert "(None, 8, 8, 4)" in problem.message
    assert problem.fix is not None
    assert (problem.fix.node, problem.fix.insert, problem.fix.where) == (
        "dense", "GlobalAveragePooling2D", "before")  # fmt: skip


def test_dense_after_pooling_is_not_warned():
    doc = chain(IMAGE, RESCALE, ("conv", "Conv2D", {"filters": 4}),
                ("pool", "GlobalAveragePooling2D", {}), ("dense", "Dense", {"units": 3}),
                output(units=3))  # fmt: skip
    assert found(analyze(doc), "dense_rank4") == []


# Output activation and loss


def test_softmax_with_binary_crossentropy_warns_with_a_sigmoid_fix():
    doc = chain(TABLE, NORMALIZE, output(units=2, activation="softmax", loss="binary_crossentropy"))
    problem = the_one(analyze(doc), "softmax_binary")
    assert (problem.level, problem.node) == ("warning", "out")
    assert problem.fix is not None
    assert problem.fix.set_settings == {"activation": "sigmoid", "units": 1}


def test_sigmoid_with_binary_crossentropy_is_not_warned():
    doc = chain(TABLE, NORMALIZE, output(units=1, activation="sigmoid", loss="binary_crossentropy"))
    assert found(analyze(doc), "softmax_binary") == []


@pytest.mark.parametrize(("loss", "units", "wanted"), [
    ("sparse_categorical_crossentropy", 3, "softmax"),
    ("categorical_crossentropy", 3, "softmax"),
    ("binary_crossentropy", 1, "sigmoid"),
])  # fmt: skip
def test_crossentropy_with_linear_output_warns_with_a_probability_fix(loss, units, wanted):
    doc = chain(TABLE, NORMALIZE, output(units=units, activation="linear", loss=loss))
    problem = the_one(analyze(doc), "logits_loss")
    assert (problem.level, problem.node) == ("warning", "out")
    assert problem.fix is not None
    assert problem.fix.set_settings == {"activation": wanted}


def test_crossentropy_with_softmax_output_is_not_warned():
    doc = chain(TABLE, NORMALIZE, output(units=3, activation="softmax"))
    assert found(analyze(doc), "logits_loss") == []


def test_output_without_head_after_softmax_gets_no_logits_warning():
    doc = chain(TABLE, NORMALIZE, ("probs", "Dense", {"units": 3, "activation": "softmax"}),
                output(units=None, activation="linear"))  # fmt: skip
    assert found(analyze(doc), "logits_loss") == []


# Output units against the data's classes


def test_output_units_unlike_class_count_is_an_error_with_a_units_fix():
    doc = chain(TABLE, NORMALIZE, output(units=10, activation="softmax"))
    problem = the_one(analyze(doc, DataFacts(classes={"label": 3})), "units_vs_classes")
    assert (problem.level, problem.node) == ("error", "out")
    assert problem.fix is not None
    assert problem.fix.set_settings == {"units": 3}


def test_the_data_added_to_an_analysis_gives_what_analyzing_with_it_gives():
    """The Model page analyzes the graph once, for its step bar, and adds the data's facts."""
    doc = chain(TABLE, NORMALIZE, output(units=10, activation="softmax"))
    facts = DataFacts(classes={"label": 3})
    alone = analyze(doc)
    assert found(alone, "units_vs_classes") == []
    added = with_data(alone, facts)
    assert added.problems == analyze(doc, facts).problems
    assert found(added, "units_vs_classes") and with_data(added, None).problems == alone.problems


def test_output_units_equal_to_class_count_are_not_reported():
    doc = chain(TABLE, NORMALIZE, output(units=3, activation="softmax"))
    assert found(analyze(doc, DataFacts(classes={"label": 3})), "units_vs_classes") == []


def test_output_without_head_is_judged_by_the_width_of_its_input():
    # No Dense head (units None): the prediction is the softmax Dense before it, 3 wide.
    doc = chain(TABLE, NORMALIZE, ("probs", "Dense", {"units": 3, "activation": "softmax"}),
                output(units=None, activation="linear"))  # fmt: skip
    analysis = analyze(doc, DataFacts(classes={"label": 3}))
    assert analysis.infos["out"].shape == (None, 3)
    assert found(analysis, "units_vs_classes") == []


# Dropout


@pytest.mark.parametrize("rate", [0.5, 0.8])
def test_dropout_of_half_or_more_warns_with_a_lower_rate_fix(rate):
    doc = chain(TABLE, NORMALIZE, ("drop", "Dropout", {"rate": rate}), output(units=3))
    problem = the_one(analyze(doc), "heavy_dropout")
    assert (problem.level, problem.node) == ("warning", "drop")
    assert problem.fix is not None
    assert problem.fix.set_settings["rate"] < 0.5


def test_dropout_below_half_is_not_warned():
    doc = chain(TABLE, NORMALIZE, ("drop", "Dropout", {"rate": 0.3}), output(units=3))
    assert found(analyze(doc), "heavy_dropout") == []


# Stacked linear layers


def test_dense_without_activation_feeding_a_dense_warns_with_a_relu_fix():
    doc = chain(TABLE, NORMALIZE, ("first", "Dense", {"units": 8, "activation": "linear"}),
                ("second", "Dense", {"units": 8}), output(units=3))  # fmt: skip
    problem = the_one(analyze(doc), "linear_stack")
    assert (problem.level, problem.node) == ("warning", "first")
    assert "second" in problem.message
    assert problem.fix is not None
    assert problem.fix.set_settings == {"activation": "relu"}


def test_dense_with_activation_feeding_a_dense_is_not_warned():
    doc = chain(TABLE, NORMALIZE, ("first", "Dense", {"units": 8, "activation": "relu"}),
                ("second", "Dense", {"units": 8}), output(units=3))  # fmt: skip
    assert found(analyze(doc), "linear_stack") == []


def test_linear_dense_feeding_an_output_without_head_is_not_warned():
    # A regression head: the Output adds no Dense, so there is one linear map, not two.
    doc = chain(TABLE, NORMALIZE, ("head", "Dense", {"units": 1, "activation": "linear"}),
                output(units=None, activation="linear", loss="mean_squared_error"))  # fmt: skip
    assert found(analyze(doc), "linear_stack") == []


# Model size against data size


def wide_table_model() -> tuple[Any, int]:
    """Input(100) -> Dense(100) -> Output(10), with its parameter count by hand."""
    doc = chain(("in", "Input", {"shape": [100]}), NORMALIZE, ("dense", "Dense", {"units": 100}),
                output(units=10))  # fmt: skip
    normalization = 2 * 100 + 1
    params = normalization + (100 * 100 + 100) + (100 * 10 + 10)
    return doc, params


def test_parameters_far_beyond_the_samples_warn_on_the_input():
    doc, params = wide_table_model()
    problem = the_one(analyze(doc, DataFacts(samples=params // 1000 - 2)), "too_many_params")
    assert (problem.level, problem.node) == ("warning", "in")
    assert f"{params:,}" in problem.message


def test_parameters_in_proportion_to_the_samples_are_not_warned():
    doc, params = wide_table_model()
    assert found(analyze(doc, DataFacts(samples=params)), "too_many_params") == []


def test_parameter_warning_needs_a_sample_count():
    doc, _ = wide_table_model()
    assert found(analyze(doc, DataFacts(classes={"label": 10})), "too_many_params") == []


# Input normalization


@pytest.mark.parametrize(("first", "component"), [
    (IMAGE, "Rescaling"),
    (TABLE, "Normalization"),
])  # fmt: skip
def test_unnormalized_input_gets_a_tip_inserting_a_normalizer_after_it(first, component):
    doc = chain(first, ("flat", "Flatten", {}), output(units=3))
    problem = the_one(analyze(doc), "no_normalization")
    assert (problem.level, problem.node) == ("tip", "in")
    assert problem.fix is not None
    assert (problem.fix.node, problem.fix.insert, problem.fix.where) == ("in", component, "after")


@pytest.mark.parametrize("prefix", [
    [RESCALE],
    [("flip", "RandomFlip", {}), RESCALE],
    [("bn", "BatchNormalization", {})],
])  # fmt: skip
def test_input_normalized_downstream_gets_no_tip(prefix):
    doc = chain(IMAGE, *prefix, ("flat", "Flatten", {}), output(units=3))
    assert found(analyze(doc), "no_normalization") == []


def test_integer_input_gets_no_normalization_tip():
    doc = chain(("in", "Input", {"shape": [12], "dtype": "int32"}),
                ("embed", "Embedding", {"input_dim": 100, "output_dim": 4}),
                ("flat", "Flatten", {}), output(units=3))  # fmt: skip
    assert found(analyze(doc), "no_normalization") == []


# Applying a settings fix


def with_settings(data: dict[str, Any], node_id: str, settings: dict[str, Any]) -> Any:
    for node in data["nodes"]:
        if node["id"] == node_id:
            node["settings"] = {**node["settings"], **settings}
    return parse(data)


@pytest.mark.parametrize(("nodes", "code"), [
    ((TABLE, NORMALIZE, output(units=2, activation="softmax", loss="binary_crossentropy")),
     "softmax_binary"),
    ((TABLE, NORMALIZE, output(units=3, activation="linear")), "logits_loss"),
    ((TABLE, NORMALIZE, ("drop", "Dropout", {"rate": 0.6}), output(units=3)), "heavy_dropout"),
    ((TABLE, NORMALIZE, ("first", "Dense", {"activation": "linear"}), ("second", "Dense", {}),
      output(units=3)), "linear_stack"),
])  # fmt: skip
def test_applying_a_settings_fix_silences_its_warning(nodes, code):
    data = chain_data(*nodes)
    fix = the_one(analyze(parse(data)), code).fix
    assert fix is not None and fix.set_settings
    fixed = analyze(with_settings(data, fix.node, fix.set_settings))
    assert fixed.ok
    assert found(fixed, code) == []


# Shapes at a merge


def test_add_of_different_shapes_is_an_error_naming_both_shapes_and_the_node():
    analysis = analyze(single("Add", {}, [[4], [5]]))
    problem = the_one(analysis, "shape")
    assert (problem.level, problem.node) == ("error", "under_test")
    assert "'under_test'" in problem.message
    assert "(None, 4)" in problem.message and "(None, 5)" in problem.message
    assert not analysis.ok


def test_rule_context_finds_neighbours_in_document_order_for_a_wide_fan_out():
    from app.graph.document import check
    from app.graph.rules import RuleContext

    width = 2_000
    nodes = [{"id": "in", "component": "Input", "settings": {"shape": [8]}}]
    edges = []
    for i in reversed(range(width)):  # edges in the opposite order to the nodes
        edges.append({"source": "in", "target": f"d{i}"})
    for i in range(width):
        nodes.append({"id": f"d{i}", "component": "Dense", "settings": {"units": 2}})
        nodes.append({"id": f"o{i}", "component": "Output", "settings": {"units": 1}})
        edges.append({"source": f"d{i}", "target": f"o{i}"})
    doc = parse({"schema_version": 1, "nodes": nodes, "edges": edges})
    ctx = RuleContext(doc, check(doc), {}, None)
    assert [n.id for n in ctx.successors("in")] == [f"d{i}" for i in range(width)]
    assert [n.id for n in ctx.sources("o7")] == ["d7"]
    assert ctx.successors("o7") == []
    assert analyze(doc).errors == []


def test_an_input_shape_beyond_the_machines_memory_is_warned_about(monkeypatch):
    from app.graph import rules

    huge = chain(("in", "Input", {"shape": [1_000_000_000, 1_000_000_000]}),
                 ("flat", "Flatten", {}), ("out", "Output", {"units": 1}))  # fmt: skip
    [warning] = [p for p in analyze(huge).problems if p.code == "beyond_memory"]
    assert warning.level == "warning" and warning.node == "in"
    assert "check the Input shape" in warning.message
    small = chain(("in", "Input", {"shape": [8]}), ("out", "Output", {"units": 1}))
    assert not [p for p in analyze(small).problems if p.code == "beyond_memory"]
    monkeypatch.setattr(rules, "machine_memory", lambda: 64)  # a 64-byte machine
    assert [p for p in analyze(small).problems if p.code == "beyond_memory"]


@pytest.mark.parametrize(
    "settings, warned",
    [
        ({}, True),  # frozen, no weights: random features
        ({"trainable": True}, False),  # trained with the head
        ({"weights_file": "weights/mobilenet_v2.weights.h5"}, False),
    ],
)
def test_a_frozen_backbone_without_weights_is_warned_about(settings, warned):
    from app.graph.model_templates import load_template

    doc = load_template("transfer_learning")
    backbone = next(n for n in doc.nodes if n.component == "Backbone")
    backbone.settings.update(settings)
    found = [p for p in analyze(doc).problems if p.code == "random_backbone"]
    assert [p.node for p in found] == (["backbone"] if warned else [])
    assert all("weights_file" in p.message and p.level == "warning" for p in found)
