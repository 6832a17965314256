"""The training process (`python -m app.train.runner RUN_DIR`), driven as a user drives it: through
app.workspace.runs and the command line. Each test starts real runner processes, so all are slow."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import accuracy_score, confusion_matrix, mean_absolute_error, r2_score

from app.cli.main import main
from app.evaluate.segmentation import segmentation_metrics
from app.graph.document import parse, save
from app.keras import builder
from app.train import launch
from app.workspace import Workspace, runs, versions
from app.workspace.events import read_events
from tests import test_runs
from tests.graphs import chain_data, trusted
from tests.test_runs import add_tiny_dataset, tiny_classifier
from tests.trained import configured

pytestmark = pytest.mark.slow

RUN_SECONDS = 120


def wait_until(condition: Callable[[], bool], timeout: float = RUN_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout} s")
        time.sleep(0.05)


def finish(process, timeout: float = RUN_SECONDS) -> None:
    process.wait(timeout=timeout)


def epoch_events(folder: Path) -> list[dict]:
    return read_events(folder, {"epoch"})[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


# The same tiny workspace as test_runs, made once per module and copied for each test.
prepared = test_runs.prepared
workspace = test_runs.workspace


@pytest.fixture(scope="module")
def twins(prepared, tmp_path_factory) -> tuple[Path, list[Path]]:
    """Two runs of the same graph, settings (seed) and data version, trained side by side."""
    root = tmp_path_factory.mktemp("twins")
    shutil.copytree(prepared, root, symlinks=True, dirs_exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERFLOW_WORKSPACE", str(root))
        settings = {"epochs": 3, "batch_size": 16, "seed": 7}
        folders = [launch.create_run(tiny_classifier(), settings, "tiny") for _ in range(2)]
        for process in [launch.start_run(folder) for folder in folders]:
            finish(process)
    return root, folders


# A finished run


def test_the_same_seed_graph_and_data_give_the_same_metrics(twins, monkeypatch):
    root, (first, second) = twins
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(root))
    assert [runs.status(f)["state"] for f in (first, second)] == ["finished", "finished"]
    metrics = [[e["metrics"] for e in epoch_events(f)] for f in (first, second)]
    assert len(metrics[0]) == 3 and metrics[0] == metrics[1]
    weights = [builder.load_run_model(f, "last").get_weights() for f in (first, second)]
    assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))


def test_a_finished_run_writes_its_params_and_final_metrics_for_dvc(twins, monkeypatch):
    root, (first, _) = twins
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(root))
    params = yaml.safe_load((first / "params.yaml").read_text())
    assert (params["epochs"], params["batch_size"], params["seed"]) == (3, 16, 7)
    assert params["data"] == json.loads((first / "run.json").read_text())["data"]
    metrics = json.loads((first / "metrics.json").read_text())
    assert metrics["epoch"] == 3
    assert metrics["val_loss"] == epoch_events(first)[-1]["metrics"]["val_loss"]
    assert metrics["best_val_loss"] == runs.get_run(Workspace.current().run(first))["best"]["value"]


def test_a_finished_run_is_a_dvc_version_and_restores_byte_identical(twins, monkeypatch):
    root, folders = twins
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(root))
    for folder in folders:  # both finished together: one waited for the other's DVC lock
        (version,) = versions.versions(folder)
        assert runs.get_run(Workspace.current().run(folder))["version"] == version.version
    folder = folders[0]
    recorded = snapshot(folder)
    (folder / "checkpoints" / "best.keras").write_bytes(b"overwritten")
    (folder / "metrics.json").unlink()
    versions.restore(root, folder, versions.versions(folder)[0].short)
    assert snapshot(folder) == recorded


def test_dvc_exp_show_lists_each_finished_run_with_its_params_and_metrics(twins, monkeypatch):
    import subprocess
    import sys

    root, folders = twins
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(root))
    dvc = Path(sys.executable).parent / "dvc"
    shown = subprocess.run([dvc, "exp", "show", "--json"], cwd=root, capture_output=True,
                           text=True, check=True)  # fmt: skip
    (baseline,) = json.loads(shown.stdout)[1:]  # after the workspace row: its one commit
    experiments = {e["name"]: e["revs"][0]["data"] for e in baseline["experiments"]}
    assert set(experiments) == {folder.name for folder in folders}  # both, finished together
    for folder in folders:
        params = experiments[folder.name]["params"]["params.yaml"]["data"]
        settings = runs.get_run(Workspace.current().run(folder))["settings"]
        assert (params["learning_rate"], params["epochs"]) == (settings["learning_rate"], 3)
        assert params["data"] == runs.get_run(Workspace.current().run(folder))["data"]
        metrics = experiments[folder.name]["metrics"]["metrics.json"]["data"]
        assert metrics == json.loads((folder / "metrics.json").read_text())
    # Saved beside the workspace, not in it: nothing staged or changed there.
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                            text=True, check=True).stdout.splitlines()  # fmt: skip
    assert status and all(line.startswith("?? ") for line in status)


def test_the_status_tells_the_batches_per_epoch(twins, monkeypatch):
    from app.workspace import Workspace

    root, (first, _) = twins
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(root))
    train_rows = len(Workspace.current().dataset("tiny").splits["train"])
    assert runs.read_status(first)["steps"] == -(-train_rows // 16)
    assert epoch_events(first)[0]["step"] == runs.read_status(first)["steps"]


def test_the_event_log_tells_each_epoch_and_each_change_of_state(twins, monkeypatch):
    root, (first, _) = twins
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(root))
    assert [e["epoch"] for e in epoch_events(first)] == [0, 1, 2]
    states = [e["state"] for e in read_events(first, {"status"})[0]]
    assert states == ["running", "finished"]
    assert read_events(first, {"batch"})[0] and read_events(first, {"layers"})[0]


def test_the_checkpoints_hold_the_last_and_the_best_epoch(twins, monkeypatch):
    root, (first, _) = twins
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(root))
    state = json.loads((first / "checkpoints" / "state.json").read_text())
    info = runs.get_run(Workspace.current().run(first))
    assert state["epoch"] == 3 and state["best"] == info["best"]
    assert set(info["checkpoints"]) == {"last", "best"}


# Steering a run


def test_a_paused_run_holds_and_a_killed_one_resumes_from_its_checkpoint(workspace, capsys):
    folder = launch.create_run(tiny_classifier(), {"epochs": 12, "batch_size": 4}, "tiny")
    process = launch.start_run(folder)
    wait_until(lambda: runs.status(folder).get("epoch", 0) >= 2)
    runs.pause(folder)
    wait_until(lambda: runs.status(folder)["state"] == "paused")
    held = runs.status(folder)["epoch"]
    time.sleep(1.0)
    assert runs.status(folder)["epoch"] == held and process.poll() is None

    os.kill(process.pid, signal.SIGKILL)
    finish(process)
    assert runs.status(folder)["state"] == "interrupted"
    kept = json.loads((folder / "checkpoints" / "state.json").read_text())["epoch"]
    assert kept == held and [e["epoch"] for e in epoch_events(folder)] == list(range(held))

    assert main(["runs", "resume", folder.name]) == 0  # restarts it from its checkpoint
    assert runs.status(folder)["state"] in ("queued", "running")  # not taken for the dead one
    wait_until(lambda: bool(versions.versions(folder)))  # finished and recorded
    assert runs.status(folder)["state"] == "finished"
    assert [e["epoch"] for e in epoch_events(folder)] == list(range(12))  # counted on, once each
    states = [e["state"] for e in read_events(folder, {"status"})[0]]
    assert states == ["running", "paused", "running", "finished"]


def test_stop_ends_a_run_after_a_checkpoint(workspace):
    folder = launch.create_run(tiny_classifier(), {"epochs": 200, "batch_size": 4}, "tiny")
    process = launch.start_run(folder)
    wait_until(lambda: runs.status(folder).get("epoch", 0) >= 1)
    runs.stop(folder)
    finish(process)
    status = runs.status(folder)
    assert status["state"] == "stopped"
    assert status["reason"] == f"stopped at epoch {status['epoch']} of 200"
    kept = json.loads((folder / "checkpoints" / "state.json").read_text())
    assert kept["epoch"] == status["epoch"] and (folder / "checkpoints" / "last.keras").exists()
    assert not (folder / "metrics.json").exists()  # only a finished run reports final metrics


# Faults


POISON_AFTER_TWO_STEPS = '''class PoisonAfter(layers.Layer):
    """Multiplies by NaN from the third training step on."""

    def build(self, shape):
        self.steps = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def call(self, x, training=False):
        if training:
            self.steps.assign_add(1.0)
        return x * keras.ops.where(self.steps >= 3.0, float("nan"), 1.0)

return PoisonAfter()(inputs[0])
'''


def test_a_nan_loss_fails_the_run_and_keeps_the_last_checkpoint(workspace):
    data = chain_data(
        ("features", "Input", {"shape": [4]}),
        ("dense", "Dense", {"units": 8}),
        ("poison", "Custom", {}),
        ("label", "Output", {"target": "label", "units": 1, "activation": "sigmoid",
                             "loss": "binary_crossentropy"}),
    )  # fmt: skip
    data["nodes"][2]["code"] = POISON_AFTER_TWO_STEPS
    # A batch holds the whole train split: one step per epoch, so NaN comes at epoch 3.
    folder = launch.create_run(trusted(parse(data)), {"epochs": 5, "batch_size": 128}, "tiny")
    finish(launch.start_run(folder))
    status = runs.status(folder)
    assert status["state"] == "failed"
    # The data is finite (the NaN comes from the model), so the learning rate is blamed.
    assert status["reason"].startswith("loss became NaN at epoch 3, step 1; the data is finite")
    assert json.loads((folder / "checkpoints" / "state.json").read_text())["epoch"] == 2
    weights = builder.load_run_model(folder, "last").get_weights()
    assert all(np.isfinite(w).all() for w in weights)


def test_a_nan_loss_from_the_data_names_the_column_before_the_learning_rate(workspace, tmp_path):
    from app.workspace import Workspace

    # 1e39 is a float64 but too large for float32: standardized, it becomes NaN.
    rows = "".join(f"{1e39 if i < 10 else i % 7},{i % 5},{i % 3 * 1.5}\n" for i in range(60))
    (tmp_path / "huge.csv").write_text("big,small,y\n" + rows)
    Workspace.current().add_dataset(tmp_path / "huge.csv", "huge", target="y")
    doc = parse(chain_data(
        ("features", "Input", {"shape": [2]}),
        ("dense", "Dense", {"units": 8, "activation": "linear"}),  # ReLU would hide a NaN
        ("y", "Output", {"target": "y", "units": 1, "activation": "linear",
                         "loss": "mean_squared_error"}),
    ))  # fmt: skip
    folder = launch.create_run(doc, {"epochs": 2}, "huge")
    finish(launch.start_run(folder))
    status = runs.status(folder)
    assert status["state"] == "failed"
    assert re.search(r"the train data is not finite after preprocessing, at column 'big', "
                     r"row \d+: NaN", status["reason"]), status["reason"]  # fmt: skip


def test_an_out_of_memory_error_fails_the_run_with_its_one_line_reason(workspace):
    doc = tiny_classifier()
    huge = chain_data(
        ("features", "Input", {"shape": [4]}),
        ("wide", "Dense", {"units": 1_000_000}),
        ("wider", "Dense", {"units": 1_000_000}),  # 10^12 weights: 4 TB
        ("label", "Output", doc.node("label").settings),
    )
    folder = launch.create_run(parse(huge), {"epochs": 1}, "tiny")
    finish(launch.start_run(folder))
    status = runs.status(folder)
    assert status["state"] == "failed"
    assert status["reason"].startswith("ResourceExhaustedError: ") and "OOM" in status["reason"]
    assert "\n" not in status["reason"]


def test_a_dataset_changed_since_the_run_was_made_fails_it(workspace):
    from app.workspace import Workspace

    folder = launch.create_run(tiny_classifier(), {"epochs": 1}, "tiny")
    made_with = runs.get_run(Workspace.current().run(folder))["data"]["version"]
    shutil.rmtree(Workspace.current().dataset("tiny").folder)
    add_tiny_dataset()  # the same rows, split and fitted again: another version
    assert Workspace.current().dataset("tiny").version != made_with
    finish(launch.start_run(folder))
    status = runs.status(folder)
    assert status["state"] == "failed"
    assert "of dataset 'tiny', which is now at" in status["reason"]
    assert f"layerflow data restore tiny {made_with[:10]}" in status["reason"]


# Strategies


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_workers_train_the_same_weights_under_the_multi_worker_strategy(workspace):
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    settings = {"epochs": 2, "batch_size": 16, "strategy": "multi_worker"}
    folders = [launch.create_run(tiny_classifier(), settings, "tiny") for _ in range(2)]
    processes = [
        launch.start_run(folder, env={"TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})})
        for index, folder in enumerate(folders)
    ]  # fmt: skip
    for process in processes:
        finish(process)
    assert [runs.status(f)["state"] for f in folders] == ["finished", "finished"]
    # Each worker saves its own copy; the batches were shared out between them, so equal
    # weights mean every step's gradients were averaged across the two.
    weights = [builder.load_run_model(folder, "last").get_weights() for folder in folders]
    assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))
    assert [len(versions.versions(f)) for f in folders] == [1, 0]  # only the chief records


# The command line


def test_cli_train_prints_each_epoch_and_exits_with_the_final_state(workspace, capsys):
    graph = workspace / "tiny.json"
    save(tiny_classifier(), graph)
    assert main(["train", str(graph), "--data", "tiny", "--epochs", "2", "--lr", "0.01"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^epoch 1/2  .*loss \d", out, re.MULTILINE)
    assert re.search(r"^epoch 2/2  .*val_loss \d.*ETA 0s$", out, re.MULTILINE)
    (run,) = Workspace.current().runs()
    assert f"run {run['id']} finished after 2 epoch(s)" in out
    assert runs.get_run(Workspace.current().run(run["id"]))["settings"]["learning_rate"] == 0.01


def test_cli_train_detached_prints_the_run_id_and_the_run_goes_on(workspace, capsys):
    graph = workspace / "tiny.json"
    save(tiny_classifier(), graph)
    assert main(["train", str(graph), "--data", "tiny", "--epochs", "1", "--detach"]) == 0
    run_id = capsys.readouterr().out.strip()
    assert runs.RUN_ID.match(run_id)
    folder = Workspace.current().run(run_id)
    wait_until(lambda: bool(versions.versions(folder)))  # recorded: the runner is done
    assert runs.status(Workspace.current().run(run_id))["state"] == "finished"


# Real data: the templates on the samples, with the default settings


def add_sample(name: str, **options) -> None:
    from app.data.samples import make_sample
    from app.workspace import Workspace

    with tempfile.TemporaryDirectory() as folder:
        Workspace.current().add_dataset(make_sample(name, Path(folder) / name), name, **options)


def train_and_predict_test_split(
    template: str, data: str, settings: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train the configured template with the default settings, but for `settings` (within two
    minutes); the test split's targets and the best checkpoint's predictions of them."""
    from app.runtime.config import FittedState, PreprocessConfig
    from app.runtime.transform import transform
    from app.workspace import Workspace

    folder = launch.create_run(configured(template, data), settings or {}, data)
    started = time.monotonic()
    finish(launch.start_run(folder))
    assert time.monotonic() - started < RUN_SECONDS
    assert runs.status(folder)["state"] == "finished"
    dataset = Workspace.current().dataset(data)
    config = PreprocessConfig.model_validate(dataset.meta["preprocessing"])
    state = FittedState.model_validate(dataset.state)
    inputs, targets = transform(config, state, dataset.source(), dataset.splits["test"])
    (x,) = inputs.values()
    return targets, builder.load_run_model(folder, "best").predict(x, verbose=0)


def test_the_image_template_learns_the_digits(workspace):
    add_sample("digits")
    targets, predicted = train_and_predict_test_split("image_classification", "digits")
    assert accuracy_score(targets, predicted.argmax(axis=-1)) >= 0.97


def test_the_text_template_reads_what_a_bag_of_words_cannot(workspace):
    # In texts, negations and "but" verdicts leave a unigram bag of words at chance (0.5); the
    # template's convolution over word order learns them within a third of its epochs.
    add_sample("texts")
    settings = {"epochs": 10}
    targets, predicted = train_and_predict_test_split("text_classification", "texts", settings)
    assert accuracy_score(targets, predicted.reshape(-1) > 0.5) >= 0.85


def test_the_segmentation_template_tells_circles_from_squares_in_a_third_of_its_epochs(workspace):
    # 10 of the default 30 epochs. Predicting background everywhere scores a mean IoU of 0.29
    # on this split (background 0.86, circles and squares 0); a model that finds the shapes but
    # cannot tell circles from squares, 0.5 to 0.6. Measured: 0.91.
    add_sample("shapes")
    targets, predicted = train_and_predict_test_split(
        "image_segmentation", "shapes", {"epochs": 10}
    )
    classes = ["0", "1", "2"]
    confusion = confusion_matrix(
        targets.reshape(-1), predicted.argmax(axis=-1).reshape(-1), labels=range(len(classes))
    )
    summary, _ = segmentation_metrics(confusion, classes)
    assert summary["mean_iou"] >= 0.8


def test_the_tabular_classifier_learns_the_breast_cancer_sample(workspace):
    add_sample("breast_cancer")
    targets, predicted = train_and_predict_test_split("tabular_classification", "breast_cancer")
    assert accuracy_score(targets, predicted.reshape(-1) > 0.5) >= 0.95


def test_the_tabular_regressor_learns_the_diabetes_sample(workspace):
    # 20% of the 442 rows for testing, and a split on which ordinary least squares scores an
    # average R² (0.44): the default 10% (44 rows) is so small that least squares itself
    # scores 0.15 on it, and a test of R² would only test the split.
    add_sample("diabetes", fractions=(0.6, 0.2, 0.2), seed=4)
    targets, predicted = train_and_predict_test_split("tabular_regression", "diabetes")
    assert r2_score(targets, predicted.reshape(-1)) >= 0.40


def test_the_forecasting_template_beats_the_naive_forecast(workspace):
    # The sample's test split lies above the train range of its trending series: the template
    # forecasts the change from each window's last value, and beats repeating that value
    # (mean absolute scaled error < 1) within a few epochs.
    from app.runtime.config import PreprocessConfig
    from app.workspace import Workspace

    add_sample("timeseries")
    targets, predicted = train_and_predict_test_split(
        "time_series_forecasting", "timeseries", {"epochs": 8}
    )
    dataset = Workspace.current().dataset("timeseries")
    size = PreprocessConfig.model_validate(dataset.meta["preprocessing"]).window.size
    test = sorted(dataset.splits["test"])
    assert test == list(range(test[0], test[-1] + 1))  # one run of rows: windows at every row
    naive = dataset.source().frame["value"].to_numpy()[test[size - 1 : -1]]  # each last value
    scaled_error = mean_absolute_error(targets, predicted) / mean_absolute_error(targets, naive)
    assert scaled_error < 1
