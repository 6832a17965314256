"""Run directories from outside the runner: creating them (and refusing runs that cannot work
before anything is written), reading status, listing, steering through control.json, deleting,
and the `layerflow train` and `layerflow runs` commands that need no training process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from app.cli.main import main
from app.graph.document import save
from app.train import launch
from app.train.settings import TrainingSettingsError
from app.workspace import Workspace, runs
from tests.graphs import chain


def tiny_classifier(name: str = "Tiny classifier", units: int = 1, shape: int = 4):
    return chain(
        ("features", "Input", {"shape": [shape]}),
        ("dense", "Dense", {"units": 8}),
        ("label", "Output", {"target": "label", "units": units, "activation": "sigmoid",
                             "loss": "binary_crossentropy"}),
        name=name,
    )  # fmt: skip


def add_tiny_dataset(name: str = "tiny") -> None:
    """120 rows of 4 numbers and a yes/no label, added to the current workspace."""
    from app.workspace import Workspace

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).round(4)
    frame = pd.DataFrame({f"f{i}": x[:, i] for i in range(4)})
    frame["label"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.csv"
        frame.to_csv(path, index=False)
        Workspace.current().add_dataset(path, name, target="label")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A workspace with the tiny dataset, made once and copied for each test."""
    root = tmp_path_factory.mktemp("prepared")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERFLOW_WORKSPACE", str(root))
        add_tiny_dataset()
    return root


@pytest.fixture
def workspace(prepared, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "workspace"
    shutil.copytree(prepared, root, symlinks=True)
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(root))
    return root


def gone_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# Creating


def test_a_run_directory_holds_graph_settings_run_info_status_and_control(workspace):
    folder = launch.create_run(tiny_classifier(), {"epochs": 3}, "tiny", command=["layerflow"])
    assert folder.parent == workspace / "models" / "tiny-classifier" / "runs"
    assert runs.RUN_ID.match(folder.name)
    for name in ("graph.json", "settings.json", "run.json", "status.json", "control.json"):
        assert (folder / name).is_file(), name
    info = json.loads((folder / "run.json").read_text())
    assert info["data"]["name"] == "tiny" and info["data"]["version"].endswith(".dir")
    assert info["command"] == ["layerflow"] and info["created"] > 0
    status = runs.read_status(folder)
    assert (status["state"], status["epoch"], status["epochs"]) == ("queued", 0, 3)
    assert json.loads((folder / "settings.json").read_text())["epochs"] == 3


def test_model_names_become_slugs():
    assert runs.model_slug("Tabular classification (MLP)") == "tabular-classification-mlp"
    assert runs.model_slug("***") == "model"


def test_two_runs_made_at_once_get_different_ids():
    assert runs.new_run_id() != runs.new_run_id()


def test_invalid_settings_are_refused_before_anything_is_written(workspace):
    with pytest.raises(TrainingSettingsError, match="`learning_rate`, expected a number > 0"):
        launch.create_run(tiny_classifier(), {"learning_rate": -1}, "tiny")
    assert not (workspace / "models").exists()


def test_a_graph_with_errors_is_refused_naming_the_error(workspace):
    doc = chain(("features", "Input", {"shape": [4]}), ("dense", "Dense", {"units": 8}))
    with pytest.raises(runs.RunError, match="no Output node"):
        launch.create_run(doc, {}, "tiny")
    assert not (workspace / "models").exists()


def test_data_whose_samples_do_not_fit_the_input_is_refused(workspace):
    with pytest.raises(runs.RunError) as caught:
        launch.create_run(tiny_classifier(shape=5), {}, "tiny")
    (problem,) = caught.value.problems
    assert "Node 'features'" in problem and "shape (4,)" in problem and "(5,)" in problem
    assert "dataset 'tiny'" in problem


def test_an_output_with_the_wrong_number_of_classes_is_refused(workspace):
    doc = chain(
        ("features", "Input", {"shape": [4]}),
        ("label", "Output", {"target": "label", "units": 3, "activation": "softmax"}),
    )
    with pytest.raises(runs.RunError) as caught:
        launch.create_run(doc, {}, "tiny")
    assert any("Node 'label'" in p and "units=1" in p for p in caught.value.problems)


def test_settings_that_do_not_suit_the_graph_are_refused(workspace):
    with pytest.raises(runs.RunError, match="`monitor`"):
        launch.create_run(tiny_classifier(), {"monitor": "val_mae"}, "tiny")


def test_an_unknown_dataset_is_refused(workspace):
    with pytest.raises(ValueError, match="No dataset named 'nope'"):
        launch.create_run(tiny_classifier(), {}, "nope")


def test_a_run_directory_outside_the_workspace_is_refused(workspace, tmp_path):
    with pytest.raises(ValueError, match="leaves the workspace"):
        launch.create_run(tiny_classifier(), {}, "tiny", run_dir=str(tmp_path / "elsewhere"))


def test_a_run_directory_inside_the_workspace_is_used_and_found(workspace):
    folder = launch.create_run(tiny_classifier(), {}, "tiny", run_dir="experiments/first")
    assert folder == workspace / "experiments" / "first"
    assert Workspace.current().run("experiments/first") == folder
    assert runs.get_run(Workspace.current().run("experiments/first"))["id"] == "first"
    # listed, and found by its id, like a run under models/
    assert [r["dir"] for r in Workspace.current().runs()] == [str(folder)]
    model = tiny_classifier().meta.name
    assert [r["id"] for r in Workspace.current().runs(model=model)] == ["first"]
    assert Workspace.current().run("first") == folder
    shutil.rmtree(folder)  # gone by hand: no longer listed
    assert Workspace.current().runs() == []


# Status and reading


def test_a_run_whose_process_is_gone_reads_as_interrupted(workspace):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    runs.update_status(folder, state="running", pid=gone_pid())
    status = runs.status(folder)
    assert status["state"] == "interrupted"
    assert "resume" in status["reason"]
    assert runs.read_status(folder)["state"] == "running"  # the file is left as written


def test_a_run_whose_process_lives_reads_as_it_says(workspace):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    me = psutil.Process()
    runs.update_status(folder, state="paused", pid=me.pid, pid_started=me.create_time())
    assert runs.status(folder)["state"] == "paused"


def test_a_reused_pid_does_not_pass_for_the_runner(workspace):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    me = psutil.Process()
    runs.update_status(folder, state="running", pid=me.pid, pid_started=me.create_time() - 60)
    assert runs.status(folder)["state"] == "interrupted"


def test_runs_are_listed_newest_first_and_by_model(workspace):
    first = launch.create_run(tiny_classifier("Alpha"), {}, "tiny")
    second = launch.create_run(tiny_classifier("Beta"), {}, "tiny")
    assert [r["id"] for r in Workspace.current().runs()] == [second.name, first.name]
    assert [r["id"] for r in Workspace.current().runs(model="alpha")] == [first.name]
    assert Workspace.current().runs()[0]["state"] == "queued"


def test_get_run_tells_status_settings_data_and_last_metrics(workspace):
    folder = launch.create_run(tiny_classifier(), {"epochs": 5}, "tiny")
    runs.update_status(folder, epoch=2, metrics={"loss": 0.5}, best={"monitor": "val_loss",
                       "value": 0.6, "epoch": 2})  # fmt: skip
    info = runs.get_run(Workspace.current().run(folder.name))
    assert (info["state"], info["epoch"], info["epochs"]) == ("queued", 2, 5)
    assert info["metrics"] == {"loss": 0.5} and info["best"]["value"] == 0.6
    assert info["settings"]["epochs"] == 5 and info["data"]["name"] == "tiny"
    assert info["version"] is None and info["checkpoints"] == {}


def test_an_unknown_run_is_refused_naming_the_latest(workspace):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    with pytest.raises(ValueError, match=f"No run '20000101-000000-abcdef'.*{folder.name}"):
        Workspace.current().run("20000101-000000-abcdef")


# Steering


def test_pause_resume_and_stop_write_the_action_for_the_runner(workspace):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    assert runs.read_control(folder) == "run"
    runs.pause(folder)
    assert runs.read_control(folder) == "pause"
    runs.resume(folder)
    assert runs.read_control(folder) == "run"
    runs.stop(folder)
    assert runs.read_control(folder) == "stop"


def test_a_finished_run_cannot_be_paused(workspace):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    runs.update_status(folder, state="finished")
    with pytest.raises(runs.RunError, match="is finished; only a queued, running or paused run"):
        runs.pause(folder)


def test_only_a_stopped_failed_or_interrupted_run_can_be_resumed_from_a_checkpoint(workspace):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    with pytest.raises(runs.RunError, match="is queued; only a stopped, failed or interrupted"):
        launch.resume_run(folder)


# Commands that start no process


def test_cli_train_refuses_an_invalid_learning_rate_naming_it(workspace, capsys):
    graph = workspace / "tiny.json"
    save(tiny_classifier(), graph)
    assert main(["train", str(graph), "--data", "tiny", "--lr", "-1"]) == 1
    assert "`learning_rate`, expected a number > 0" in capsys.readouterr().err
    assert not (workspace / "models").exists()


def test_cli_train_refuses_data_that_does_not_fit_the_graph(workspace, capsys):
    graph = workspace / "wide.json"
    save(tiny_classifier(shape=7), graph)
    assert main(["train", str(graph), "--data", "tiny"]) == 1
    assert "the Input expects (7,)" in capsys.readouterr().err


def test_cli_train_refuses_a_run_directory_outside_the_workspace(workspace, tmp_path, capsys):
    graph = workspace / "tiny.json"
    save(tiny_classifier(), graph)
    outside = tmp_path / "outside"
    assert main(["train", str(graph), "--data", "tiny", "--run-dir", str(outside)]) == 1
    assert "leaves the workspace" in capsys.readouterr().err
    assert not outside.exists()


def test_cli_runs_list_and_show_read_the_run_directories(workspace, capsys):
    folder = launch.create_run(tiny_classifier(), {"epochs": 4}, "tiny")
    assert main(["runs", "list"]) == 0
    listed = capsys.readouterr().out
    assert folder.name in listed and "queued" in listed and "0/4" in listed
    assert main(["runs", "show", folder.name, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == folder.name and shown["settings"]["epochs"] == 4


def test_cli_runs_pause_asks_the_runner(workspace, capsys):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    assert main(["runs", "pause", folder.name]) == 0
    assert runs.read_control(folder) == "pause"


def test_cli_runs_resume_lets_a_paused_run_go_on(workspace, capsys):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    me = psutil.Process()
    runs.update_status(folder, state="paused", pid=me.pid, pid_started=me.create_time())
    runs.pause(folder)
    assert main(["runs", "resume", folder.name]) == 0
    assert runs.read_control(folder) == "run"


def test_cli_runs_stop_refuses_a_finished_run(workspace, capsys):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    runs.update_status(folder, state="finished")
    assert main(["runs", "stop", folder.name]) == 1
    assert "is finished" in capsys.readouterr().err


# Deleting


def experiment_refs(root: Path) -> list[str]:
    return subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=root,
                          capture_output=True, text=True, check=True).stdout.split()  # fmt: skip


def test_deleting_a_finished_run_removes_its_directory_and_its_dvc_records(trained_workspace):
    root, folder = trained_workspace.root, trained_workspace.runs["classification"]
    others = sorted(r["id"] for r in Workspace.current().runs() if r["id"] != folder.name)
    assert (folder.parent / f"{folder.name}.dvc").exists()
    assert any(ref.endswith("/" + folder.name) for ref in experiment_refs(root))

    assert Workspace.current().delete_run(folder.name) == folder
    assert not folder.exists()
    assert sorted(r["id"] for r in Workspace.current().runs()) == others
    for name in (f"{folder.name}.dvc", f"{folder.name}.versions.json", ".gitignore"):
        assert not (folder.parent / name).exists(), name
    assert not folder.parent.parent.exists()  # the model had no other run
    assert not any(ref.endswith("/" + folder.name) for ref in experiment_refs(root))
    assert len(experiment_refs(root)) == len(others)
    assert not (root / "models" / ".deleted").exists()
    dvc = Path(sys.executable).parent / "dvc"
    status = subprocess.run([dvc, "status"], cwd=root, capture_output=True, text=True, check=True)
    assert "up to date" in status.stdout  # no .dvc file left pointing at nothing


def test_a_run_never_recorded_is_deleted(workspace):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    runs.update_status(folder, state="failed", reason="it broke")
    Workspace.current().delete_run(folder)
    assert not folder.exists() and Workspace.current().runs() == []


def test_an_active_run_is_not_deleted(workspace):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    me = psutil.Process()
    runs.update_status(folder, state="running", pid=me.pid, pid_started=me.create_time())
    with pytest.raises(runs.RunError, match="is running; stop it before deleting it"):
        Workspace.current().delete_run(folder)
    assert (folder / "run.json").exists()


def test_a_finished_run_whose_runner_still_records_it_is_not_deleted(workspace):
    folder = launch.create_run(tiny_classifier(), {}, "tiny")
    me = psutil.Process()
    runs.update_status(folder, state="finished", pid=me.pid, pid_started=me.create_time())
    with pytest.raises(runs.RunError, match=f"runner .pid {me.pid}. is still recording it"):
        Workspace.current().delete_run(folder)
    assert (folder / "run.json").exists()


def test_cli_runs_delete_deletes_a_run_and_refuses_an_unknown_one(trained_workspace, capsys):
    folder = trained_workspace.runs["binary"]
    assert main(["runs", "delete", folder.name]) == 0
    assert f"deleted run {folder.name}" in capsys.readouterr().out
    assert not folder.exists()
    assert main(["runs", "delete", folder.name]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"layerflow: error: No run '{folder.name}'") and "\n" not in err


# Following a run in the terminal


class Ended:
    """A runner process that has ended."""

    pid = 0

    def poll(self) -> int:
        return 0


def test_cli_train_shows_a_progress_bar_of_the_epochs_batches_on_a_terminal(
    trained_workspace, capsys, monkeypatch
):
    from app.cli.train import _follow
    from app.workspace.events import read_events

    folder = trained_workspace.runs["classification"]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert _follow(folder, Ended()) == 0
    out = capsys.readouterr().out
    steps = runs.read_status(folder)["steps"]
    batches = read_events(folder, {"batch"})[0]
    assert batches and steps
    for event in batches:  # each drawn in place: the epoch, its batches done, the loss and ETA
        done = (event["step"] - 1) % steps + 1
        bar = (rf"\repoch {event['epoch'] + 1}/5 \|[^|\n]*\| {done}/{steps}  "
               rf"loss {event['metrics']['loss']:.4g}  ETA {event['eta_s']:.0f}s")  # fmt: skip
        assert re.search(bar, out), bar
    lines = [line.split("\r")[-1] for line in out.splitlines()]
    epochs = [line for line in lines if re.match(r"epoch \d/5  accuracy", line)]
    assert len(epochs) == 5 and epochs[-1].startswith("epoch 5/5  ")  # printed above the bar
    assert lines[-1] == f"run {folder.name} finished after 5 epoch(s)"


def test_cli_train_prints_plain_epoch_lines_when_not_on_a_terminal(trained_workspace, capsys):
    from app.cli.train import _follow

    folder = trained_workspace.runs["classification"]
    assert _follow(folder, Ended()) == 0
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.splitlines()
    assert lines[0] == "... running" and lines[-1].startswith(f"run {folder.name} finished")
    assert [line.split("  ")[0] for line in lines[1:-1]] == [f"epoch {n}/5" for n in range(1, 6)]
