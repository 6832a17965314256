"""Motif folding on import (app.graph.fold): repeated subgraphs become blocks, and the folded
graph is still exactly the imported model. The keras.applications models are folded in
tests/test_keras_import.py's round trips."""

from __future__ import annotations

import collections
import json

import keras
import numpy as np
import pytest
from keras import layers

from app.cli.main import main
from app.graph.analysis import analyze
from app.graph.block_layers import layer_owners
from app.graph.codegen import generate_module
from app.graph.document import Edge, GraphDocument, Node, check, load, parse
from app.graph.edit import (
    add_node,
    expand_block,
    inside,
    remove_nodes,
    set_settings,
    with_inside,
)
from app.graph.fold import fold_motifs
from app.keras.builder import build_model, copy_weights_by_name
from app.keras.importer import import_keras


def conv_unit(x, name: str):
    x = layers.Conv2D(8, 3, padding="same", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def residual(x, name: str):
    y = layers.Conv2D(8, 3, padding="same", name=f"{name}_1_conv")(x)
    y = layers.BatchNormalization(name=f"{name}_1_bn")(y)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = layers.Conv2D(8, 3, padding="same", name=f"{name}_2_conv")(y)
    y = layers.BatchNormalization(name=f"{name}_2_bn")(y)
    y = layers.Add(name=f"{name}_add")([x, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def two_motifs() -> keras.Model:
    """A conv unit used twice apart, and a residual block three times in a row."""
    inputs = keras.Input((16, 16, 3), name="image")
    x = conv_unit(inputs, "stem")
    for i in range(3):
        x = residual(x, f"stage_block{i + 1}")
    x = layers.MaxPooling2D(name="pool")(x)
    x = conv_unit(x, "late")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, layers.Dense(5, name="logits")(x), name="two_motifs")


def expanded(doc: GraphDocument) -> GraphDocument:
    while blocks := [n.id for n in doc.nodes if n.component == "Block"]:
        doc = expand_block(doc, blocks[0])
    return doc


def test_two_motifs_fold_into_a_repeated_block_and_a_shared_one():
    model = two_motifs()
    doc = import_keras(model)
    blocks = {n.id: n.settings for n in doc.nodes if n.component == "Block"}
    repeated = [s for s in blocks.values() if s["repeat"] == 3]
    assert len(repeated) == 1, blocks  # the residual block, stacked three times
    residual_block = doc.blocks[repeated[0]["block"]]
    assert collections.Counter(n.component for n in residual_block.nodes) == {
        "BlockInput": 1, "Conv2D": 2, "BatchNormalization": 2, "Activation": 2, "Add": 1,
    }  # fmt: skip
    shared = [s["block"] for s in blocks.values() if s["repeat"] == 1]
    assert len(shared) == 2 and len(set(shared)) == 1  # the conv unit, one definition used twice
    assert len(doc.nodes) == 8  # image, 3 Block nodes, pool, gap, logits, its Output

    rebuilt = build_model(doc)
    assert rebuilt.count_params() == model.count_params()
    assert tuple(rebuilt.output.shape) == tuple(model.output.shape)


def test_the_flat_import_is_one_node_per_layer_and_the_folded_one_expands_back_to_it():
    model = two_motifs()
    flat, folded = import_keras(model, flat=True), import_keras(model)
    assert not flat.blocks
    assert [n.id for n in flat.nodes[1:-1]] == [layer.name for layer in model.layers[1:]]
    back = expanded(folded)
    assert collections.Counter(n.component for n in back.nodes) == collections.Counter(
        n.component for n in flat.nodes
    )
    assert analyze(back).totals() == analyze(flat).totals() == analyze(folded).totals()
    assert len(back.edges) == len(flat.edges)


def takes_weights_by_name(model: keras.Model, rebuilt: keras.Model) -> None:
    """Every layer of `model` that has weights gives them to the layer of its name in
    `rebuilt`, and the two then compute the same."""
    with_weights = sum(bool(layer.weights) for layer in model.layers)
    assert copy_weights_by_name(model, rebuilt) == with_weights
    x = np.random.default_rng(0).random((2, *model.input_shape[1:]), dtype="float32")
    np.testing.assert_allclose(rebuilt(x), model(x), rtol=1e-4, atol=1e-5)


def test_weights_go_to_a_layer_the_import_renamed():
    inputs = keras.Input((4,), name="features")
    hidden = layers.Dense(3, name="1st dense")(inputs)  # not an id: the node is '_1st_dense'
    model = keras.Model(inputs, layers.Dense(2, name="out.logits")(hidden))
    rebuilt = build_model(import_keras(model))
    assert {layer.name for layer in rebuilt.layers} >= {"_1st_dense", "out.logits"}
    takes_weights_by_name(model, rebuilt)


def test_weights_that_do_not_fit_are_refused_by_layer_name_and_none_are_copied():
    model = two_motifs()
    doc = import_keras(model)
    rebuilt = build_model(doc)
    before = [w.copy() for w in rebuilt.get_weights()]
    narrower = set_settings(doc, "logits", {"units": 4})  # the Dense head, 5 units in the model
    with pytest.raises(ValueError, match=r"Layer 'logits': its weights of shapes .* do not fit"):
        copy_weights_by_name(model, build_model(narrower))
    renamed = keras.Model(model.input, layers.Dense(5, name="head")(model.layers[-2].output))
    with pytest.raises(ValueError, match="Layer 'head' has weights, and the graph's model has no"):
        copy_weights_by_name(renamed, rebuilt)
    assert all((a == b).all() for a, b in zip(before, rebuilt.get_weights(), strict=True))


def test_a_folded_model_keeps_its_layer_names_and_takes_its_weights_by_name():
    model = two_motifs()
    flat, folded = import_keras(model, flat=True), import_keras(model)
    rebuilt = build_model(folded)
    names = sorted(layer.name for layer in rebuilt.layers)
    assert names == sorted(layer.name for layer in build_model(flat).layers)
    assert {layer.name for layer in model.layers} <= set(names)  # and the Output's own layer
    takes_weights_by_name(model, rebuilt)
    # each layer belongs to the Block node that replaced it
    owners = layer_owners(folded)
    assert owners["stage_block2_1_conv"] == owners["stage_block3_out"] != "stage_block2_1_conv"
    # expanded, the block's nodes are the flat graph's nodes again, by id
    assert {n.id for n in expanded(folded).nodes} == {n.id for n in flat.nodes}


def named_block(names) -> dict:
    """A graph whose Block node, used twice, names its layers with `names`."""
    cell = {"nodes": [{"id": "in", "component": "BlockInput", "settings": {"slot": 0}},
                      {"id": "dense", "component": "Dense", "settings": {"units": 4}}],
            "edges": [{"source": "in", "target": "dense"}], "output": "dense"}  # fmt: skip
    return {
        "meta": {"name": "named"},
        "nodes": [
            {"id": "x", "component": "Input", "settings": {"shape": [3]}},
            {"id": "cells", "component": "Block",
             "settings": {"block": "cell", "repeat": 2, "names": names}},
            {"id": "y", "component": "Output", "settings": {}},
        ],  # fmt: skip
        "edges": [{"source": "x", "target": "cells"}, {"source": "cells", "target": "y"}],
        "blocks": {"cell": cell},
    }


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"conv": ["a", "b"]}, "Node 'cells' (Block): `names` names 'conv', not a node of block"),
        ({"dense": "a"}, "`names`['dense'] must be a list of layer names"),
        ({"dense": ["a/b", "c"]}, "`names`['dense'] must be a list of layer names"),
        ({"dense": ["x", "c"]}, "`names`: the layer name 'x' is used twice (node 'x' makes"),
        ({"dense": ["c", "c"]}, "`names`: the layer name 'c' is used twice"),
        ({"dense": ["cells_2_dense"]}, "`names`: the layer name 'cells_2_dense' is used twice"),
    ],
)
def test_a_block_nodes_names_are_checked(names, expected):
    (problem,) = [p for p in check(parse(named_block(names))).problems if p.level == "error"]
    assert expected in problem.message and (problem.node, problem.setting) == ("cells", "names")


def test_a_block_nodes_params_set_its_blocks_settings_for_it():
    data = named_block(None)
    data["nodes"][1]["settings"]["params"] = {"dense": {"units": 8}}
    doc = parse(data)
    analysis = analyze(doc)
    assert not analysis.errors
    assert analysis.infos["cells"].shape == (None, 8)
    assert analysis.infos["cells"].params == (3 * 8 + 8) + (8 * 8 + 8)
    assert build_model(doc).count_params() == analysis.totals()["params"]
    assert analyze(parse(named_block(None))).infos["cells"].shape == (None, 4)  # the block's


def test_a_node_taken_out_of_a_block_leaves_its_uses_names_and_params():
    data = named_block({"dense": ["first", "second"]})
    data["nodes"][1]["settings"]["params"] = {"dense": {"units": 8}}
    cell = data["blocks"]["cell"]
    cell["nodes"].append({"id": "extra", "component": "Dense", "settings": {"units": 8}})
    cell["edges"] = [{"source": "in", "target": "extra"}, {"source": "extra", "target": "dense"}]
    doc = parse(data)
    edited = remove_nodes(inside(doc, "cell"), ["dense"])
    after = with_inside(doc, "cell", edited)
    assert after.node("cells").settings["names"] == {}
    assert after.node("cells").settings["params"] == {}
    assert not [p for p in check(after).problems if p.setting in ("names", "params")]


@pytest.mark.parametrize("names", [{"dense": {"a": 1}}, {"dense": [["a"]]}, ["dense"], "x"])
def test_odd_names_are_one_error_and_leave_the_graph_editable(names):
    doc = parse(named_block(names))
    errors = [p for p in check(doc).problems if p.level == "error"]
    assert len(errors) == 1 and errors[0].node == "cells", errors
    doc, added = add_node(doc, "Dense")  # the palette still works
    assert added == "dense_1"


def test_a_new_node_takes_no_name_a_block_node_gives_a_layer():
    data = named_block({"dense": ["dense_1", "dense_2"]})  # what add_node would pick first
    doc, added = add_node(parse(data), "Dense")
    assert added == "dense_3"
    assert not [p for p in check(doc).problems if p.code == "layer_name"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"conv": {"units": 2}}, "Node 'cells' (Block): `params` names 'conv', not a node of"),
        ({"dense": 8}, "`params`['dense'] must be an object of settings, received 8"),
        ({"dense": {"units": -1}}, "`params`['dense']: Received an invalid value for `units`"),
        ({"dense": {"unit": 8}}, "`params`['dense']: Unknown setting `unit`"),
    ],
)
def test_a_block_nodes_params_are_checked(params, expected):
    data = named_block(None)
    data["nodes"][1]["settings"]["params"] = params
    (problem,) = [p for p in check(parse(data)).problems if p.level == "error"]
    assert expected in problem.message and (problem.node, problem.setting) == ("cells", "params")


def test_a_named_layer_is_a_string_in_the_code_and_a_repetition_left_out_takes_the_usual_name():
    hostile = "x'); import os; os.system('touch pwned')  #"
    doc = parse(named_block({"dense": [hostile]}))
    assert not [p for p in check(doc).problems if p.level == "error"]
    code = generate_module(doc)
    assert "import os" not in code.replace(repr(hostile), "")
    names = [layer.name for layer in build_model(doc).layers]
    assert hostile in names and "cells_2_dense" in names


def test_settings_that_differ_become_the_block_nodes_params():
    inputs = keras.Input((12, 12, 3))
    x = inputs
    for filters in (4, 8, 16):  # the same structure, other widths
        x = layers.Conv2D(filters, 3, padding="same", name=f"c{filters}_conv")(x)
        x = layers.BatchNormalization(name=f"c{filters}_bn")(x)
        x = layers.Activation("relu", name=f"c{filters}_relu")(x)
        x = layers.MaxPooling2D(name=f"c{filters}_pool")(x)
    model = keras.Model(inputs, layers.Flatten(name="flat")(x))
    doc = import_keras(model)
    uses = [n.settings for n in doc.nodes if n.component == "Block"]
    assert len(uses) == 3 and len(doc.blocks) == 1  # one definition, of the first use
    (name,) = doc.blocks
    (conv,) = [n for n in doc.blocks[name].nodes if n.component == "Conv2D"]
    assert conv.settings["filters"] == 4
    conv = conv.id
    assert [use.get("params") for use in uses] == [
        None, {conv: {"filters": 8}}, {conv: {"filters": 16}}]  # fmt: skip
    takes_weights_by_name(model, build_model(doc))
    code = generate_module(doc)  # a function per set of params, their values its literals
    assert code.count(f"def {name}_block") == 3 and "16," in code
    back = expanded(doc)
    assert [back.node(f"c{f}_conv").settings["filters"] for f in (4, 8, 16)] == [4, 8, 16]


def test_small_motifs_with_other_settings_stay_flat():
    inputs = keras.Input((6,))
    a = layers.Dense(5, name="a2")(layers.Dense(8, name="a1")(inputs))
    b = layers.Dense(3, name="b2")(layers.Dense(4, name="b1")(a))
    doc = import_keras(keras.Model(inputs, b))
    assert not doc.blocks and len(doc.nodes) == 6


def test_a_graph_without_repeats_comes_back_as_it_is():
    doc = load_json({"nodes": [
        {"id": "x", "component": "Input", "settings": {"shape": [4]}},
        {"id": "d", "component": "Dense", "settings": {"units": 2}},
        {"id": "y", "component": "Output", "settings": {"units": None, "activation": "linear",
                                                      "loss": "mean_squared_error"}}],
        "edges": [{"source": "x", "target": "d"}, {"source": "d", "target": "y"}]})  # fmt: skip
    assert fold_motifs(doc) is doc


def load_json(data: dict) -> GraphDocument:
    from app.graph.document import parse

    return parse(data)


def test_import_keras_folds_unless_flat_is_asked(tmp_path, capsys):
    two_motifs().save(tmp_path / "model.keras")
    code = main(["import-keras", str(tmp_path / "model.keras"), "-o", str(tmp_path / "g.json")])
    assert code == 0 and "8 nodes" in capsys.readouterr().out
    folded = load(tmp_path / "g.json")
    assert len(folded.blocks) == 2
    code = main(["import-keras", str(tmp_path / "model.keras"), "-o", str(tmp_path / "f.json"),
                 "--flat"])  # fmt: skip
    assert code == 0
    flat = json.loads((tmp_path / "f.json").read_text())
    assert "blocks" not in flat or not flat["blocks"]
    assert len(flat["nodes"]) == len(two_motifs().layers) + 1  # and one Output


@pytest.mark.parametrize("repeats", [1, 2])
def test_a_block_is_not_made_of_one_use(repeats):
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 1, name="widen")(inputs)
    for i in range(repeats):
        x = residual(x, f"only{i}")
    doc = import_keras(keras.Model(inputs, x))
    uses = [n.settings["repeat"] for n in doc.nodes if n.component == "Block"]
    assert uses == ([] if repeats == 1 else [2])


def test_a_motif_named_like_another_blocks_layers_gets_an_id_of_its_own():
    # The second use's name, 's1_2_late', reads like the Block node 's1''s layer names
    # ('s1_<repetition>_<inner id>'), and so does every 's1_2_late_<n>'.
    inputs = keras.Input((16, 16, 3))
    x = conv_unit(inputs, "s1")
    x = layers.MaxPooling2D(name="pool")(x)
    x = conv_unit(x, "s1_2_late")
    model = keras.Model(inputs, layers.GlobalAveragePooling2D(name="gap")(x))
    doc = import_keras(model)
    ids = sorted(n.id for n in doc.nodes if n.component == "Block")
    assert ids == ["s1", "s1-2-late"]
    assert analyze(doc).errors == []
    assert build_model(doc).count_params() == model.count_params()


def last_steps(names: dict) -> GraphDocument:
    """A LastStep node 'seq' (it makes 'seq' and 'seq_crop') beside a Block node whose block
    has one too, named by `names`."""
    cell = {"nodes": [{"id": "in", "component": "BlockInput", "settings": {}},
                      {"id": "last", "component": "LastStep", "settings": {}}],
            "edges": [{"source": "in", "target": "last"}], "output": "last"}  # fmt: skip
    nodes = [("x", "Input", {"shape": [5, 3]}), ("seq", "LastStep", {}),
             ("cells", "Block", {"block": "cell", "names": names}),
             ("both", "Concatenate", {}), ("y", "Output", {})]  # fmt: skip
    edges = [("x", "seq", 0), ("x", "cells", 0), ("seq", "both", 0), ("cells", "both", 1),
             ("both", "y", 0)]  # fmt: skip
    return parse({
        "meta": {"name": "last_steps"},
        "nodes": [{"id": i, "component": c, "settings": s} for i, c, s in nodes],
        "edges": [{"source": a, "target": b, "slot": n} for a, b, n in edges],
        "blocks": {"cell": cell},
    })  # fmt: skip


def test_every_layer_a_graph_makes_is_known_to_be_its_nodes_and_no_name_is_made_twice():
    doc = last_steps({"last": ["tail"]})
    owners = layer_owners(doc)
    assert owners["seq_crop"] == "seq" and owners["tail_crop"] == owners["tail"] == "cells"
    assert {layer.name for layer in build_model(doc).layers} <= set(owners)
    def clashes(name: str) -> list[str]:
        errors = [p for p in check(last_steps({"last": [name]})).problems if p.level == "error"]
        assert all((p.node, p.setting) == ("cells", "names") for p in errors)
        return [p.message.split("`names`: ")[1] for p in errors]

    assert clashes("seq_crop") == ["the layer name 'seq_crop' is used twice (node 'seq' makes it "
                                   "too)"]  # fmt: skip
    assert len(clashes("seq")) == 2  # 'seq', and the 'seq_crop' it makes
    # two usual names: a node 'seq_crop' beside the LastStep, or two of a block's nodes
    beside = last_steps({}).model_copy(deep=True)
    beside.node("cells").settings = {"block": "cell"}
    beside.nodes.append(Node(id="seq_crop", component="Dense", settings={"units": 2}))
    beside.edges.append(Edge(source="seq", target="seq_crop"))
    (error,) = [p for p in check(beside).problems if p.level == "error"]
    assert (error.node, error.message) == ("seq_crop", "Node 'seq_crop' (Dense): the layer name "
                                           "'seq_crop' is made twice (node 'seq' makes it too); "
                                           "rename one")  # fmt: skip
    inner = last_steps({}).model_copy(deep=True)
    inner.blocks["cell"].nodes.append(Node(id="last_crop", component="LastStep", settings={}))
    inner.blocks["cell"].edges.append(Edge(source="in", target="last_crop"))
    errors = [p.message for p in check(inner).problems if p.level == "error"]
    assert any("'cells_1_last_crop' is made twice (two of its block's nodes)" in m for m in errors)
