"""Blocks: a cell defined once, expanded N times by the analysis and the builder, and the block
library that saves cells to the workspace and copies them into other graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.graph.analysis import analyze
from app.graph.document import BlockDef, GraphDocument, parse
from app.workspace import Workspace

CHANNELS = 8
IMAGE = [16, 16, 3]


def conv2d_params(kernel: int, channels_in: int, filters: int) -> int:
    return kernel * kernel * channels_in * filters + filters


def residual_cell(filters: int = CHANNELS) -> dict[str, Any]:
    """BlockInput -> Conv2D(filters, same) -> Add(BlockInput, conv)."""
    return {
        "description": "residual cell",
        "nodes": [
            {"id": "x", "component": "BlockInput", "settings": {"slot": 0}},
            {"id": "conv", "component": "Conv2D",
             "settings": {"filters": filters, "kernel_size": 3, "padding": "same"}},
            {"id": "add", "component": "Add"},
        ],
        "edges": [
            {"source": "x", "target": "conv"},
            {"source": "x", "target": "add", "slot": 0},
            {"source": "conv", "target": "add", "slot": 1},
        ],
        "output": "add",
    }  # fmt: skip


def widening_cell() -> dict[str, Any]:
    """BlockInput -> Conv2D with twice the channels: its output is not its input's shape."""
    return {
        "nodes": [
            {"id": "x", "component": "BlockInput", "settings": {"slot": 0}},
            {"id": "conv", "component": "Conv2D", "settings": {"filters": 2 * CHANNELS}},
        ],
        "edges": [{"source": "x", "target": "conv"}],
        "output": "conv",
    }


def graph_data(block: str = "cell", repeat: int = 3,
               blocks: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Input -> Rescaling -> stem Conv2D(CHANNELS) -> Block -> pooling -> Output."""
    return {
        "schema_version": 1,
        "meta": {"name": "blocks"},
        "nodes": [
            {"id": "in", "component": "Input", "settings": {"shape": IMAGE}},
            {"id": "scale", "component": "Rescaling"},
            {"id": "stem", "component": "Conv2D", "settings": {"filters": CHANNELS}},
            {"id": "res", "component": "Block", "settings": {"block": block, "repeat": repeat}},
            {"id": "pool", "component": "GlobalAveragePooling2D"},
            {"id": "out", "component": "Output", "settings": {"units": 10}},
        ],
        "edges": [
            {"source": "in", "target": "scale"},
            {"source": "scale", "target": "stem"},
            {"source": "stem", "target": "res"},
            {"source": "res", "target": "pool"},
            {"source": "pool", "target": "out"},
        ],
        "blocks": {"cell": residual_cell()} if blocks is None else blocks,
    }  # fmt: skip


def errors_on(doc: GraphDocument, node_id: str | None) -> list[str]:
    return [p.message for p in analyze(doc).errors if p.node == node_id]


# Expansion by the analysis


def test_repeated_residual_block_keeps_the_shape_and_counts_each_repetition():
    analysis = analyze(parse(graph_data(repeat=3)))
    assert analysis.ok, [p.message for p in analysis.errors]
    block = analysis.infos["res"]
    assert block.shape == (None, IMAGE[0], IMAGE[1], CHANNELS)
    assert block.params == 3 * conv2d_params(3, CHANNELS, CHANNELS)


def test_block_node_params_add_to_the_graph_total():
    analysis = analyze(parse(graph_data(repeat=2)))
    expected = (conv2d_params(3, IMAGE[2], CHANNELS) + 2 * conv2d_params(3, CHANNELS, CHANNELS)
                + CHANNELS * 10 + 10)  # fmt: skip
    assert analysis.totals()["params"] == expected


def test_shape_error_inside_a_block_is_reported_on_the_block_node():
    # The cell's conv makes 2C channels; Add cannot join them with the C channels it received.
    analysis = analyze(parse(graph_data(blocks={"cell": residual_cell(filters=2 * CHANNELS)})))
    messages = [p.message for p in analysis.errors if p.node == "res"]
    assert len(messages) == 1
    assert "'add'" in messages[0]
    assert "res" not in analysis.infos


def test_a_block_that_widens_its_input_chains_when_repeated():
    # The second repetition takes the widened output of the first, as stacked cells do.
    analysis = analyze(parse(graph_data(block="wide", repeat=2, blocks={"wide": widening_cell()})))
    assert analysis.ok, [p.message for p in analysis.errors]
    assert analysis.infos["res"].shape == (None, IMAGE[0], IMAGE[1], 2 * CHANNELS)
    assert (
        analysis.infos["res"].trainable
        == (9 * CHANNELS + 1) * 2 * CHANNELS + (9 * 2 * CHANNELS + 1) * 2 * CHANNELS
    )


def test_block_whose_output_differs_from_its_input_can_be_used_once():
    analysis = analyze(parse(graph_data(block="wide", repeat=1, blocks={"wide": widening_cell()})))
    assert analysis.ok, [p.message for p in analysis.errors]
    assert analysis.infos["res"].shape == (None, IMAGE[0], IMAGE[1], 2 * CHANNELS)


def test_unknown_block_name_is_an_error_on_the_block_node():
    doc = parse(graph_data(block="missing"))
    messages = errors_on(doc, "res")
    assert len(messages) == 1
    assert "'missing'" in messages[0]


def test_block_without_block_input_is_an_error_naming_the_block():
    cell = residual_cell()
    cell["nodes"] = [n for n in cell["nodes"] if n["component"] != "BlockInput"]
    cell["edges"] = [e for e in cell["edges"] if e["source"] != "x"]
    analysis = analyze(parse(graph_data(blocks={"cell": cell})))
    problems = [p for p in analysis.errors if p.code == "block_input"]
    assert len(problems) == 1
    assert "'cell'" in problems[0].message
    assert not analysis.ok


# The built model


@pytest.fixture(scope="module")
def built() -> tuple[Any, Any]:
    from app.keras.builder import build_model

    analysis = analyze(parse(graph_data(repeat=3)))
    return analysis, build_model(analysis)


def test_built_model_has_the_analysed_parameter_count(built):
    analysis, model = built
    assert model.count_params() == analysis.totals()["params"]


def test_built_block_layers_are_named_node_repetition_inner_id(built):
    _, model = built
    names = {layer.name for layer in model.layers}
    expected = {f"res_{rep}_{inner}" for rep in (1, 2, 3) for inner in ("conv", "add")}
    assert expected <= names
    assert not any(name.startswith("res_4_") for name in names)


# The block library


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(tmp_path))
    return tmp_path


def test_saved_block_is_listed_and_loads_back_equal(workspace):
    cell = BlockDef.model_validate(residual_cell())
    path = Workspace.current().save_block("cell", cell)
    assert path == workspace / "blocks" / "cell.json"
    assert Workspace.current().blocks() == ["cell"]
    assert Workspace.current().block("cell") == cell


def test_used_block_lets_another_graph_analyse_ok(workspace):
    Workspace.current().save_block("cell", BlockDef.model_validate(residual_cell()))
    without = parse(graph_data(blocks={}))
    assert not analyze(without).ok
    with_block = Workspace.current().use_block(without, "cell")
    analysis = analyze(with_block)
    assert analysis.ok, [p.message for p in analysis.errors]
    assert analysis.infos["res"].params == 3 * conv2d_params(3, CHANNELS, CHANNELS)
    assert without.blocks == {}


def test_empty_library_lists_no_blocks(workspace):
    assert Workspace.current().blocks() == []


@pytest.mark.parametrize("name", ["../x", "a b"])
def test_invalid_block_names_are_refused_on_save(workspace, name):
    with pytest.raises(ValueError):
        Workspace.current().save_block(name, BlockDef.model_validate(residual_cell()))
    assert list(workspace.rglob("*.json")) == []


@pytest.mark.parametrize("name", ["../x", "a b"])
def test_invalid_block_names_are_refused_on_load(workspace, name):
    with pytest.raises(ValueError, match="Invalid block name"):
        Workspace.current().block(name)


@pytest.mark.parametrize("text", ['{"nodes": [', '{"nodes": [], "colour": 1}'])
def test_corrupt_block_file_gives_a_one_line_error_naming_the_file(workspace, text):
    path = workspace / "blocks" / "cell.json"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        Workspace.current().block("cell")
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message


# A block's inside, as the canvas opens it


def test_the_inside_of_a_block_has_the_shapes_its_first_use_gives_it():
    analysis = analyze(parse(graph_data(repeat=2)))
    inner = analysis.inside("cell")
    assert [n.id for n in inner.doc.nodes] == ["x", "conv", "add"]
    assert inner.infos["conv"].shape == (None, IMAGE[0], IMAGE[1], CHANNELS)
    assert inner.infos["conv"].params == conv2d_params(3, CHANNELS, CHANNELS)  # one repetition
    assert inner.problems == []


def test_an_unused_block_opens_without_shapes_and_a_broken_one_names_its_problem():
    blocks = {"cell": residual_cell(), "spare": {**widening_cell(), "output": "nowhere"}}
    inner = analyze(parse(graph_data(blocks=blocks))).inside("spare")
    assert inner.infos == {}
    assert [p.code for p in inner.problems] == ["block_output"]


def test_an_edit_inside_a_block_changes_every_use_and_only_that_block():
    from app.graph.edit import EditError, inside, set_settings, with_inside

    doc = parse(graph_data(repeat=3))
    edited = with_inside(doc, "cell", set_settings(inside(doc, "cell"), "conv", {"filters": 4}))
    assert [n.settings.get("filters") for n in edited.blocks["cell"].nodes] == [None, 4, None]
    assert doc.blocks["cell"].nodes[1].settings["filters"] == CHANNELS  # the original is kept
    assert [n.id for n in edited.nodes] == [n.id for n in doc.nodes]
    assert errors_on(edited, "res")  # 4 channels cannot be added to 8: on the Block node
    with pytest.raises(EditError, match="No block named 'nope'"):
        inside(doc, "nope")
