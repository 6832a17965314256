"""Editing operations: each edit's effect, each refusal, and that inputs stay unchanged."""

from __future__ import annotations

import pytest

from app.graph.analysis import analyze
from app.graph.components.advanced import CUSTOM_EXAMPLE
from app.graph.document import GraphDocument, check, parse
from app.graph.edit import (
    EditError,
    History,
    add_node,
    apply_fix,
    connect,
    disconnect,
    expand_block,
    make_block,
    move,
    new_node_id,
    palette,
    remove_nodes,
    set_code,
    set_label,
    set_settings,
)
from app.graph.problems import Fix
from tests.graphs import chain

HEAD = {"units": 10, "activation": "softmax", "loss": "sparse_categorical_crossentropy"}


def mlp() -> GraphDocument:
    return chain(
        ("in", "Input", {"shape": [4]}),
        ("d1", "Dense", {"units": 8}),
        ("d2", "Dense", {"units": 8}),
        ("out", "Output", HEAD),
    )


def residual() -> GraphDocument:
    """in -> stem -> c1 -> bn1 -> add(stem, bn1) -> gap -> out."""
    return parse(
        {
            "schema_version": 1,
            "nodes": [
                {"id": "in", "component": "Input", "settings": {"shape": [8, 8, 3]}},
                {"id": "stem", "component": "Conv2D", "settings": {"filters": 4}},
                {"id": "c1", "component": "Conv2D", "settings": {"filters": 4}},
                {"id": "bn1", "component": "BatchNormalization", "settings": {}},
                {"id": "add", "component": "Add", "settings": {}},
                {"id": "gap", "component": "GlobalAveragePooling2D", "settings": {}},
                {"id": "out", "component": "Output", "settings": HEAD},
            ],
            "edges": [
                {"source": "in", "target": "stem"},
                {"source": "stem", "target": "c1"},
                {"source": "c1", "target": "bn1"},
                {"source": "stem", "target": "add", "slot": 0},
                {"source": "bn1", "target": "add", "slot": 1},
                {"source": "add", "target": "gap"},
                {"source": "gap", "target": "out"},
            ],
        }
    )


def edge_triples(doc: GraphDocument) -> set[tuple[str, str, int]]:
    return {(e.source, e.target, e.slot) for e in doc.edges}


def codes(doc: GraphDocument) -> set[str]:
    return {p.code for p in analyze(doc).problems}


def fix_for(doc: GraphDocument, code: str) -> Fix:
    (problem,) = [p for p in analyze(doc).problems if p.code == code]
    assert problem.fix is not None
    return problem.fix


# Ids and nodes


def test_new_node_id_takes_the_first_free_number():
    doc, _ = add_node(mlp(), "Dense", node_id="dense_1")
    doc, _ = add_node(doc, "Dense", node_id="dense_3")
    assert new_node_id(doc, "Dense") == "dense_2"


def test_new_node_id_avoids_ids_that_read_like_its_block_layers():
    doc = expand_block(make_block(residual(), ["c1", "bn1", "add"], "res"), "block_1")
    # 'block_1' would make the inlined 'block_1_1_c1' read like one of its layers
    assert new_node_id(doc, "Block") == "block_2"


def test_add_node_appends_a_node_with_only_the_given_settings():
    doc, node_id = add_node(mlp(), "Dense", {"units": 3}, label="head", position=(5, 6))
    node = doc.node(node_id)
    assert (node_id, node.settings, node.label) == ("dense_1", {"units": 3}, "head")
    assert (node.position.x, node.position.y) == (5, 6)


def test_add_node_gives_a_custom_node_example_code():
    doc, node_id = add_node(mlp(), "Custom")
    assert doc.node(node_id).code == CUSTOM_EXAMPLE


def test_add_node_suggests_the_closest_component_for_an_unknown_one():
    with pytest.raises(EditError, match="did you mean 'Conv2D'"):
        add_node(mlp(), "Conv2d")


def test_add_node_refuses_a_block_input_at_top_level():
    with pytest.raises(EditError, match="Unknown component 'BlockInput'"):
        add_node(mlp(), "BlockInput")


def test_add_node_refuses_a_taken_id():
    with pytest.raises(EditError, match="Node 'd1': the id is already taken"):
        add_node(mlp(), "Dense", node_id="d1")


def test_add_node_refuses_an_invalid_id():
    with pytest.raises(EditError, match="Invalid node id '1x'"):
        add_node(mlp(), "Dense", node_id="1x")


def test_add_node_refuses_an_invalid_setting_naming_it():
    with pytest.raises(EditError, match=r"Received an invalid value for `units`.*units=0"):
        add_node(mlp(), "Dense", {"units": 0})


def test_add_node_refuses_a_block_node_for_an_unknown_block():
    with pytest.raises(EditError, match="no block named 'nope'"):
        add_node(mlp(), "Block", {"block": "nope"})


def test_add_node_leaves_the_input_unchanged():
    doc = mlp()
    before = doc.model_copy(deep=True)
    add_node(doc, "Dense")
    assert doc == before


def test_remove_nodes_removes_their_edges():
    doc = remove_nodes(mlp(), ["d1"])
    assert [n.id for n in doc.nodes] == ["in", "d2", "out"]
    assert edge_triples(doc) == {("d2", "out", 0)}


def test_remove_nodes_refuses_an_unknown_id():
    with pytest.raises(EditError, match="Node 'ghost': no such node"):
        remove_nodes(mlp(), ["d1", "ghost"])


def test_remove_nodes_leaves_the_input_unchanged():
    doc = mlp()
    remove_nodes(doc, ["d1"])
    assert len(doc.nodes) == 4 and len(doc.edges) == 3


# Settings, label, code, position


def test_set_settings_merges_the_changes():
    doc = set_settings(mlp(), "d1", {"activation": "tanh"})
    assert doc.node("d1").settings == {"units": 8, "activation": "tanh"}


def test_set_settings_keeps_a_value_equal_to_the_default():
    doc = set_settings(mlp(), "d1", {"use_bias": True})
    assert doc.node("d1").settings["use_bias"] is True


def test_set_settings_refuses_a_bad_value_with_the_settings_message():
    with pytest.raises(EditError, match=r"Node 'd1' \(Dense\): Received an invalid value for"):
        set_settings(mlp(), "d1", {"units": -1})


def test_set_settings_refuses_an_unknown_setting_naming_it():
    with pytest.raises(EditError, match="unknown setting `rate`; Dense takes: units"):
        set_settings(mlp(), "d1", {"rate": 0.1})


def test_set_settings_refuses_an_unknown_node():
    with pytest.raises(EditError, match="Node 'ghost'"):
        set_settings(mlp(), "ghost", {"units": 1})


def test_set_settings_leaves_the_input_unchanged():
    doc = mlp()
    set_settings(doc, "d1", {"units": 2})
    assert doc.node("d1").settings == {"units": 8}


def test_set_label_sets_and_blank_removes_it():
    doc = set_label(mlp(), "d1", "hidden")
    assert doc.node("d1").label == "hidden"
    assert set_label(doc, "d1", "  ").node("d1").label is None


def test_set_label_refuses_a_label_too_long():
    with pytest.raises(EditError, match="Node 'd1': `label`"):
        set_label(mlp(), "d1", "x" * 201)


def test_set_code_sets_code_on_any_node_and_none_removes_it():
    doc = set_code(mlp(), "d1", "return inputs[0]\n")
    assert doc.node("d1").code == "return inputs[0]\n"
    assert set_code(doc, "d1", None).node("d1").code is None


def test_set_code_refuses_an_unknown_node():
    with pytest.raises(EditError, match="Node 'ghost'"):
        set_code(mlp(), "ghost", "return inputs[0]")


def test_move_sets_the_position():
    node = move(mlp(), "d1", 10, -20.5).node("d1")
    assert (node.position.x, node.position.y) == (10, -20.5)


def test_move_refuses_a_non_finite_coordinate():
    with pytest.raises(EditError, match="Node 'd1': expected a finite number for `y`"):
        move(mlp(), "d1", 0, float("nan"))


# Edges


def test_connect_fills_the_first_free_slot():
    doc = chain(("in", "Input", {"shape": [4]}), ("a", "Dense", {}), ("b", "Dense", {}))
    doc, _ = add_node(doc, "Concatenate", node_id="cat")
    doc = connect(doc, "b", "cat", slot=1)
    doc = connect(doc, "a", "cat")
    assert ("a", "cat", 0) in edge_triples(doc)


def test_connect_refuses_a_self_loop():
    with pytest.raises(EditError, match="Edge d1 -> d1: a node cannot feed itself"):
        connect(mlp(), "d1", "d1")


def test_connect_refuses_a_cycle():
    with pytest.raises(EditError, match="Edge d2 -> d1: .*cycle"):
        connect(mlp(), "d2", "d1")


def test_connect_refuses_a_duplicate_edge():
    with pytest.raises(EditError, match="'d1' already feeds 'd2'"):
        connect(mlp(), "d1", "d2", slot=1)


def test_connect_refuses_a_slot_beyond_the_targets_arity():
    doc, node_id = add_node(mlp(), "Dense")
    with pytest.raises(EditError, match=r"\(Dense\) takes 1 input\(s\), received slot=1"):
        connect(doc, "d1", node_id, slot=1)


def test_connect_refuses_a_target_whose_inputs_are_all_fed():
    with pytest.raises(EditError, match=r"Node 'd2' \(Dense\) already has its 1 input"):
        connect(mlp(), "in", "d2")


def test_connect_refuses_a_taken_slot():
    doc, node_id = add_node(mlp(), "Add")
    doc = connect(doc, "d1", node_id, slot=0)
    with pytest.raises(EditError, match="input slot 0 of 'add_1' is fed by 'd1'"):
        connect(doc, "d2", node_id, slot=0)


def test_connect_refuses_an_input_node_as_target():
    doc, node_id = add_node(mlp(), "Input")
    with pytest.raises(EditError, match=r"\(Input\) takes no inputs"):
        connect(doc, "d1", node_id)


def test_connect_refuses_an_unknown_node():
    with pytest.raises(EditError, match="Node 'ghost': no such node"):
        connect(mlp(), "d1", "ghost")


def test_connect_leaves_the_input_unchanged():
    doc, node_id = add_node(mlp(), "Dense")
    connect(doc, "d2", node_id)
    assert len(doc.edges) == 3


def test_disconnect_keeps_the_other_inputs_slots():
    doc = disconnect(residual(), "stem", "add")
    assert ("bn1", "add", 1) in edge_triples(doc)
    assert not any(e.source == "stem" and e.target == "add" for e in doc.edges)


def test_disconnect_refuses_a_missing_edge():
    with pytest.raises(EditError, match="Edge in -> out: no such edge"):
        disconnect(mlp(), "in", "out")


# Fixes


def test_apply_fix_inserts_pooling_before_a_dense_on_feature_maps():
    doc = chain(
        ("in", "Input", {"shape": [8, 8, 3]}),
        ("scale", "Rescaling", {}),
        ("dense", "Dense", {}),
        ("flat", "Flatten", {}),
        ("out", "Output", HEAD),
    )
    fixed = apply_fix(doc, fix_for(doc, "dense_rank4"))
    assert "dense_rank4" not in codes(fixed)
    assert {("scale", "globalaveragepooling2d_1", 0), ("globalaveragepooling2d_1", "dense", 0)} <= (
        edge_triples(fixed)
    )
    assert analyze(fixed).ok


def test_apply_fix_lowers_a_heavy_dropout_rate():
    doc = chain(
        ("in", "Input", {"shape": [4], "dtype": "int32"}),
        ("drop", "Dropout", {"rate": 0.7}),
        ("out", "Output", HEAD),
    )
    fixed = apply_fix(doc, fix_for(doc, "heavy_dropout"))
    assert "heavy_dropout" not in codes(fixed)
    assert fixed.node("drop").settings == {"rate": 0.3}


def test_apply_fix_inserts_rescaling_after_the_input_before_every_successor():
    doc = residual()
    fixed = apply_fix(doc, fix_for(doc, "no_normalization"))
    assert "no_normalization" not in codes(fixed)
    assert {("in", "rescaling_1", 0), ("rescaling_1", "stem", 0)} <= edge_triples(fixed)


def test_apply_fix_places_the_inserted_node_between_its_neighbours():
    doc = move(move(mlp(), "in", 0, 0), "d1", 0, 200)
    fixed = apply_fix(doc, Fix("scale", "in", insert="Rescaling", where="after"))
    position = fixed.node("rescaling_1").position
    assert (position.x, position.y) == (0, 100)


def test_apply_fix_refuses_to_insert_before_a_node_without_input():
    with pytest.raises(EditError, match=r"Node 'in' \(Input\): no input to insert before"):
        apply_fix(mlp(), Fix("x", "in", insert="Rescaling"))


def test_apply_fix_leaves_the_input_unchanged():
    doc = residual()
    before = doc.model_copy(deep=True)
    apply_fix(doc, fix_for(doc, "no_normalization"))
    assert doc == before


# Blocks


def test_make_block_replaces_the_selection_with_a_block_node():
    doc = make_block(residual(), ["c1", "bn1", "add"], "res", "a residual cell")
    assert [n.id for n in doc.nodes] == ["in", "stem", "block_1", "gap", "out"]
    assert edge_triples(doc) == {
        ("in", "stem", 0),
        ("stem", "block_1", 0),
        ("block_1", "gap", 0),
        ("gap", "out", 0),
    }
    assert doc.node("block_1").settings == {"block": "res", "repeat": 1}
    assert not [p for p in check(doc).problems if p.level == "error"]


def test_make_block_turns_each_external_source_into_a_block_input():
    block = make_block(residual(), ["c1", "bn1", "add"], "res").blocks["res"]
    assert block.output == "add"
    assert [(n.id, n.settings) for n in block.nodes if n.component == "BlockInput"] == [
        ("input_0", {"slot": 0})
    ]
    assert {("input_0", "c1", 0), ("input_0", "add", 0), ("bn1", "add", 1)} <= {
        (e.source, e.target, e.slot) for e in block.edges
    }


def test_make_block_numbers_block_inputs_in_order_of_first_appearance():
    doc = make_block(residual(), ["bn1", "add"], "tail")
    assert edge_triples(doc) >= {("c1", "block_1", 0), ("stem", "block_1", 1)}


def test_make_block_keeps_params_and_shapes():
    original = analyze(residual())
    blocked = analyze(make_block(residual(), ["c1", "bn1", "add"], "res"))
    assert blocked.totals()["params"] == original.totals()["params"]
    assert blocked.infos["out"].shape == original.infos["out"].shape


def test_make_block_refuses_two_outputs():
    with pytest.raises(EditError, match="exactly one selected node .* found 'stem', 'c1'"):
        make_block(residual(), ["stem", "c1"], "res")


def test_make_block_refuses_a_selection_nothing_feeds():
    doc = disconnect(chain(("in", "Input", {"shape": [4]}), ("out", "Output", HEAD)), "in", "out")
    doc, node_id = add_node(doc, "Dense")
    doc = connect(doc, node_id, "out")
    with pytest.raises(EditError, match="nothing outside the selection feeds it"):
        make_block(doc, [node_id], "lonely")


def test_make_block_refuses_a_node_that_does_not_lead_to_the_output():
    doc, node_id = add_node(residual(), "Dense")
    doc = connect(doc, "stem", node_id)
    with pytest.raises(EditError, match="Node 'dense_1' does not lead to the block output"):
        make_block(doc, ["c1", "bn1", "add", node_id], "res")


def test_make_block_refuses_an_existing_block_name():
    doc = make_block(residual(), ["c1", "bn1", "add"], "res")
    with pytest.raises(EditError, match="Block 'res': a block of that name already exists"):
        make_block(doc, ["gap"], "res")


def test_make_block_refuses_a_name_that_is_not_an_identifier():
    with pytest.raises(EditError, match="Invalid block name 'my block'"):
        make_block(residual(), ["c1"], "my block")


@pytest.mark.parametrize("node_id", ["in", "out"])
def test_make_block_refuses_input_and_output_nodes(node_id):
    with pytest.raises(EditError, match=f"Node '{node_id}' .* cannot go in a block"):
        make_block(residual(), [node_id], "res")


def test_make_block_refuses_a_block_node():
    doc = make_block(residual(), ["c1", "bn1", "add"], "res")
    with pytest.raises(EditError, match=r"Node 'block_1' \(Block\) cannot go in a block"):
        make_block(doc, ["block_1"], "outer")


def test_make_block_refuses_an_empty_selection():
    with pytest.raises(EditError, match="select the nodes"):
        make_block(residual(), [], "res")


def test_make_block_leaves_the_input_unchanged():
    doc = residual()
    before = doc.model_copy(deep=True)
    make_block(doc, ["c1", "bn1", "add"], "res")
    assert doc == before


def test_expand_block_inverts_make_block_in_params_and_shapes():
    original = analyze(residual())
    expanded = analyze(expand_block(make_block(residual(), ["c1", "bn1", "add"], "res"), "block_1"))
    assert expanded.ok
    assert expanded.totals() == original.totals()
    assert {i: expanded.infos[i].shape for i in ("gap", "out")} == {
        i: original.infos[i].shape for i in ("gap", "out")
    }


def test_expand_block_names_nodes_like_their_keras_layers():
    doc = expand_block(make_block(residual(), ["c1", "bn1", "add"], "res"), "block_1")
    assert [n.id for n in doc.nodes] == [
        "in",
        "stem",
        "block_1_1_c1",
        "block_1_1_bn1",
        "block_1_1_add",
        "gap",
        "out",
    ]
    assert {("stem", "block_1_1_add", 0), ("block_1_1_add", "gap", 0)} <= edge_triples(doc)


def test_expand_block_removes_a_definition_no_longer_used():
    doc = expand_block(make_block(residual(), ["c1", "bn1", "add"], "res"), "block_1")
    assert doc.blocks == {}


def test_expand_block_keeps_a_definition_another_block_node_uses():
    doc = make_block(residual(), ["c1", "bn1", "add"], "res")
    doc, second = add_node(doc, "Block", {"block": "res"})
    doc = connect(doc, "block_1", second)
    assert "res" in expand_block(doc, "block_1").blocks


def test_expand_block_chains_repetitions_with_the_same_params():
    doc = make_block(residual(), ["c1", "bn1", "add"], "res")
    doc = set_settings(doc, "block_1", {"repeat": 3})
    expanded = expand_block(doc, "block_1")
    assert analyze(expanded).totals() == analyze(doc).totals()
    assert {("block_1_1_add", "block_1_2_c1", 0), ("block_1_3_add", "gap", 0)} <= (
        edge_triples(expanded)
    )


def test_expand_block_makes_a_clashing_id_unique():
    doc = make_block(residual(), ["c1", "bn1", "add"], "res")
    doc, _ = add_node(doc, "Dense", node_id="block_1_1_c1")
    expanded = expand_block(doc, "block_1")
    assert "block_1_1_c1_2" in [n.id for n in expanded.nodes]
    assert ("stem", "block_1_1_c1_2", 0) in edge_triples(expanded)


def test_expand_block_refuses_a_node_that_is_not_a_block():
    with pytest.raises(EditError, match=r"Node 'd1' \(Dense\): only Block nodes"):
        expand_block(mlp(), "d1")


def test_expand_block_refuses_to_repeat_a_block_with_two_inputs():
    doc = make_block(residual(), ["bn1", "add"], "tail")
    doc = set_settings(doc, "block_1", {"repeat": 2})
    with pytest.raises(EditError, match="only a block with one input can be repeated"):
        expand_block(doc, "block_1")


def test_expand_block_leaves_the_input_unchanged():
    doc = make_block(residual(), ["c1", "bn1", "add"], "res")
    before = doc.model_copy(deep=True)
    expand_block(doc, "block_1")
    assert doc == before


# History


def test_history_undo_and_redo_walk_the_pushed_documents():
    first, second = mlp(), set_label(mlp(), "d1", "x")
    history = History(first)
    history.push(second)
    assert history.undo() is first
    assert history.redo() is second


def test_history_push_after_undo_drops_the_redo_branch():
    history = History(mlp())
    history.push(set_label(mlp(), "d1", "a"))
    history.undo()
    history.push(set_label(mlp(), "d1", "b"))
    assert not history.can_redo
    assert history.doc.node("d1").label == "b"


def test_history_ignores_pushing_the_current_document_again():
    history = History(mlp())
    history.push(mlp())
    assert not history.can_undo


def test_history_is_bounded():
    history = History(mlp(), limit=3)
    for x in range(5):
        history.push(move(mlp(), "d1", x, 0))
    history.undo()
    history.undo()
    assert not history.can_undo
    assert history.doc.node("d1").position.x == 2


def test_history_refuses_undo_and_redo_at_the_ends():
    history = History(mlp())
    with pytest.raises(EditError, match="Nothing to undo"):
        history.undo()
    with pytest.raises(EditError, match="Nothing to redo"):
        history.redo()


# Palette


def test_palette_groups_components_by_category_without_block_input():
    groups = palette()
    assert {"name": "Conv2D", "help": "2D convolution over channels-last inputs."} in groups[
        "Convolution"
    ]
    assert "BlockInput" not in {c["name"] for group in groups.values() for c in group}


def test_palette_filters_by_name_category_or_help_ignoring_case():
    assert [c["name"] for c in palette("conv2dt")["Convolution"]] == ["Conv2DTranspose"]
    assert set(palette("REGULARIZATION")) == {"Regularization"}
    assert "Add" in [c["name"] for c in palette("residual").get("Merge", [])]
