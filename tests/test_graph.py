"""Loading a graph document: every malformed document gets one message per problem."""

from __future__ import annotations

import copy
import json
import os

import pytest

from app.graph.document import SCHEMA_VERSION, GraphDocument, check, load, parse, save
from app.graph.problems import GraphError
from tests.graphs import chain_data

MLP = (("x", "Input", {"shape": [4]}), ("h", "Dense", {"units": 8}), ("y", "Output", {"units": 3}))


def errors_of(data) -> list[str]:
    try:
        doc = parse(data)
    except GraphError as err:
        return [p.message for p in err.problems]
    return [p.message for p in check(doc).problems if p.level == "error"]


def test_a_valid_document_has_no_errors():
    assert errors_of(chain_data(*MLP)) == []


def test_unknown_component_is_named_with_a_suggestion():
    data = chain_data(("x", "Input", {"shape": [4]}), ("h", "Dens", {}), ("y", "Output", {}))
    assert errors_of(data) == ["Node 'h': unknown component 'Dens'; did you mean 'Dense'?"]


def test_unknown_setting_names_the_node_and_the_setting():
    data = chain_data(
        ("x", "Input", {"shape": [4]}), ("h", "Dense", {"unit": 8}), ("y", "Output", {})
    )
    (message,) = errors_of(data)
    assert message.startswith("Node 'h' (Dense): Unknown setting `unit`")


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"units": "8"}, "`units`, expected an integer between 1 and 1000000. Received: units='8'"),
        ({"units": 0}, "Received: units=0"),
        ({"units": 2.5}, "Received: units=2.5"),
        ({"activation": "relux"}, "`activation`, expected one of"),
        ({"use_bias": "yes"}, "`use_bias`, expected true or false"),
    ],
)
def test_ill_typed_or_out_of_range_settings_are_named(settings, fragment):
    data = chain_data(("x", "Input", {"shape": [4]}), ("h", "Dense", settings), ("y", "Output", {}))
    (message,) = errors_of(data)
    assert message.startswith("Node 'h' (Dense): ")
    assert fragment in message


def test_dangling_edge_names_the_edge_and_the_missing_node():
    data = chain_data(*MLP)
    data["edges"].append({"source": "h", "target": "ghost"})
    assert errors_of(data) == ["Edge #2 (h -> ghost): no node named 'ghost'"]


def test_cycle_names_the_nodes_on_it():
    data = chain_data(
        ("x", "Input", {"shape": [4]}), ("a", "Add", {}), ("b", "Dense", {}), ("y", "Output", {})
    )
    data["edges"].append({"source": "b", "target": "a", "slot": 1})
    (message,) = errors_of(data)
    assert message.startswith("The graph has a cycle through nodes 'a', 'b'")


def test_missing_input_and_output_are_both_reported():
    data = chain_data(("h", "Dense", {}))
    assert "The graph has no Input node" in errors_of(data)
    assert "The graph has no Output node" in errors_of(data)


def test_wrong_number_of_inputs_names_the_node():
    data = chain_data(*MLP)
    data["edges"].append({"source": "x", "target": "h", "slot": 1})
    assert errors_of(data) == ["Node 'h' (Dense): expects 1 input(s), received 2"]


def test_merge_needs_two_inputs():
    data = chain_data(("x", "Input", {"shape": [4]}), ("a", "Add", {}), ("y", "Output", {}))
    assert errors_of(data) == ["Node 'a' (Add): expects at least 2 input(s), received 1"]


def test_duplicate_ids_are_reported_once_per_duplicate():
    data = chain_data(*MLP)
    data["nodes"].append({"id": "h", "component": "Dense"})
    assert "Duplicate node id 'h'" in errors_of(data)


def test_unsupported_schema_version_is_refused_before_anything_else():
    data = chain_data(*MLP)
    data["schema_version"] = 99
    data["nodes"] = "not even a list"
    assert errors_of(data) == [
        f"Unsupported schema_version 99; this LayerFlow reads version {SCHEMA_VERSION}"
    ]


def test_schema_errors_point_at_the_node():
    data = chain_data(*MLP)
    data["nodes"][1]["colour"] = "red"
    data["nodes"][2]["id"] = "bad id!"
    messages = errors_of(data)
    assert "Node #1 'h': `colour`: unknown field" in messages
    assert any(m.startswith("Node #2 'bad id!': `id`: ids start with a letter") for m in messages)


def test_load_reports_invalid_json_with_line_and_column(tmp_path):
    path = tmp_path / "g.json"
    path.write_text('{"nodes": [\n  {"id": }\n]}')
    with pytest.raises(GraphError) as err:
        load(path)
    assert f"{path}: not valid JSON at line 2, column 10" in err.value.problems[0].message


def test_load_reports_a_missing_file(tmp_path):
    with pytest.raises(GraphError, match="no such file"):
        load(tmp_path / "missing.json")


def test_strict_load_refuses_structural_errors_but_lenient_load_does_not(tmp_path):
    data = chain_data(("h", "Dense", {}))
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GraphError):
        load(path)
    assert load(path, strict=False).nodes[0].id == "h"


def test_save_then_load_round_trips(tmp_path):
    doc = parse(chain_data(*MLP))
    path = save(doc, tmp_path / "sub" / "g.json")
    assert load(path) == doc


def test_what_a_json_setting_holds_is_saved_as_it_is(tmp_path):
    """NaN and infinities stay what they are (Python's json reads them back), and text outside
    ASCII is written as UTF-8."""
    data = copy.deepcopy(chain_data(*MLP))  # its nodes are MLP's own
    data["nodes"][1]["label"] = "Schicht für Größe"
    data["nodes"][1]["settings"]["config"] = {"low": float("-inf"), "fill": float("nan")}
    data["nodes"][1]["component"] = "KerasLayer"
    data["nodes"][1]["settings"] |= {"class_name": "Identity", "module": "keras.layers"}
    doc = parse(data)
    path = save(doc, tmp_path / "g.json")
    text = path.read_text(encoding="utf-8")
    assert "Schicht für Größe" in text and "-Infinity" in text and "NaN" in text
    config = json.loads(text)["nodes"][1]["settings"]["config"]
    assert config["low"] == float("-inf") and config["fill"] != config["fill"]  # NaN


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "g.json"
    save(parse(chain_data(*MLP, name="first")), path)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        save(parse(chain_data(*MLP, name="second")), path)
    assert load(path).meta.name == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["g.json"]


def test_defaults_fill_an_almost_empty_document():
    doc = GraphDocument()
    assert doc.schema_version == SCHEMA_VERSION
    assert doc.nodes == [] and doc.meta.name == "untitled"


def test_an_id_that_looks_like_a_block_layer_is_refused():
    data = chain_data(
        ("x", "Input", {"shape": [4]}),
        ("stage", "Block", {"block": "cell"}),
        ("stage_1_dense", "Dense", {}),
        ("y", "Output", {}),
    )
    data["blocks"] = {
        "cell": {
            "nodes": [
                {"id": "i", "component": "BlockInput"},
                {"id": "dense", "component": "Dense"},
            ],
            "edges": [{"source": "i", "target": "dense"}],
            "output": "dense",
        }
    }
    assert errors_of(data) == [
        "Node 'stage_1_dense' (Dense): the id looks like a layer of block node 'stage' "
        "('stage_<repetition>_<node>'); rename it"
    ]


def test_json_nested_too_deeply_is_one_line_not_an_internal_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000)
    with pytest.raises(GraphError) as caught:
        load(path)
    [problem] = caught.value.problems
    assert "nested too deeply" in problem.message and "\n" not in problem.message


@pytest.mark.parametrize("name", ["cell\n", "cell\nimport os", " cell", "9cell"])
def test_a_block_name_must_be_an_identifier_to_its_last_character(name):
    data = chain_data(("in", "Input", {"shape": [4]}), ("out", "Output", {"units": 1}))
    data["blocks"] = {name: {"nodes": [{"id": "i", "component": "BlockInput"}], "edges": [],
                             "output": "i"}}  # fmt: skip
    problems = check(parse(data)).problems
    assert any(p.code == "block_name" for p in problems), [p.message for p in problems]
