"""The live statistics callback: what it writes to a run's event log while a model trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from app.keras.cadence import Cadence
from app.keras.livestats import LayerFlowCallback
from app.keras.previews import PREVIEW_MAPS, PREVIEW_SAMPLES, PREVIEW_SIZE
from app.workspace.events import read_events

REPOSITORY = Path(__file__).resolve().parent.parent
STEPS = 10  # batches per epoch in the small fits below
EVERY_STATISTIC = {"layers_max_share": None}  # no time budget: every layer-statistics point


def events(run_dir: Path, event_type: str) -> list[dict]:
    return read_events(run_dir, {event_type})[0]


def warnings(run_dir: Path, code: str) -> list[dict]:
    return [event for event in events(run_dir, "warning") if event["code"] == code]


def classifier_data(samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 6)).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("int64")


def classifier(learning_rate) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="out")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(learning_rate), "binary_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    return model


def fit(model: keras.Model, x, y, callback: LayerFlowCallback, epochs: int = 1, **kwargs) -> None:
    model.fit(x, y, batch_size=len(x) // STEPS, epochs=epochs, callbacks=[callback], verbose=0,
              **kwargs)  # fmt: skip


# -- one ordinary fit, looked at from several sides -----------------------------------------------

SCHEDULE = {"initial_learning_rate": 0.01, "decay_steps": 5, "decay_rate": 0.5}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, keras.Model, np.ndarray, np.ndarray]:
    run_dir = tmp_path_factory.mktemp("run")
    x, y = classifier_data(100)
    model = classifier(keras.optimizers.schedules.ExponentialDecay(**SCHEDULE))
    callback = LayerFlowCallback(run_dir, cadence={"batch_metrics_every": 4, **EVERY_STATISTIC},
                                 sample=(x[:8], y[:8]))  # fmt: skip
    fit(model, x, y, callback, epochs=2, validation_data=classifier_data(40, seed=1))
    return run_dir, model, x, y


def test_batch_events_are_written_every_n_batches(trained):
    run_dir = trained[0]
    batches = events(run_dir, "batch")
    assert [event["step"] for event in batches] == [4, 8, 12, 16, 20]
    assert [event["epoch"] for event in batches] == [0, 0, 1, 1, 1]
    assert all({"loss", "accuracy"} <= set(event["metrics"]) for event in batches)


def test_epoch_events_have_train_and_val_metrics(trained):
    epochs = events(trained[0], "epoch")
    assert [event["epoch"] for event in epochs] == [0, 1]
    for event in epochs:
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(event["metrics"])
        assert event["samples_per_sec"] > 0
    assert epochs[0]["eta_s"] >= 0 and epochs[1]["eta_s"] == 0


def test_learning_rate_follows_the_optimizer_schedule(trained):
    schedule = keras.optimizers.schedules.ExponentialDecay(**SCHEDULE)
    lrs = [event["lr"] for event in events(trained[0], "epoch")]
    assert lrs == pytest.approx([float(schedule(STEPS)), float(schedule(2 * STEPS))], rel=1e-5)


def test_weight_stats_match_numpy_on_the_layer_weights(trained):
    run_dir, model = trained[0], trained[1]
    last = events(run_dir, "layers")[-1]["layers"]  # written after the last update
    for name in ("hidden", "out"):
        layer = model.get_layer(name)
        for weight_name, values in (("kernel", layer.kernel.numpy()),
                                    ("bias", layer.bias.numpy())):  # fmt: skip
            stats = last[name]["weights"][weight_name]
            expected = [values.mean(), values.std(), values.min(), values.max()]
            got = [stats["mean"], stats["std"], stats["min"], stats["max"]]
            assert got == pytest.approx(expected, rel=1e-5, abs=1e-7)
            counts, edges = np.histogram(values, bins=30)
            # a value on a bin edge may fall either side of it in float32 (one value, one bin)
            moved = np.abs(np.array(stats["hist"]["counts"]) - counts)
            assert sum(stats["hist"]["counts"]) == counts.sum() and moved.sum() <= 2, moved
            assert stats["hist"]["edges"] == pytest.approx(edges, rel=1e-5, abs=1e-7)


def test_layer_stats_are_keyed_by_layer_name_with_gradient_norms(trained):
    layers = events(trained[0], "layers")[-1]["layers"]
    assert set(layers) == {"features", "hidden", "out"}
    assert layers["hidden"]["grad_norm"] > 0 and layers["out"]["grad_norm"] > 0
    assert layers["hidden"]["grad_flag"] is None
    assert "grad_norm" not in layers["features"]  # no weights, no gradient


def test_output_preview_pairs_prediction_with_target(trained):
    run_dir, _, _, y = trained
    preview = events(run_dir, "layers")[-1]["layers"]["out"]["preview"]
    assert preview["kind"] == "output"
    assert preview["target"] == y[:PREVIEW_SAMPLES].tolist()
    assert len(preview["prediction"]) == PREVIEW_SAMPLES
    assert all(len(row) == 1 and 0 <= row[0] <= 1 for row in preview["prediction"])


def test_system_use_is_written(trained):
    system = events(trained[0], "system")
    assert system and system[-1]["memory_mb"] > 0 and "cpu_percent" in system[-1]


def test_run_directory_gets_status_and_run_info(trained):
    run_dir = trained[0]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    assert json.loads((run_dir / "run.json").read_text())["source"] == "callback"
    assert [event["state"] for event in events(run_dir, "status")] == ["running", "finished"]


# -- problems the callback warns about ---------------------------------------------------------


@pytest.fixture(scope="module")
def dead_relus(tmp_path_factory) -> Path:
    """A ReLU layer whose bias of -100 keeps every output at zero, so no gradient reaches it."""
    run_dir = tmp_path_factory.mktemp("dead")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu", name="dead",
                           bias_initializer=keras.initializers.Constant(-100.0)),
        keras.layers.Dense(1, name="out"),
    ])  # fmt: skip
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    fit(model, x, y, LayerFlowCallback(run_dir, cadence=EVERY_STATISTIC, sample=(x[:8], y[:8])))
    return run_dir


def test_zero_fraction_of_activations(dead_relus):
    layers = events(dead_relus, "layers")[-1]["layers"]
    assert layers["dead"]["activation"]["zero_fraction"] == 1.0
    assert layers["out"]["activation"]["zero_fraction"] < 1.0


def test_dead_relus_are_warned_with_their_layer(dead_relus):
    [warning] = warnings(dead_relus, "dead_relu")
    assert warning["layer"] == "dead" and "leaky_relu" in warning["message"]


def test_vanishing_gradients_are_flagged_and_warned(dead_relus):
    layers = events(dead_relus, "layers")[-1]["layers"]
    assert layers["dead"]["grad_flag"] == "vanishing"
    assert layers["out"]["grad_flag"] is None
    assert [warning["layer"] for warning in warnings(dead_relus, "vanishing_gradients")] == ["dead"]


@pytest.fixture(scope="module")
def nan_loss(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("nan")
    x, y = classifier_data(40)
    y = y.astype("float32")
    y[0] = np.nan  # the first batch makes the weights NaN, and so every later loss
    fit(classifier(0.01), x, y, LayerFlowCallback(run_dir), epochs=2)
    return run_dir


def test_nan_loss_is_warned_once_with_its_likely_cause(nan_loss):
    [warning] = warnings(nan_loss, "nan_loss")
    assert "learning rate" in warning["message"] and "normalized" in warning["message"]


def test_nan_loss_fails_the_run(nan_loss):
    status = json.loads((nan_loss / "status.json").read_text())
    assert status["state"] == "failed" and "NaN" in status["reason"]


def run_epochs(run_dir: Path, losses: list[float]) -> None:
    """Feed the callback epoch ends with these training losses, as fit would."""
    model = classifier(0.01)
    callback = LayerFlowCallback(run_dir, cadence={"layers_every_epochs": None})
    callback.set_model(model)
    callback.set_params({"epochs": len(losses), "steps": 1, "verbose": 0})
    callback.on_train_begin()
    for epoch, loss in enumerate(losses):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": loss})
    callback.on_train_end({"loss": losses[-1]})


def test_loss_three_times_its_best_is_diverging(tmp_path):
    run_epochs(tmp_path, [1.0, 0.5, 2.0, 1.9])
    [warning] = warnings(tmp_path, "loss_diverging")
    assert warning["epoch"] == 2 and "learning rate" in warning["message"]


def test_loss_rising_three_epochs_in_a_row_is_diverging(tmp_path):
    run_epochs(tmp_path, [1.0, 1.1, 1.2, 1.0, 1.1, 1.2, 1.3])
    assert [warning["epoch"] for warning in warnings(tmp_path, "loss_diverging")] == [6]


def test_plateau_is_warned_once_per_onset(tmp_path):
    run_epochs(tmp_path, [1.0] * 7 + [0.5] + [0.5] * 5)
    plateaus = warnings(tmp_path, "loss_plateau")
    assert [warning["epoch"] for warning in plateaus] == [5, 12]
    assert "bigger model" in plateaus[0]["message"]


# -- previews of convolutions ------------------------------------------------------------------


def test_feature_map_previews_are_small(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((40, 40, 1)),
        keras.layers.Conv2D(6, 3, padding="same", name="conv"),
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ])  # fmt: skip
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((20, 40, 40, 1)).astype("float32")
    y = np.arange(20) % 3
    fit(model, x, y, LayerFlowCallback(tmp_path, cadence=EVERY_STATISTIC, sample=(x[:4], y[:4])))
    preview = events(tmp_path, "layers")[-1]["layers"]["conv"]["preview"]
    assert preview["kind"] == "feature_maps" and preview["shape"] == [40, 40, 6]
    assert len(preview["maps"]) == PREVIEW_MAPS
    for feature_map in preview["maps"]:
        assert len(feature_map) == PREVIEW_SIZE and {len(row) for row in feature_map} == {32}
        assert all(round(value, 3) == value for row in feature_map for value in row)


def test_feature_maps_of_deep_models_share_a_size_budget(tmp_path):
    keras.utils.set_random_seed(0)
    convs = [keras.layers.Conv2D(4, 3, padding="same", name=f"conv{i}") for i in range(8)]
    head = [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)]
    model = keras.Sequential([keras.Input((40, 40, 1)), *convs, *head])
    model.compile("adam", "mse")
    x = np.random.default_rng(0).random((20, 40, 40, 1)).astype("float32")
    y = x.mean(axis=(1, 2))
    fit(model, x, y, LayerFlowCallback(tmp_path, cadence=EVERY_STATISTIC, sample=(x[:4], y[:4])))
    layers = events(tmp_path, "layers")[-1]["layers"]
    # 8 layers x 4 maps share PREVIEW_VALUES = 8192 values: 16 x 16 each
    assert {len(layers[f"conv{i}"]["preview"]["maps"][0]) for i in range(8)} == {16}


# -- cadence -----------------------------------------------------------------------------------


def test_layer_stats_every_n_batches(tmp_path):
    x, y = classifier_data(40)
    cadence = {"layers_every_batches": 3, "layers_every_epochs": None, **EVERY_STATISTIC}
    fit(classifier(0.01), x, y, LayerFlowCallback(tmp_path, cadence=cadence, sample=(x, y)),
        epochs=2)  # fmt: skip
    assert [event["step"] for event in events(tmp_path, "layers")] == [3, 6, 9, 12, 15, 18]


def test_layer_stats_over_their_time_share_wait_but_not_at_the_last_epoch(tmp_path):
    x, y = classifier_data(40)
    # Any time is over this share; the first call (the probe's trace) is not counted.
    callback = LayerFlowCallback(tmp_path, cadence={"layers_max_share": 1e-9}, sample=(x, y))
    fit(classifier(0.01), x, y, callback, epochs=5)
    assert [event["epoch"] for event in events(tmp_path, "layers")] == [0, 1, 4]


def test_cadence_accepts_a_dict_of_its_fields():
    assert Cadence.of({"batch_metrics_every": 3}) == Cadence(batch_metrics_every=3)
    assert Cadence.of(None) == Cadence()


def test_cadence_names_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys for `cadence`: batch_every"):
        Cadence.of({"batch_every": 3})


def test_cadence_names_an_invalid_value():
    with pytest.raises(ValueError, match=r"`batch_metrics_every`.*Received: batch_metrics_every=0"):
        Cadence(batch_metrics_every=0)


# -- runs outside LayerFlow: "your own script, our dashboard" ------------------------------------


def test_model_name_makes_a_finished_run_in_the_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(tmp_path))
    x, y = classifier_data(40)
    callback = LayerFlowCallback(model_name="My model")
    fit(classifier(0.01), x, y, callback)
    # named as app.workspace.runs does
    [run_dir] = (tmp_path / "models" / "my-model" / "runs").iterdir()
    assert callback.run_dir == run_dir
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["epoch"] == status["epochs"] == 1
    info = json.loads((run_dir / "run.json").read_text())
    assert info["source"] == "callback" and info["model"] == "my-model" and info["created"] > 0
    assert len(events(run_dir, "epoch")) == 1


def test_a_script_run_is_listed_with_the_runners_runs(tmp_path, monkeypatch):
    from app.workspace import Workspace

    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(tmp_path))
    x, y = classifier_data(40)
    callback = LayerFlowCallback(model_name="mine")
    fit(classifier(0.01), x, y, callback, validation_data=(x, y))
    [row] = Workspace.current().runs("mine")
    assert row["dir"] == str(callback.run_dir) and row["state"] == "finished"
    assert row["best"]["monitor"] == "val_loss"


def test_an_existing_status_is_left_to_its_owner(tmp_path):
    status = '{"state": "running", "reason": "", "owner": "runner"}'
    (tmp_path / "status.json").write_text(status)
    x, y = classifier_data(40)
    fit(classifier(0.01), x, y, LayerFlowCallback(tmp_path))
    assert (tmp_path / "status.json").read_text() == status
    assert events(tmp_path, "status") == []


def test_model_name_must_be_a_non_empty_string():
    with pytest.raises(ValueError, match="`model_name`.*Received: model_name=''"):
        LayerFlowCallback(model_name="")


def test_run_dir_and_model_name_are_exclusive(tmp_path):
    with pytest.raises(ValueError, match="both `run_dir` and `model_name`"):
        LayerFlowCallback(tmp_path, model_name="mine")


def test_a_fit_that_raises_leaves_a_failed_run(tmp_path):
    script = textwrap.dedent(f"""
        import keras, numpy as np
        from app.keras.livestats import LayerFlowCallback

        class Crash(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                raise RuntimeError("crash")

        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        callbacks = [LayerFlowCallback({str(tmp_path)!r}), Crash()]
        model.fit(np.zeros((8, 2)), np.zeros((8, 1)), epochs=2, callbacks=callbacks, verbose=0)
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "crash" in result.stderr
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "failed"
    assert [event["state"] for event in events(tmp_path, "status")] == ["running", "failed"]
