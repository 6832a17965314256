"""Comparing runs (app.evaluate.compare and `layerflow compare`), on the finished runs of the
trained workspace and copies of them changed by hand: no training here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli.main import main
from app.evaluate import compare
from app.workspace import Workspace, runs
from app.workspace.events import EventWriter, read_events


def copy_run(folder: Path, run_id: str, settings: dict | None = None, graph=None) -> Path:
    """A copy of a finished run under another id, with some settings (and the graph) changed."""
    copy = folder.with_name(run_id)
    shutil.copytree(folder, copy)
    info = json.loads((copy / runs.RUN).read_text())
    (copy / runs.RUN).write_text(json.dumps({**info, "id": run_id}))
    changed = {**json.loads((copy / runs.SETTINGS).read_text()), **(settings or {})}
    (copy / runs.SETTINGS).write_text(json.dumps(changed))
    if graph is not None:
        data = json.loads((copy / runs.GRAPH).read_text())
        graph(data)
        (copy / runs.GRAPH).write_text(json.dumps(data))
    return copy


def test_two_runs_side_by_side_with_their_data_settings_metrics_and_best(trained_workspace):
    first, second = trained_workspace.runs["classification"], trained_workspace.runs["binary"]
    result = compare.compare_runs([first.name, second])
    assert [row["id"] for row in result["runs"]] == [first.name, second.name]
    for row, folder in zip(result["runs"], (first, second), strict=True):
        info = runs.get_run(Workspace.current().run(folder))
        assert row["data"] == info["data"] and row["state"] == "finished"
        assert row["metrics"] == info["metrics"] and row["best"] == info["best"]
        assert row["settings"]["epochs"] == info["settings"]["epochs"]
        assert row["graph"] == compare.graph_hash(folder / "graph.json")
    assert result["differs"] == {"settings": ["epochs"], "data": True, "graph": True}
    assert set(result["metrics"]) == {"accuracy", "loss", "val_accuracy", "val_loss"}


def test_runs_of_the_same_graph_and_data_differ_only_in_the_settings_changed(trained_workspace):
    folder = trained_workspace.runs["classification"]
    copy = copy_run(folder, "faster", {"learning_rate": 0.01, "seed": 1},
                    graph=lambda g: g["nodes"][0]["position"].update(x=999.0))  # fmt: skip
    result = compare.compare_runs([folder, copy])
    assert result["differs"] == {"settings": ["learning_rate"], "data": False, "graph": False}


def test_a_changed_layer_makes_the_graphs_differ(trained_workspace):
    folder = trained_workspace.runs["classification"]

    def wider(graph):
        (dense,) = [node for node in graph["nodes"] if node["id"] == "dense1"]
        dense["settings"]["units"] += 1

    copy = copy_run(folder, "wider", graph=wider)
    assert compare.compare_runs([folder, copy])["differs"]["graph"] is True


def test_nested_settings_are_flattened_and_a_setting_only_one_run_has_differs(trained_workspace):
    folder = trained_workspace.runs["classification"]
    copy = copy_run(folder, "nested", {"metrics": ["accuracy"], "extra": {"a": {"b": 1}}})
    result = compare.compare_runs([folder, copy])
    assert result["runs"][1]["settings"]["extra.a.b"] == 1
    assert result["differs"]["settings"] == ["metrics", "extra.a.b"]


def test_the_history_holds_each_logged_metric_per_epoch(trained_workspace):
    folder = trained_workspace.runs["regression"]
    epochs = read_events(folder, {"epoch"})[0]
    history = compare.history(folder.name)
    assert history["epoch"] == list(range(1, 21))
    assert history["val_mae"] == [event["metrics"]["val_mae"] for event in epochs]
    assert history["lr"] == [event["lr"] for event in epochs]
    assert list(history)[-1] == "lr"


def test_an_epoch_logged_again_after_a_resume_counts_once_as_last_logged(trained_workspace):
    folder = trained_workspace.runs["classification"]
    with EventWriter(folder) as writer:
        writer.write("epoch", epoch=4, step=20, metrics={"loss": 0.1, "extra": 2.0}, lr=0.001)
    history = compare.history(folder)
    assert history["epoch"] == [1, 2, 3, 4, 5]
    assert history["loss"][-1] == 0.1 and history["extra"] == [None, None, None, None, 2.0]


def test_fewer_than_two_different_runs_are_refused(trained_workspace):
    folder = trained_workspace.runs["classification"]
    for given in ([folder.name], [folder.name, folder], folder.name):
        with pytest.raises(ValueError, match="expected at least two different runs to compare"):
            compare.compare_runs(given)


def test_an_unknown_run_is_refused_naming_it(trained_workspace):
    folder = trained_workspace.runs["classification"]
    with pytest.raises(ValueError, match="No run '20000101-000000-abcdef'"):
        compare.compare_runs([folder.name, "20000101-000000-abcdef"])


def test_cli_compare_marks_the_differing_rows(trained_workspace, capsys):
    folder = trained_workspace.runs["classification"]
    copy = copy_run(folder, "faster", {"learning_rate": 0.01})
    assert main(["compare", folder.name, str(copy)]) == 0
    rows = {line[2:].split()[0]: line for line in capsys.readouterr().out.splitlines() if line[2:]}
    assert rows["run"].split()[1:] == [folder.name, "faster"]
    assert rows["learning_rate"].startswith("* ") and rows["learning_rate"].split()[2:] == [
        "0.003", "0.01"]  # fmt: skip
    assert rows["epochs"].startswith("  ") and rows["data"].startswith("  ")
    val_loss = runs.get_run(folder)["metrics"]["val_loss"]
    assert rows["val_loss"].split()[1] == f"{val_loss:.4g}"


def test_cli_compare_json_is_the_comparison(trained_workspace, capsys):
    first, second = trained_workspace.runs["image"], trained_workspace.runs["segmentation"]
    assert main(["compare", first.name, second.name, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == compare.compare_runs([first, second])


def test_cli_compare_errors_are_one_line(trained_workspace, capsys):
    folder = trained_workspace.runs["classification"]
    for argv in (["compare", folder.name], ["compare", folder.name, "nope"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("layerflow: error: ") and err.count("\n") == 1


def test_importing_compare_does_not_import_tensorflow():
    code = ("import sys, app.evaluate.compare; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(compare.__file__).parent.parent,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout.split() == ["False", "False"]
