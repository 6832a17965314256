"""Shapes that Keras itself supplies: the generic KerasLayer component and a node's custom code,
in this process once Keras is loaded, and in a child process when it is not."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from app.graph.analysis import Analysis, analyze
from app.graph.document import GraphDocument, parse
from app.workspace import Workspace
from tests.graphs import single, trusted

REPOSITORY = Path(__file__).resolve().parent.parent
FEATURES = 6


@pytest.fixture(scope="module", autouse=True)
def keras_loaded() -> None:
    """With Keras imported, the analysis probes in this process rather than one child per test."""
    import keras  # noqa: F401


def keras_layer(class_name: str, config: dict[str, Any]) -> Analysis:
    return analyze(single("KerasLayer", {"class_name": class_name, "config": config},
                          [[FEATURES]]))  # fmt: skip


def custom(code: str, trust: bool = True, output_shape: list | None = None) -> GraphDocument:
    """Input(FEATURES) -> Custom node 'mine' with `code` -> Output without head; the code
    trusted in the test's workspace unless `trust` is False."""
    doc = parse({
        "schema_version": 1,
        "nodes": [
            {"id": "in", "component": "Input", "settings": {"shape": [FEATURES]}},
            {"id": "mine", "component": "Custom", "code": code,
             "settings": {"output_shape": output_shape}},
            {"id": "out", "component": "Output",
             "settings": {"units": None, "activation": "linear", "loss": "mean_squared_error"}},
        ],
        "edges": [{"source": "in", "target": "mine"}, {"source": "mine", "target": "out"}],
    })  # fmt: skip
    return trusted(doc) if trust else doc


def errors_on(analysis: Analysis, node_id: str) -> list[str]:
    return [p.message for p in analysis.errors if p.node == node_id]


# KerasLayer


def test_keras_layer_takes_the_shape_keras_gives():
    analysis = keras_layer("GaussianNoise", {"stddev": 0.1})
    assert analysis.ok, [p.message for p in analysis.errors]
    assert analysis.infos["under_test"].shape == (None, FEATURES)
    assert analysis.infos["under_test"].params == 0


def test_keras_layer_counts_the_parameters_keras_creates():
    analysis = keras_layer("Dense", {"units": 3})
    assert analysis.infos["under_test"].shape == (None, 3)
    assert analysis.infos["under_test"].trainable == FEATURES * 3 + 3


def test_unknown_keras_class_is_a_shape_error_naming_it():
    analysis = keras_layer("NoSuchLayer", {})
    messages = errors_on(analysis, "under_test")
    assert len(messages) == 1
    assert "NoSuchLayer" in messages[0]
    assert "under_test" not in analysis.infos


def test_config_keras_refuses_is_an_error_on_the_node():
    messages = errors_on(keras_layer("Dense", {"unitz": 3}), "under_test")
    assert len(messages) == 1
    assert "Dense" in messages[0]


# Custom code


def test_custom_code_takes_its_shape_and_parameters_from_keras():
    analysis = analyze(custom("x = inputs[0]\nreturn layers.Dense(4)(x)"))
    assert analysis.ok, [p.message for p in analysis.errors]
    assert analysis.infos["mine"].shape == (None, 4)
    assert analysis.infos["mine"].trainable == FEATURES * 4 + 4
    assert analysis.infos["out"].shape == (None, 4)


@pytest.mark.parametrize(("code", "line"), [
    ("x = inputs[0]\ny = = x\nreturn y", 2),
    ("x = inputs[0]\ny = x\nreturn y +", 3),
    ("x = inputs[0]\n    return x", 2),
])  # fmt: skip
def test_syntax_error_in_custom_code_names_the_line_of_the_users_code(code, line):
    analysis = analyze(custom(code))
    problems = [p for p in analysis.errors if p.node == "mine"]
    assert len(problems) == 1
    assert problems[0].setting == "code"
    assert f"line {line}:" in problems[0].message


def test_custom_code_that_raises_is_an_error_on_its_node():
    analysis = analyze(custom("raise RuntimeError('no weights today')"))
    messages = errors_on(analysis, "mine")
    assert len(messages) == 1
    assert "no weights today" in messages[0]
    assert "mine" not in analysis.infos


def test_custom_code_that_returns_no_tensor_is_an_error_on_its_node():
    assert len(errors_on(analyze(custom("return 3")), "mine")) == 1


# The child-process probe


def test_analysis_without_keras_loaded_probes_in_a_child_process():
    doc = single("KerasLayer", {"class_name": "Dense", "config": {"units": 3}}, [[FEATURES]])
    script = textwrap.dedent("""
        import json, sys
        from app.graph.analysis import analyze
        from app.graph.document import parse
        analysis = analyze(parse(json.loads(sys.stdin.read())))
        info = analysis.infos["under_test"]
        print(json.dumps({"shape": list(info.shape), "params": info.params,
                          "errors": [p.message for p in analysis.errors],
                          "tensorflow": "tensorflow" in sys.modules,
                          "keras": "keras" in sys.modules}))
    """)  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], input=doc.to_json(), cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["errors"] == []
    assert (result["shape"], result["params"]) == ([None, 3], FEATURES * 3 + 3)
    assert not result["tensorflow"]
    assert not result["keras"]


# Trust: a shared graph's code never runs before the user trusts it


def test_untrusted_custom_code_does_not_run_and_its_shape_is_unknown_with_a_warning(
    workspace, tmp_path
):
    marker = tmp_path / "ran"
    doc = custom(f"open({str(marker)!r}, 'w').close()\nreturn inputs[0]", trust=False)
    analysis = analyze(doc)
    assert not marker.exists()
    assert "mine" not in analysis.infos and analysis.errors == []
    [warning] = [p for p in analysis.problems if p.code == "untrusted"]
    assert warning.level == "warning" and warning.node == "mine"
    assert "layerflow trust" in warning.message


def test_an_untrusted_node_takes_its_declared_output_shape_and_still_does_not_run(
    workspace, tmp_path
):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()\nreturn layers.Dense(4)(inputs[0])"
    analysis = analyze(custom(code, trust=False, output_shape=[4]))
    assert analysis.infos["mine"].shape == (None, 4)
    assert analysis.infos["out"].shape == (None, 4)
    assert not marker.exists()


def test_trusting_the_code_lets_it_run(workspace, tmp_path):

    code = "x = inputs[0]\nreturn layers.Dense(4)(x)"
    assert "mine" not in analyze(custom(code, trust=False)).infos
    Workspace.current().trust([code])
    assert analyze(custom(code, trust=False)).infos["mine"].shape == (None, 4)


def test_building_a_model_refuses_untrusted_code(workspace, tmp_path):
    from app.graph.problems import GraphError
    from app.keras.builder import build_model

    marker = tmp_path / "ran"
    doc = custom(f"open({str(marker)!r}, 'w').close()\nreturn inputs[0]", trust=False)
    with pytest.raises(GraphError, match="'mine' \\(Custom\\): its code is not trusted"):
        build_model(doc)
    assert not marker.exists()


def test_validate_and_shapes_of_an_untrusted_graph_in_a_child_process_run_nothing(
    workspace, tmp_path
):
    marker = tmp_path / "ran"
    graph = tmp_path / "shared.json"
    graph.write_text(custom(f"open({str(marker)!r}, 'w').close()\nreturn inputs[0]",
                            trust=False).to_json())  # fmt: skip
    for command in ("validate", "shapes"):
        done = subprocess.run([sys.executable, "-m", "app.cli.main", command, str(graph)],
                              cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
        assert "not trusted" in done.stdout + done.stderr, command
    assert not marker.exists()


def test_layerflow_trust_shows_the_code_and_trusts_it_only_when_confirmed(
    workspace, tmp_path, capsys
):
    from app.cli.main import main

    graph = tmp_path / "shared.json"
    code = "print('\x1b[31mhello')\nreturn inputs[0]"
    graph.write_text(custom(code, trust=False).to_json())
    assert main(["trust", str(graph)]) == 1  # no terminal to ask, no --yes
    out, err = capsys.readouterr()
    assert "--- node mine (Custom) ---" in out and "\\x1b[31mhello" in out and "\x1b" not in out
    assert "--yes" in err
    assert "mine" not in analyze(custom(code, trust=False)).infos
    assert main(["trust", str(graph), "--yes"]) == 0
    # trusted code runs; what it prints does not disturb the probe's answer
    assert main(["shapes", str(graph)]) == 0
    assert f"(None, {FEATURES})" in capsys.readouterr().out
    assert main(["trust", str(graph)]) == 0
    assert "nothing to trust" in capsys.readouterr().out



@pytest.mark.parametrize("vocabulary", ["/etc/passwd", "~/.bashrc", "../../outside.txt"])
def test_a_keras_config_naming_a_file_outside_the_workspace_is_an_error_and_is_not_read(
    workspace, vocabulary
):
    doc = single("KerasLayer", {"class_name": "IntegerLookup",
                                "config": {"vocabulary": vocabulary}}, [[1]])  # fmt: skip
    analysis = analyze(doc)
    [problem] = [p for p in analysis.errors if p.node == "under_test"]
    assert problem.code == "path" and problem.setting == "config"
    assert "outside the workspace" in problem.message
    assert "under_test" not in analysis.infos  # never probed, so never read


def test_a_file_outside_the_workspace_named_inside_a_block_is_an_error_and_is_not_read(
    workspace, tmp_path, monkeypatch
):
    """Shape inference checks its own copy of each block it expands: the node naming the file is
    skipped there too, and never probed."""
    from app.graph.edit import make_block
    from app.keras.probe import KerasProber

    monkeypatch.setattr(KerasProber, "layer_info", staticmethod(
        lambda settings, shapes: pytest.fail(f"probed {settings}")))  # fmt: skip
    vocabulary = tmp_path / "vocab.txt"  # a readable file beside the workspace, not in it
    vocabulary.write_text("1\n2\n3\n")
    doc = single("KerasLayer", {"class_name": "IntegerLookup",
                                "config": {"vocabulary": str(vocabulary)}}, [[1]])  # fmt: skip
    doc = make_block(doc, ["under_test"], "lookup")
    analysis = analyze(doc)
    [path] = [p for p in analysis.errors if p.code == "path"]
    assert str(vocabulary) in path.message and "Block 'lookup'" in path.message


def test_a_file_inside_the_workspace_may_be_named(workspace, monkeypatch):
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "vocab.txt").write_text("1\n2\n3\n")
    monkeypatch.chdir(workspace)
    doc = single("KerasLayer", {"class_name": "IntegerLookup",
                                "config": {"vocabulary": "vocab.txt"}}, [[1]])  # fmt: skip
    assert not [p for p in analyze(doc).errors if p.code == "path"]
