"""The `layerflow` command line: exit codes, tables and --json output, files it writes, and
one-line messages (never a traceback) for a user's mistakes."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.cli.main import main
from app.graph.analysis import analyze
from app.graph.document import load, parse
from tests.graphs import chain_data

CONSOLE_SCRIPT = Path(sys.executable).with_name("layerflow")

GOOD = chain_data(
    ("in", "Input", {"shape": [5]}),
    ("norm", "Normalization", {}),
    ("dense", "Dense", {"units": 8}),
    ("out", "Output", {"units": 3}),
)
MISMATCH = {
    "schema_version": 1,
    "nodes": [
        {"id": "left", "component": "Input", "settings": {"shape": [4]}},
        {"id": "right", "component": "Input", "settings": {"shape": [5]}},
        {"id": "sum", "component": "Add"},
        {"id": "out", "component": "Output", "settings": {"units": 2}},
    ],
    "edges": [
        {"source": "left", "target": "sum", "slot": 0},
        {"source": "right", "target": "sum", "slot": 1},
        {"source": "sum", "target": "out"},
    ],
}
CELL = {
    "description": "a dense cell",
    "nodes": [
        {"id": "x", "component": "BlockInput", "settings": {"slot": 0}},
        {"id": "dense", "component": "Dense", "settings": {"units": 5}},
    ],
    "edges": [{"source": "x", "target": "dense"}],
    "output": "dense",
}


def with_block(blocks: dict[str, Any]) -> dict[str, Any]:
    """Input(5) -> Normalization -> Block 'cell' twice -> Output, with the given definitions."""
    data = chain_data(
        ("in", "Input", {"shape": [5]}),
        ("norm", "Normalization", {}),
        ("cells", "Block", {"block": "cell", "repeat": 2}),
        ("out", "Output", {"units": 3}),
    )
    return {**data, "blocks": blocks}


def write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(tmp_path))
    return tmp_path


def run_console(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LAYERFLOW_DEBUG"}
    return subprocess.run([str(CONSOLE_SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          env={**env, "LAYERFLOW_WORKSPACE": str(cwd)}, timeout=120)  # fmt: skip


# validate


def test_validate_exits_0_on_a_graph_without_errors(workspace, capsys):
    assert main(["validate", str(write(workspace / "good.json", GOOD))]) == 0
    assert "ok" in capsys.readouterr().out


def test_validate_exits_1_and_prints_one_line_per_problem_naming_its_node(workspace, capsys):
    expected = analyze(parse(MISMATCH)).problems
    assert main(["validate", str(write(workspace / "bad.json", MISMATCH))]) == 1
    lines = capsys.readouterr().out.splitlines()
    problem_lines = [line for line in lines if not line.lstrip().startswith("fix:")]
    assert len(problem_lines) == len(expected)
    for line, problem in zip(problem_lines, expected, strict=True):
        assert line.split()[0] == problem.level
        assert f"'{problem.node}'" in line
    assert any(line.startswith("error") and "'sum'" in line for line in problem_lines)


def test_validate_json_gives_ok_and_the_problems(workspace, capsys):
    assert main(["validate", "--json", str(write(workspace / "bad.json", MISMATCH))]) == 1
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"ok", "problems"}
    assert result["ok"] is False
    errors = [p for p in result["problems"] if p["level"] == "error"]
    assert [p["node"] for p in errors] == ["sum"]


def test_validate_json_of_a_good_graph_is_ok(workspace, capsys):
    assert main(["validate", "--json", str(write(workspace / "good.json", GOOD))]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


# shapes


def test_shapes_prints_a_table_row_for_every_node(workspace, capsys):
    assert main(["shapes", str(write(workspace / "good.json", GOOD))]) == 0
    lines = capsys.readouterr().out.splitlines()
    first_cells = {line.split()[0] for line in lines if line.strip()}
    assert {node["id"] for node in GOOD["nodes"]} <= first_cells


def test_shapes_json_gives_each_nodes_shape_and_params(workspace, capsys):
    assert main(["shapes", "--json", str(write(workspace / "good.json", GOOD))]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)["nodes"]}
    assert list(rows) == [node["id"] for node in GOOD["nodes"]]
    dense = rows["dense"]
    assert {"id", "label", "component", "output_shape", "params"} <= set(dense)
    assert dense["component"] == "Dense"
    assert dense["output_shape"] == [None, 8]
    assert dense["params"] == 5 * 8 + 8


def test_shapes_exits_1_on_a_shape_error(workspace, capsys):
    assert main(["shapes", str(write(workspace / "bad.json", MISMATCH))]) == 1
    assert "'sum'" in capsys.readouterr().out


# codegen


def test_codegen_writes_a_module_defining_build_model(workspace, capsys):
    target = workspace / "model.py"
    assert main(["codegen", str(write(workspace / "good.json", GOOD)), "-o", str(target)]) == 0
    tree = ast.parse(target.read_text(encoding="utf-8"))
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "build_model" in functions
    assert capsys.readouterr().out == ""


def test_codegen_node_prints_only_that_nodes_snippet(workspace, capsys):
    assert main(["codegen", str(write(workspace / "good.json", GOOD)), "--node", "dense"]) == 0
    snippet = capsys.readouterr().out
    assert "layers.Dense(" in snippet
    assert "'dense'" in snippet
    assert "def build_model" not in snippet
    assert "Normalization" not in snippet


def test_codegen_of_an_unknown_node_is_a_one_line_error(workspace, capsys):
    assert main(["codegen", str(write(workspace / "good.json", GOOD)), "--node", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'nope'" in err


# A user's mistakes, through the console script


@pytest.mark.parametrize("command", ["validate", "shapes", "codegen"])
def test_missing_file_is_a_one_line_error(tmp_path, command):
    done = run_console(command, "missing.json", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1
    assert "missing.json" in done.stderr


@pytest.mark.parametrize("command", ["validate", "shapes", "codegen"])
def test_invalid_json_is_a_one_line_error_with_line_and_column(tmp_path, command):
    text = '{\n  "nodes": [,]\n}\n'
    with pytest.raises(json.JSONDecodeError) as decoding:
        json.loads(text)
    write(tmp_path / "broken.json", text)
    done = run_console(command, "broken.json", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1
    assert f"line {decoding.value.lineno}, column {decoding.value.colno}" in done.stderr


@pytest.mark.parametrize("command", ["validate", "shapes", "codegen"])
def test_unsupported_schema_version_is_a_one_line_error(tmp_path, command):
    write(tmp_path / "future.json", {**GOOD, "schema_version": 99})
    done = run_console(command, "future.json", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1
    assert "schema_version 99" in done.stderr


def test_console_script_validates_a_good_graph(tmp_path):
    write(tmp_path / "good.json", GOOD)
    done = run_console("validate", "--json", "good.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True


# blocks


def test_blocks_list_of_an_empty_library_says_so(workspace, capsys):
    assert main(["blocks", "list"]) == 0
    assert "no blocks" in capsys.readouterr().out


def test_blocks_save_writes_the_block_to_the_library(workspace, capsys):
    graph = write(workspace / "with.json", with_block({"cell": CELL}))
    assert main(["blocks", "save", str(graph), "cell"]) == 0
    assert (workspace / "blocks" / "cell.json").is_file()
    capsys.readouterr()
    assert main(["blocks", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["name"], row["nodes"]) for row in rows] == [("cell", len(CELL["nodes"]))]


def test_blocks_save_of_an_unknown_block_is_a_one_line_error(workspace, capsys):
    graph = write(workspace / "with.json", with_block({"cell": CELL}))
    assert main(["blocks", "save", str(graph), "other"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'other'" in err
    assert not (workspace / "blocks").exists()


def test_blocks_use_adds_the_block_so_the_graph_validates(workspace, capsys):
    write(workspace / "with.json", with_block({"cell": CELL}))
    assert main(["blocks", "save", str(workspace / "with.json"), "cell"]) == 0
    graph = write(workspace / "without.json", with_block({}))
    assert main(["validate", str(graph)]) == 1
    assert main(["blocks", "use", str(graph), "cell"]) == 0
    assert main(["validate", str(graph)]) == 0
    assert load(graph).blocks["cell"].output == CELL["output"]


# templates, new, import-keras


def test_templates_json_lists_every_template(workspace, capsys):
    from app.graph.model_templates import template_names

    assert main(["templates", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == template_names()
    assert all(row["nodes"] > 0 for row in rows)


def test_new_writes_a_named_graph_from_a_template(workspace, capsys):
    from app.graph.model_templates import template_names

    template = template_names()[0]
    target = workspace / "mine.json"
    assert main(["new", "--template", template, "--name", "mine", "-o", str(target)]) == 0
    doc = load(target)
    assert doc.meta.name == "mine"
    assert doc.nodes


def test_new_from_an_unknown_template_is_a_one_line_error(workspace, capsys):
    assert main(["new", "--template", "no_such", "-o", str(workspace / "x.json")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no_such" in err
    assert not (workspace / "x.json").exists()


def test_import_keras_writes_a_graph_with_the_models_parameters(workspace, capsys):
    import keras

    inputs = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(3, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probs")(hidden))
    model.save(workspace / "model.keras")
    target = workspace / "imported.json"
    assert main(["import-keras", str(workspace / "model.keras"), "-o", str(target)]) == 0
    assert analyze(load(target)).totals()["params"] == model.count_params()


def test_import_keras_of_a_missing_file_is_a_one_line_error(workspace, capsys):
    target = workspace / "imported.json"
    assert main(["import-keras", str(workspace / "none.keras"), "-o", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "none.keras" in err
    assert not target.exists()


def test_terminal_escape_codes_in_a_graph_are_printed_visibly_never_obeyed(tmp_path, capsys):
    data = chain_data(("in", "Input", {"shape": [4]}), ("out", "Output", {"units": 1}))
    data["nodes"][0]["label"] = "evil\x1b]0;title\x07"
    graph = write(tmp_path / "labels.json", data)
    assert main(["shapes", str(graph)]) == 0
    out = capsys.readouterr().out
    assert "evil\\x1b]0;title\\x07" in out and "\x1b" not in out and "\x07" not in out
    data["nodes"][0]["component"] = "Inp\x1b[2Jut"
    assert main(["validate", str(write(tmp_path / "bad.json", data))]) == 1
    captured = capsys.readouterr()
    assert "Inp\\x1b[2Jut" in captured.out + captured.err
    assert "\x1b" not in captured.out + captured.err
