"""Importing Keras models: the imported graph builds the same model, layer by layer."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras  # tests/conftest.py quiets TensorFlow's logs before this import
import pytest
from keras import layers

from app.graph.codegen import generate_module
from app.graph.components import CATALOGUE, ShapeError
from app.graph.document import GraphDocument, check, save
from app.graph.fold import fold_motifs
from app.graph.layout import layered_layout
from app.keras import importer as keras_import
from app.keras import probe
from app.keras.builder import build_model
from app.keras.importer import import_keras, import_keras_file
from tests.graphs import single
from tests.test_fold import takes_weights_by_name

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_keras():
    keras.backend.clear_session()
    yield


def roundtrip(model: keras.Model, source=None, per_layer: bool = True, flat: bool = False):
    """Import (from source, or the model itself), rebuild, and check they are the same model:
    total parameters, input and output shapes in order, and with per_layer each layer's
    parameters by name."""
    doc = import_keras(model if source is None else source, flat=flat)
    return doc, same_model(doc, model, per_layer)


def same_model(doc: GraphDocument, model: keras.Model, per_layer: bool) -> keras.Model:
    """The model built from doc, checked to be `model` (see roundtrip)."""
    errors = [p for p in check(doc).problems if p.level == "error"]
    assert not errors, errors
    rebuilt = build_model(doc)
    assert rebuilt.count_params() == model.count_params()
    assert [tuple(t.shape) for t in rebuilt.inputs] == [tuple(t.shape) for t in model.inputs]
    assert [tuple(t.shape) for t in rebuilt.outputs] == [tuple(t.shape) for t in model.outputs]
    outputs = [n.id for n in doc.nodes if n.component == "Output"]
    assert [tuple(rebuilt.get_layer(o).output.shape) for o in outputs] == [
        tuple(t.shape) for t in model.outputs]  # fmt: skip
    if per_layer:
        counts = {layer.name: layer.count_params() for layer in model.layers}
        assert {name: rebuilt.get_layer(name).count_params() for name in counts} == counts
    return rebuilt


def components(doc: GraphDocument) -> dict[str, str]:
    return {n.id: n.component for n in doc.nodes}


def incoming(doc: GraphDocument, node_id: str) -> list[str]:
    return [e.source for e in sorted(doc.edges, key=lambda e: e.slot) if e.target == node_id]


# Hand-built models


def test_sequential_mlp():
    model = keras.Sequential([
        keras.Input((20,)), layers.Dense(64, activation="relu", name="hidden"),
        layers.Dropout(0.3, name="drop"), layers.Dense(10, activation="softmax", name="probs"),
    ], name="mlp")  # fmt: skip
    doc, _ = roundtrip(model)
    assert doc.meta.name == "mlp"
    (input_node,) = [n for n in doc.nodes if n.component == "Input"]
    assert input_node.settings == {"shape": [20], "dtype": "float32"}
    assert components(doc) == {input_node.id: "Input", "hidden": "Dense", "drop": "Dropout",
                               "probs": "Dense", "probs_output": "Output"}  # fmt: skip
    assert doc.node("hidden").settings == {"units": 64, "activation": "relu", "use_bias": True,
                                           "kernel_initializer": "glorot_uniform",
                                           "bias_initializer": "zeros"}  # fmt: skip
    assert doc.node("drop").settings == {"rate": 0.3}
    assert doc.node("probs_output").settings == {
        "target": "probs",
        "loss": "mean_squared_error",
        "units": None,
        "activation": "linear",
    }
    assert incoming(doc, "hidden") == [input_node.id]


def two_in_two_out() -> keras.Model:
    image = keras.Input((16, 16, 3), name="image")
    extra = keras.Input((5,), name="extra")
    x = layers.Conv2D(8, 3, activation="relu", name="conv")(image)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Concatenate(name="join")([x, extra])
    label = layers.Dense(4, activation="softmax", name="label")(x)
    score = layers.Dense(1, name="score")(x)
    return keras.Model([image, extra], [label, score], name="two_heads")


def test_two_inputs_and_two_outputs_from_a_keras_file(tmp_path):
    model = two_in_two_out()
    model.save(tmp_path / "two.keras")
    doc, rebuilt = roundtrip(model, tmp_path / "two.keras")
    assert doc.node("image").settings == {"shape": [16, 16, 3], "dtype": "float32"}
    assert doc.node("extra").settings == {"shape": [5], "dtype": "float32"}
    assert incoming(doc, "join") == ["pool", "extra"]
    assert [(n.id, n.settings["target"]) for n in doc.nodes if n.component == "Output"] == [
        ("label_output", "label"), ("score_output", "score")]  # fmt: skip
    assert rebuilt.output_names == ["label_output", "score_output"]


def ticket_router(order: str) -> keras.Model:
    """Two inputs and two heads, created in one order and listed in another."""
    text, meta = keras.Input((6,), name="text"), keras.Input((3,), name="meta")
    x = layers.Concatenate(name="join")([text, meta])
    dept = layers.Dense(4, activation="softmax", name="dept")(x)
    priority = layers.Dense(1, name="priority")(x)
    if order == "created":
        return keras.Model([text, meta], [dept, priority], name="router")
    return keras.Model([meta, text], [priority, dept], name="router")


def three_heads() -> keras.Model:
    """Names that sort in neither the creation nor the listed order, one output an input's
    transform and one a nested model's."""
    zeta, alpha = keras.Input((4,), name="zeta"), keras.Input((2,), name="alpha")
    inner = keras.Sequential([keras.Input((6,)), layers.Dense(5, name="inner_dense")],
                             name="inner")  # fmt: skip
    joined = layers.Concatenate(name="mid")([zeta, alpha])
    outputs = [layers.Dense(3, name="m_head")(joined), inner(joined),
               layers.Dense(2, name="a_head")(alpha)]  # fmt: skip
    return keras.Model([zeta, alpha], outputs, name="three")


@pytest.mark.parametrize(
    "make",
    [lambda: ticket_router("created"), lambda: ticket_router("listed"), three_heads,
     two_in_two_out],
    ids=["created-order", "listed-order", "three-heads", "two-in-two-out"],
)  # fmt: skip
def test_inputs_and_outputs_keep_the_models_order(make):
    model = make()
    doc, rebuilt = roundtrip(model, per_layer=False)
    assert [t.name for t in rebuilt.inputs] == [t.name for t in model.inputs]
    targets = [n.settings["target"] for n in doc.nodes if n.component == "Output"]
    assert targets == [t._keras_history.operation.name for t in model.outputs]
    listed = generate_module(doc).split("return keras.Model(", 1)[1]
    expected = "inputs=[{}], outputs=[{}]".format(
        ", ".join(t.name for t in model.inputs), ", ".join(f"{t}_output" for t in targets)
    )
    assert listed.startswith(expected)


def test_import_keras_file_reads_a_path_given_as_text(tmp_path):
    two_in_two_out().save(tmp_path / "two.keras")
    assert import_keras_file(str(tmp_path / "two.keras")).meta.name == "two_heads"


def residual() -> keras.Model:
    inputs = keras.Input((8, 8, 16), name="x")
    y = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv_a")(inputs)
    y = layers.BatchNormalization(name="bn_a")(y)
    y = layers.Activation("relu", name="relu_a")(y)
    y = layers.Conv2D(16, 3, padding="same", name="conv_b")(y)
    y = layers.Add(name="sum")([y, inputs])
    y = layers.Flatten(name="flat")(y)
    return keras.Model(inputs, layers.Dense(3, name="head")(y), name="residual")


def test_residual_add_from_an_h5_file(tmp_path):
    model = residual()
    model.save(tmp_path / "residual.h5")
    doc, _ = roundtrip(model, tmp_path / "residual.h5")
    assert incoming(doc, "sum") == ["conv_b", "x"]
    assert components(doc)["conv_a"] == "Conv2D"
    assert components(doc)["bn_a"] == "BatchNormalization"
    assert doc.node("conv_a").settings == {
        "filters": 16, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
        "dilation_rate": [1, 1], "activation": "linear", "use_bias": False,
        "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}  # fmt: skip


def test_dense_concatenation_from_a_json_file(tmp_path):
    inputs = keras.Input((8, 8, 4), name="x")
    features = [inputs]
    for i in range(3):  # each layer sees every earlier feature map, as in DenseNet
        joined = features[0] if len(features) == 1 else layers.Concatenate(
            name=f"cat{i}")(features)  # fmt: skip
        features.append(layers.Conv2D(4, 3, padding="same", name=f"conv{i}")(joined))
    model = keras.Model(inputs, layers.Concatenate(name="all")(features), name="dense")
    (tmp_path / "dense.json").write_text(model.to_json())
    doc, _ = roundtrip(model, tmp_path / "dense.json")
    assert incoming(doc, "all") == ["x", "conv0", "conv1", "conv2"]
    assert components(doc)["cat2"] == "Concatenate"


def test_nested_models_are_flattened_into_the_outer_graph():
    inner = keras.Sequential([keras.Input((6,)), layers.Dense(8, name="inner_a"),
                              layers.Dense(4, name="inner_b")], name="inner")  # fmt: skip
    left, right = keras.Input((3,), name="left"), keras.Input((3,), name="right")
    merged = layers.Concatenate(name="merged")([left, right])
    branch = keras.Model([left, right], [merged, layers.Dense(2, name="side")(right)],
                         name="branch")  # fmt: skip
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    joined, side = branch([a, b])
    out = layers.Add(name="sum")([inner(joined), layers.Dense(4, name="widen")(side)])
    model = keras.Model([a, b], out, name="outer")
    doc, _ = roundtrip(model, per_layer=False)
    assert "inner" not in components(doc) and "branch" not in components(doc)
    assert not any(n.id.startswith(("left", "right", "input")) for n in doc.nodes)
    assert incoming(doc, "merged") == ["a", "b"]
    assert incoming(doc, "side") == ["b"]
    assert incoming(doc, "inner_a") == ["merged"]
    assert incoming(doc, "sum") == ["inner_b", "widen"]


def test_layer_without_a_component_is_kept_as_a_keras_layer():
    inputs = keras.Input((10,))
    noisy = layers.GaussianNoise(0.25, seed=3, name="noise")(inputs)
    model = keras.Model(inputs, layers.Dense(2, name="head")(noisy))
    doc, rebuilt = roundtrip(model)
    node = doc.node("noise")
    assert node.component == "KerasLayer"
    assert node.settings["class_name"] == "GaussianNoise"
    assert "name" not in node.settings["config"]
    assert node.settings["config"]["stddev"] == 0.25
    assert rebuilt.get_layer("noise").get_config()["seed"] == 3


def test_initializers_without_arguments_are_settings_of_the_component():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, kernel_initializer="he_normal", name="he_conv")(inputs)
    x = layers.Flatten()(x)
    x = layers.Dense(3, kernel_initializer="lecun_normal", bias_initializer="ones", name="d")(x)
    doc, rebuilt = roundtrip(keras.Model(inputs, x))
    assert components(doc)["he_conv"] == "Conv2D" and components(doc)["d"] == "Dense"
    assert doc.node("he_conv").settings["kernel_initializer"] == "he_normal"
    assert doc.node("d").settings["bias_initializer"] == "ones"
    conv, dense = rebuilt.get_layer("he_conv").get_config(), rebuilt.get_layer("d").get_config()
    assert conv["kernel_initializer"]["class_name"] == "HeNormal"
    assert dense["bias_initializer"]["class_name"] == "Ones"


def test_config_beyond_the_component_settings_falls_back_to_keras_layer():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, kernel_initializer=keras.initializers.HeNormal(seed=3),
                      name="he_conv")(inputs)  # fmt: skip
    x = layers.Conv2D(4, 3, name="plain_conv")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(3, kernel_regularizer="l2", name="regularized")(x)
    doc, rebuilt = roundtrip(keras.Model(inputs, x))
    assert components(doc)["he_conv"] == "KerasLayer"
    assert components(doc)["plain_conv"] == "Conv2D"
    assert components(doc)["regularized"] == "KerasLayer"
    config = rebuilt.get_layer("he_conv").get_config()
    assert config["kernel_initializer"]["config"]["seed"] == 3


def test_even_and_uneven_padding_and_cropping_are_components():
    inputs = keras.Input((8, 8, 3))
    x = layers.ZeroPadding2D(((0, 1), (0, 1)), name="uneven_pad")(inputs)
    x = layers.ZeroPadding2D(((1, 1), (2, 2)), name="even_pad")(x)
    x = layers.Cropping2D(((1, 0), (1, 0)), name="uneven_crop")(x)
    x = layers.Cropping2D(2, name="even_crop")(x)
    doc, _ = roundtrip(keras.Model(inputs, x))
    assert doc.node("uneven_pad").settings == {"padding": [[0, 1], [0, 1]]}
    assert doc.node("even_pad").settings == {"padding": [1, 2]}
    assert doc.node("uneven_crop").settings == {"cropping": [[1, 0], [1, 0]]}
    assert doc.node("even_crop").settings == {"cropping": [2, 2]}


def test_lstm_text_model_with_a_masking_embedding():
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = layers.Embedding(1000, 16, mask_zero=True, name="embed")(tokens)
    x = layers.LSTM(32, return_sequences=True, name="lstm")(x)
    x = layers.Bidirectional(layers.GRU(8), name="bigru")(x)
    model = keras.Model(tokens, layers.Dense(1, activation="sigmoid", name="prob")(x))
    doc, _ = roundtrip(model)
    assert doc.node("tokens").settings == {"shape": [None], "dtype": "int32"}
    assert components(doc) == {
        "tokens": "Input",
        "embed": "Embedding",
        "lstm": "LSTM",
        "bigru": "Bidirectional",
        "prob": "Dense",
        "prob_output": "Output",
    }  # the mask computation is not a node
    assert doc.node("embed").settings == {"input_dim": 1000, "output_dim": 16, "mask_zero": True}
    assert doc.node("bigru").settings == {"layer": "GRU", "units": 8, "return_sequences": False,
                                          "unroll": False, "merge_mode": "concat"}  # fmt: skip


def test_an_unrolled_lstm_is_an_lstm_node_that_needs_a_known_number_of_steps():
    steps = keras.Input((12, 3), name="steps")
    model = keras.Model(steps, layers.LSTM(4, unroll=True, name="lstm")(steps))
    doc, _ = roundtrip(model)
    assert components(doc)["lstm"] == "LSTM" and doc.node("lstm").settings["unroll"] is True
    lstm = CATALOGUE["LSTM"]
    settings = lstm.resolve({"units": 4, "unroll": True})[0]
    with pytest.raises(ShapeError, match="number of time steps"):
        lstm.infer(settings, [(None, None, 3)])


def test_operations_in_functional_code_become_custom_nodes():
    inputs = keras.Input((4, 4, 3), name="x")
    gate = layers.ReLU(6.0, name="relu6")(inputs + 3.0) * (1.0 / 6.0)  # a hard sigmoid
    pooled = keras.ops.mean(gate, axis=(1, 2), keepdims=True)
    flat = keras.ops.reshape(pooled, (-1, 3))
    model = keras.Model(inputs, keras.ops.concatenate([flat, flat[:, :2]], axis=-1))
    doc, _ = roundtrip(model)
    code = {n.id: n.code for n in doc.nodes if n.component == "Custom"}
    assert code["add"] == "return keras.ops.add(inputs[0], 3.0)\n"
    assert code["mean"] == "return keras.ops.mean(inputs[0], axis=(1, 2), keepdims=True)\n"
    assert code["get_item"] == (
        "return keras.ops.get_item(inputs[0], (slice(None, None, None), slice(None, 2, None)))\n"
    )
    assert incoming(doc, "concatenate") == ["reshape", "get_item"]
    assert incoming(doc, "relu6") == ["add"]


def test_broadcasting_multiply_of_a_squeeze_and_excite_block():
    inputs = keras.Input((8, 8, 16))
    scale = layers.GlobalAveragePooling2D(keepdims=True)(inputs)
    scale = layers.Conv2D(16, 1, activation="sigmoid")(scale)
    roundtrip(keras.Model(inputs, layers.Multiply(name="excite")([inputs, scale])))


def test_a_shape_rule_that_disagrees_with_keras_leaves_the_layer_generic(monkeypatch, caplog):
    dense = CATALOGUE["Dense"]

    def one_too_many(settings, shapes):
        info = dense.infer(settings, shapes)
        return dataclasses.replace(info, trainable=info.trainable + 1)

    monkeypatch.setitem(keras_import.COMPONENTS_BY_CLASS, "Dense",
                        [dataclasses.replace(dense, infer=one_too_many)])  # fmt: skip
    inputs = keras.Input((4,))
    model = keras.Model(inputs, layers.Dense(2, name="head")(inputs))
    with caplog.at_level(logging.WARNING, logger="app.keras.importer"):
        doc, _ = roundtrip(model)
    assert doc.node("head").component == "KerasLayer"
    assert "Dense 'head': the Dense shape rule disagrees with Keras" in caplog.text


# Every component is recognized when Keras' config matches: the layer its template builds
# imports back as that component.

INPUT_SHAPES = {
    "Dense": [6], "Activation": [6], "Dropout": [6], "SpatialDropout2D": [8, 8, 3],
    "Flatten": [4, 3], "Reshape": [4, 3], "Permute": [4, 3], "BatchNormalization": [8, 8, 3],
    "LayerNormalization": [6], "Embedding": [5], "Conv1D": [8, 3], "Conv2D": [8, 8, 3],
    "Conv3D": [6, 6, 6, 2], "Conv2DTranspose": [8, 8, 3], "SeparableConv2D": [8, 8, 3],
    "DepthwiseConv2D": [8, 8, 3], "MaxPooling1D": [8, 3], "AveragePooling1D": [8, 3],
    "MaxPooling2D": [8, 8, 3], "AveragePooling2D": [8, 8, 3], "GlobalMaxPooling1D": [8, 3],
    "GlobalAveragePooling1D": [8, 3], "GlobalMaxPooling2D": [8, 8, 3],
    "GlobalAveragePooling2D": [8, 8, 3], "UpSampling2D": [8, 8, 3], "ZeroPadding2D": [8, 8, 3],
    "Cropping2D": [8, 8, 3], "SimpleRNN": [5, 4], "GRU": [5, 4], "LSTM": [5, 4],
    "Bidirectional": [5, 4], "MultiHeadAttention": [5, 4], "Add": [6], "Subtract": [6],
    "Multiply": [6], "Average": [6], "Concatenate": [6], "Rescaling": [6],
    "Normalization": [6], "Resizing": [8, 8, 3], "RandomFlip": [8, 8, 3],
    "RandomRotation": [8, 8, 3], "RandomZoom": [8, 8, 3],
}  # fmt: skip


def test_every_layer_component_is_tried():
    with_class = {c.name for c in CATALOGUE.values() if c.keras_class and c.name != "Input"}
    assert with_class == set(INPUT_SHAPES)


@pytest.mark.parametrize("component", sorted(INPUT_SHAPES))
def test_the_layer_a_component_builds_imports_back_as_that_component(component):
    low = CATALOGUE[component].inputs[0]
    shapes = [INPUT_SHAPES[component]] * max(low, 1)
    graph = single(component, {}, shapes, "int32" if component == "Embedding" else "float32")
    model = build_model(graph)
    doc, _ = roundtrip(model)
    assert doc.node("under_test").component == component


# Keras applications (random weights: nothing is downloaded)

APPLICATIONS = [
    ("MobileNetV2", (96, 96, 3), {"Conv2D", "DepthwiseConv2D", "BatchNormalization", "Add",
                                  "Dense"}),
    ("ResNet50", (64, 64, 3), {"Conv2D", "BatchNormalization", "Activation", "Add",
                               "MaxPooling2D", "Dense"}),
    ("DenseNet121", (64, 64, 3), {"Conv2D", "BatchNormalization", "Concatenate",
                                  "AveragePooling2D", "Dense"}),
    ("NASNetMobile", (96, 96, 3), {"SeparableConv2D", "BatchNormalization", "Add",
                                   "Concatenate", "Dense", "ZeroPadding2D", "Cropping2D"}),
    # Its hard sigmoids are written with operations (x + 3.0), imported as Custom nodes.
    ("MobileNetV3Small", (64, 64, 3), {"Conv2D", "DepthwiseConv2D", "BatchNormalization",
                                       "Add", "Rescaling"}),
    ("EfficientNetB0", (64, 64, 3), {"BatchNormalization", "Multiply", "Add"}),
]  # fmt: skip
FOLDED_AT_LEAST_FIVEFOLD = {"MobileNetV2", "ResNet50", "DenseNet121", "NASNetMobile",
                            "EfficientNetB0"}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("name", "shape", "first_class"), APPLICATIONS,
                         ids=[a[0] for a in APPLICATIONS])  # fmt: skip
def test_keras_application_round_trips_flat_and_folded(name, shape, first_class):
    model = getattr(keras.applications, name)(weights=None, input_shape=shape)
    flat, _ = roundtrip(model, flat=True)
    found = components(flat)
    for layer in model.layers:
        if type(layer).__name__ in first_class:
            assert found[layer.name] == type(layer).__name__, layer.name
    assert_edges_go_down(flat)
    folded = layered_layout(fold_motifs(flat))  # as import_keras folds
    takes_weights_by_name(model, same_model(folded, model, per_layer=True))
    if name in FOLDED_AT_LEAST_FIVEFOLD:
        assert len(folded.nodes) * 5 <= len(flat.nodes), (len(folded.nodes), len(flat.nodes))
    assert_edges_go_down(folded)


@pytest.mark.slow
def test_convnext_imports_with_its_layer_scales():
    model = keras.applications.ConvNeXtTiny(weights=None)
    doc, _ = roundtrip(model, per_layer=False, flat=True)  # its stem is a nested Sequential
    scales = [n for n in doc.nodes if n.settings.get("class_name") == "LayerScale"]
    assert len(scales) == 18 and all(n.component == "KerasLayer" for n in scales)


@pytest.mark.slow
def test_an_imported_nasnet_needs_no_tensorflow_for_its_shapes(tmp_path):
    model = keras.applications.NASNetMobile(weights=None, input_shape=(96, 96, 3))
    save(import_keras(model), tmp_path / "nasnet.json")
    script = textwrap.dedent("""
        import json, sys
        sys.modules.update(tensorflow=None, keras=None)  # importing either now fails
        from app.graph.analysis import analyze
        from app.graph.document import load
        from app.graph.shapes import needs_keras

        doc = load(sys.argv[1])
        analysis = analyze(doc)
        (output,) = [n.id for n in doc.nodes if n.component == "Output"]
        print(json.dumps({"needs_keras": needs_keras(doc),
                          "errors": [p.message for p in analysis.errors],
                          "params": analysis.totals()["params"],
                          "shape": analysis.infos[output].shape}))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "nasnet.json")],
                          cwd=REPOSITORY, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"needs_keras": False, "errors": [], "params": model.count_params(),
                      "shape": list(model.output.shape)}  # fmt: skip


def test_keras_application_from_a_keras_file(tmp_path):
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35)
    model.save(tmp_path / "mobilenet.keras")
    doc, _ = roundtrip(model, tmp_path / "mobilenet.keras", per_layer=False)
    assert doc.blocks and any(n.component == "Block" for n in doc.nodes)  # folded by default


def assert_edges_go_down(doc: GraphDocument) -> None:
    y = {n.id: n.position.y for n in doc.nodes}
    assert all(y[e.target] > y[e.source] for e in doc.edges)


def test_imported_graph_is_laid_out():
    doc = import_keras(residual())
    assert_edges_go_down(doc)
    assert len({(n.position.x, n.position.y) for n in doc.nodes}) == len(doc.nodes)


# Names


def test_names_that_are_not_ids_are_sanitized_and_kept_unique():
    inner = keras.Sequential([keras.Input((4,)), layers.Dense(4, name="shared_name")],
                             name="inner")  # fmt: skip
    inputs = keras.Input((4,), name="input")
    x = layers.Dense(4, name="1st dense")(inputs)
    x = layers.Dense(4, name="shared_name")(inner(x))
    doc, _ = roundtrip(keras.Model(inputs, x), per_layer=False)
    ids = [n.id for n in doc.nodes]
    assert len(set(ids)) == len(ids)
    assert "_1st_dense" in ids and doc.node("_1st_dense").label == "1st dense"
    assert {"shared_name", "shared_name_2"} <= set(ids)


# Errors


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.keras: no such file$"):
        import_keras(tmp_path / "missing.keras")


def test_unsupported_extension(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"\x00")
    with pytest.raises(ValueError, match=r"model\.pt: cannot import a \.pt file"):
        import_keras(tmp_path / "model.pt")


@pytest.mark.parametrize("name", ["broken.keras", "broken.h5", "broken.json"])
def test_corrupt_file(tmp_path, name):
    (tmp_path / name).write_text("{ not a model")
    with pytest.raises(ValueError) as caught:
        import_keras(tmp_path / name)
    message = str(caught.value)
    assert message.startswith(str(tmp_path / name) + ": ")
    assert "\n" not in message


def test_json_that_is_not_a_model(tmp_path):
    (tmp_path / "graph.json").write_text('{"nodes": []}')
    with pytest.raises(ValueError, match=r"graph\.json: cannot read a Keras model"):
        import_keras(tmp_path / "graph.json")


def test_shared_layer_is_refused_by_name():
    shared = layers.Dense(3, name="twice")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layers.Add()([shared(inputs), shared(inputs)]))
    with pytest.raises(ValueError, match="Layer 'twice' .* called more than once"):
        import_keras(model)


def test_layer_with_several_outputs_is_refused():
    inputs = keras.Input((5, 3))
    sequence, _, _ = layers.LSTM(4, return_state=True, name="states")(inputs)
    with pytest.raises(ValueError, match="Layer 'states' .* returns 3 tensors"):
        import_keras(keras.Model(inputs, sequence))


def test_tensor_keyword_arguments_are_refused():
    query, key = keras.Input((5, 4)), keras.Input((5, 4))
    attention = layers.MultiHeadAttention(2, 4, name="attend")(query, query, key=key)
    with pytest.raises(ValueError, match=r"Layer 'attend' .*keyword arguments \(`key`\)"):
        import_keras(keras.Model([query, key], attention))


class Twice(layers.Layer):
    def call(self, x):
        return 2 * x


def test_a_layer_class_of_ones_own_is_refused_in_one_line():
    inputs = keras.Input((3,))
    pattern = (r"^Layer 'doubler' is a .*\.Twice, a class of your own that Keras cannot "
               r"rebuild .*rewrite it with keras\.layers")  # fmt: skip
    with pytest.raises(ValueError, match=pattern) as caught:
        import_keras(keras.Model(inputs, Twice(name="doubler")(inputs)))
    assert "\n" not in str(caught.value)


def test_a_lambda_layer_is_refused_since_keras_runs_no_lambda_in_safe_mode():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layers.Lambda(lambda x: 2 * x, name="twice")(inputs))
    pattern = (
        r"^Layer 'twice' is a .*\.Lambda, which Keras does not rebuild from its config "
        r"\(rewrite it as a Custom node\): Requested the deserialization of a `Lambda`"
    )
    with pytest.raises(ValueError, match=pattern):
        import_keras(model)


def test_a_file_with_a_layer_class_of_ones_own_is_refused_in_one_line(tmp_path):
    inputs = keras.Input((3,))
    keras.Model(inputs, Twice(name="doubler")(inputs)).save(tmp_path / "twice.keras")
    with pytest.raises(ValueError) as caught:
        import_keras(tmp_path / "twice.keras")
    assert str(caught.value) == (
        f"{tmp_path / 'twice.keras'}: cannot read a Keras model from it: layer 'doubler' is a "
        f"Twice, {keras_import.NOT_REBUILT}"
    )


def test_a_layer_keras_defines_outside_keras_layers_is_a_keras_layer_node():
    from keras.src.applications.convnext import LayerScale

    inputs = keras.Input((5, 4))
    scaled = LayerScale(0.5, 4, name="scale")(inputs)
    doc, rebuilt = roundtrip(keras.Model(inputs, layers.Flatten(name="flat")(scaled)))
    node = doc.node("scale")
    assert node.component == "KerasLayer"
    assert node.settings["module"] == "keras.src.applications.convnext"
    assert node.settings["class_name"] == node.settings["registered_name"] == "LayerScale"
    assert node.settings["config"]["init_values"] == 0.5
    assert "keras.saving.deserialize_keras_object({" in generate_module(doc)
    assert type(rebuilt.get_layer("scale")) is LayerScale


def test_a_keras_layer_node_is_rebuilt_by_keras_in_safe_mode_only():
    settings = {"module": "os", "class_name": "System", "registered_name": None, "config": {},
                "call": "list"}  # fmt: skip
    with pytest.raises(ShapeError, match="Keras cannot rebuild os.System"):
        probe.layer_info(settings, [(None, 3)])


def test_import_keras_prints_nothing_of_tensorflows_start_up(tmp_path):
    inputs = keras.Input((3,))
    keras.Model(inputs, layers.Dense(2, name="head")(inputs)).save(tmp_path / "small.keras")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TF_", "LAYERFLOW_DEBUG"))}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "import-keras", str(tmp_path / "small.keras"),
         "-o", str(tmp_path / "small.json")],
        cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith(f"wrote {tmp_path / 'small.json'}: 3 nodes")


def test_unbuilt_sequential_is_refused():
    with pytest.raises(ValueError, match="Model 'lazy' is not built"):
        import_keras(keras.Sequential([layers.Dense(2)], name="lazy"))
