"""Generated code: readable, ruff-clean, the same model as the builder, and never injectable."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys

import pytest

from app.graph.analysis import analyze
from app.graph.codegen import (
    CodegenError,
    comment,
    environment,
    generate_module,
    node_snippet,
    variable_name,
)
from app.graph.document import parse
from app.graph.problems import GraphError
from app.keras.builder import build_model
from tests.graphs import chain, chain_data

CNN = (
    ("image", "Input", {"shape": [12, 12, 1]}),
    ("conv", "Conv2D", {"filters": 4}),
    ("pool", "GlobalAveragePooling2D", {}),
    ("out", "Output", {"units": 3}),
)

PAYLOADS = [
    "x'); __import__('os').system('touch /tmp/pwned'); ('",
    'x"""\n__import__("os").system("touch /tmp/pwned")\n"""',
    "x\n__import__('os').system('touch /tmp/pwned')",
    "x\r\n# -*- coding: utf-7 -*-\r\n",
    "x\\",
    "x\u2028__import__('os').system('touch /tmp/pwned')",
]


def write_module(tmp_path, source: str, name: str = "generated_model"):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


def test_module_has_one_statement_per_node_commented_with_its_label():
    data = chain_data(*CNN)
    data["nodes"][1]["label"] = "Edge detector"
    source = generate_module(parse(data))
    assert "    # Edge detector (Conv2D)\n    edge_detector = layers.Conv2D(" in source
    assert "def build_model() -> keras.Model:" in source
    tree = ast.parse(source)
    build = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    assert len(build.body) == 1 + len(CNN) + 1  # docstring, one per node, return


INITIALIZED = (
    ("image", "Input", {"shape": [12, 12, 1]}),
    ("conv", "Conv2D", {"filters": 4, "kernel_initializer": "he_normal"}),
    ("flat", "Flatten", {}),
    ("a_rather_long_dense_layer_name", "Dense",
     {"kernel_initializer": "truncated_normal", "bias_initializer": "random_uniform"}),
    ("out", "Output", {"units": 3}),
)  # fmt: skip


GENERIC = (
    ("image", "Input", {"shape": [12, 12, 4]}),
    ("pad", "ZeroPadding2D", {"padding": [[0, 1], [0, 1]]}),
    ("scale", "KerasLayer", {"module": "keras.src.applications.convnext",
                             "class_name": "LayerScale", "registered_name": "LayerScale",
                             "config": {"init_values": 0.1, "projection_dim": 4}}),
    ("flat", "Flatten", {}),
    ("out", "Output", {"units": 3}),
)  # fmt: skip


@pytest.mark.parametrize("nodes", [CNN, INITIALIZED, GENERIC],
                         ids=["cnn", "initializers", "keras-serialized"])  # fmt: skip
def test_generated_module_is_ruff_clean(tmp_path, nodes):
    path = tmp_path / "model.py"
    path.write_text(generate_module(chain(*nodes)))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--isolated",
            "--select",
            "E,F,W,I",
            "--line-length",
            "120",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout


def test_written_module_and_builder_give_the_same_model(tmp_path):
    doc = chain(*CNN)
    _, module = write_module(tmp_path, generate_module(doc))
    from_file = module.build_model()
    from_builder = build_model(doc)
    assert [layer.name for layer in from_file.layers] == [
        layer.name for layer in from_builder.layers
    ]
    assert (
        from_file.count_params() == from_builder.count_params() == analyze(doc).totals()["params"]
    )
    assert [type(layer) for layer in from_file.layers] == [type(x) for x in from_builder.layers]


def test_a_layer_outside_keras_layers_is_deserialized_by_keras():
    source = generate_module(chain(*GENERIC))
    assert "keras.saving.deserialize_keras_object({" in source
    assert "layers.ZeroPadding2D(((0, 1), (0, 1)), name='pad')" in source
    model = build_model(chain(*GENERIC))
    assert type(model.get_layer("scale")).__name__ == "LayerScale"
    assert model.get_layer("flat").output.shape == (None, 13 * 13 * 4)


def test_several_inputs_and_outputs_are_listed_in_the_graphs_order():
    doc = parse({
        "nodes": [
            {"id": "zeta", "component": "Input", "settings": {"shape": [4]}},
            {"id": "alpha", "component": "Input", "settings": {"shape": [2]}},
            {"id": "join", "component": "Concatenate"},
            {"id": "z_out", "component": "Output", "settings": {"units": 3}},
            {"id": "a_out", "component": "Output", "settings": {"units": 1}},
        ],
        "edges": [{"source": "zeta", "target": "join", "slot": 0},
                  {"source": "alpha", "target": "join", "slot": 1},
                  {"source": "join", "target": "z_out"}, {"source": "join", "target": "a_out"}],
    })  # fmt: skip
    assert "inputs=[zeta, alpha], outputs=[z_out, a_out]" in generate_module(doc)
    model = build_model(doc)
    assert [t.name for t in model.inputs] == ["zeta", "alpha"]
    assert model.output_names == ["z_out", "a_out"]
    assert [tuple(t.shape) for t in model.outputs] == [(None, 3), (None, 1)]


def test_layers_are_named_with_node_ids():
    model = build_model(chain(*CNN))
    assert [layer.name for layer in model.layers] == [n[0] for n in CNN]


def test_node_snippet_is_that_nodes_statement():
    snippet = node_snippet(chain(*CNN), "pool")
    assert snippet == (
        "# GlobalAveragePooling2D\n"
        "pool = layers.GlobalAveragePooling2D(keepdims=False, name='pool')(conv)\n"
    )


def test_a_graph_with_errors_is_not_generated():
    with pytest.raises(GraphError):
        generate_module(chain(("x", "Input", {"shape": [4]}), ("y", "Output", {"units": 0})))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_text_field_can_inject_code(tmp_path, payload):
    marker = tmp_path / "pwned"
    payload = payload.replace("/tmp/pwned", str(marker))
    data = chain_data(
        ("image", "Input", {"shape": [4]}),
        ("h", "Dense", {"units": 2}),
        (
            "out",
            "Output",
            {"units": 1, "target": payload, "activation": "sigmoid", "loss": "binary_crossentropy"},
        ),
        name=payload,
    )
    data["meta"]["description"] = payload
    for node in data["nodes"]:
        node["label"] = payload
    data["nodes"].insert(
        2,
        {
            "id": "k",
            "component": "KerasLayer",
            "label": payload,
            "settings": {"class_name": "Identity", "config": {"payload": payload}},
        },
    )
    data["nodes"].insert(
        3, {"id": "b", "component": "Block", "label": payload, "settings": {"block": "cell"}}
    )
    data["blocks"] = {
        "cell": {
            "description": payload,
            "output": "d",
            "nodes": [
                {"id": "i", "component": "BlockInput", "label": payload},
                {"id": "d", "component": "Dense", "label": payload},
            ],
            "edges": [{"source": "i", "target": "d"}],
        }
    }
    data["edges"] = [
        {"source": "image", "target": "h"},
        {"source": "h", "target": "k"},
        {"source": "k", "target": "b"},
        {"source": "b", "target": "out"},
    ]
    doc = parse(data)
    source = generate_module(analyze(doc), require_valid=False)
    tree = ast.parse(source)
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert "system" not in calls
    assert not any(
        isinstance(n, ast.Call) and getattr(n.func, "id", "") == "__import__"
        for n in ast.walk(tree)
    )
    write_module(tmp_path, source)  # importing runs the module's top level
    assert not marker.exists()
    assert source.splitlines()[0].startswith("# Generated by LayerFlow.")


def test_identifiers_from_the_graph_are_checked():
    doc = chain(
        ("x", "Input", {"shape": [4]}),
        ("k", "KerasLayer", {"class_name": "Dense(1)(x); import os; Dense", "config": {}}),
        ("y", "Output", {}),
    )
    (error,) = analyze(doc).errors
    assert error.setting == "class_name" and error.node == "k"
    with pytest.raises(GraphError):
        generate_module(analyze(doc), require_valid=False)


def test_templates_refuse_unfiltered_text():
    with pytest.raises(CodegenError, match="without a py, ident, comment or docstring filter"):
        environment().from_string("{{ value }}").render(value="raw text")
    assert environment().from_string("{{ value|py }}").render(value="it's") == '"it\'s"'


def test_custom_code_cannot_escape_its_function():
    data = chain_data(("x", "Input", {"shape": [4]}), ("c", "Custom", {}), ("y", "Output", {}))
    data["nodes"][1]["code"] = "return inputs[0]\n'''"
    errors = [p.message for p in analyze(parse(data)).errors]
    assert errors == [
        "Node 'c' (Custom): code line 2: unterminated triple-quoted string literal "
        "(detected at line 3)"
    ]


def test_custom_code_becomes_a_named_function():
    data = chain_data(
        ("x", "Input", {"shape": [4]}), ("c", "Custom", {}), ("y", "Output", {"units": 2})
    )
    data["nodes"][1]["code"] = "x = inputs[0]\nreturn keras.ops.relu(x) * 2"
    source = generate_module(parse(data))
    assert "    def c_fn(inputs):\n        x = inputs[0]\n" in source
    assert "c = layers.Identity(name='c')(c_fn([x]))" in source


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("First conv", "first_conv"),
        ("3x3 conv", "n_3x3_conv"),
        ("class", "class_"),
        ("layers", "layers_"),
        ("", "node"),
        ("héllo wörld!", "h_llo_w_rld"),
    ],
)
def test_variable_names_are_derived_from_labels(label, expected):
    assert variable_name(label, set()) == expected


def test_variable_names_are_unique():
    taken: set[str] = set()
    assert [variable_name("conv", taken) for _ in range(3)] == ["conv", "conv_2", "conv_3"]


def test_comment_is_one_printable_line():
    assert comment("a\nb\r\x00c\u2028d") == "a b  c d"
