"""Training settings: Keras-like messages for bad values, kept beside the graph, and what they
make of a graph: losses, metrics, optimizer, schedule and callbacks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.graph.document import parse
from app.graph.model_templates import load_template
from app.keras.builder import build_model
from app.runtime import training
from app.runtime.training import (
    DEFAULTS,
    balanced_class_weight,
    build_optimizer,
    callbacks,
    monitor_mode,
)
from app.train.settings import (
    TrainingSettings,
    TrainingSettingsError,
    check,
    compile_model,
    load_settings,
    log_names,
    output_losses,
    output_metrics,
    save_settings,
    settings_path,
)
from tests.graphs import chain

CLASSIFIER = chain(
    ("features", "Input", {"shape": [4]}),
    ("dense", "Dense", {"units": 8}),
    ("label", "Output", {"units": 3, "activation": "softmax"}),
)
REGRESSOR = chain(
    ("features", "Input", {"shape": [4]}),
    ("dense", "Dense", {"units": 8}),
    ("target", "Output", {"units": 1, "activation": "linear", "loss": "mean_squared_error"}),
)
TWO_HEADS = parse(
    {
        "schema_version": 1,
        "nodes": [
            {"id": "features", "component": "Input", "settings": {"shape": [4]}},
            {"id": "dense", "component": "Dense", "settings": {"units": 8}},
            {"id": "kind", "component": "Output", "settings": {"units": 3}},
            {"id": "size", "component": "Output",
             "settings": {"units": 1, "activation": "linear", "loss": "huber"}},
        ],
        "edges": [
            {"source": "features", "target": "dense"},
            {"source": "dense", "target": "kind"},
            {"source": "dense", "target": "size"},
        ],
    }
)  # fmt: skip


def messages(data: dict) -> list[str]:
    with pytest.raises(TrainingSettingsError) as caught:
        TrainingSettings.from_dict(data)
    return caught.value.messages


# Validation


def test_the_defaults_are_valid_settings():
    settings = TrainingSettings()
    assert settings.optimizer == "adam" and settings.schedule == "constant"
    assert settings.strategy == "default" and settings.patience is None
    assert settings.learning_rate > 0 and settings.batch_size >= 1 and settings.epochs >= 1


def test_a_negative_learning_rate_is_refused_naming_the_setting_keras_style():
    assert messages({"learning_rate": -1}) == [
        "Received an invalid value for `learning_rate`, expected a number > 0. "
        "Received: learning_rate=-1"
    ]


def test_an_unknown_optimizer_is_refused_listing_the_choices():
    (message,) = messages({"optimizer": "lamb"})
    assert "`optimizer`" in message and "adam, adamw, sgd, rmsprop, adagrad" in message
    assert message.endswith("Received: optimizer='lamb'")


def test_an_unknown_setting_is_refused_by_name():
    (message,) = messages({"learnin_rate": 0.1})
    assert message.startswith("Unknown training setting `learnin_rate`")


def test_a_boolean_is_not_taken_for_a_number():
    (message,) = messages({"batch_size": True})
    assert "`batch_size`, expected an integer in [1, 65536]" in message


def test_an_unknown_metric_is_refused():
    (message,) = messages({"metrics": ["accuracy", "f1"]})
    assert "`metrics`" in message and "Received: metrics=['accuracy', 'f1']" in message


def test_every_bad_setting_gets_its_own_message():
    found = messages({"epochs": 0, "momentum": 1.5, "schedule": "linear"})
    assert [m.split("`")[1] for m in found] == ["momentum", "schedule", "epochs"]


def test_changes_are_validated_too():
    with pytest.raises(TrainingSettingsError, match="`epochs`"):
        TrainingSettings().with_changes(epochs=0)
    assert TrainingSettings().with_changes(epochs=3, learning_rate=None).epochs == 3


def test_settings_cannot_be_changed_in_place():
    with pytest.raises(Exception, match="frozen"):
        TrainingSettings().epochs = 0


# Kept beside the graph


def test_settings_are_saved_beside_the_graph_and_read_back(tmp_path):
    graph = tmp_path / "model.json"
    settings = TrainingSettings(optimizer="sgd", learning_rate=0.1, epochs=7)
    save_settings(settings, graph)
    assert settings_path(graph) == tmp_path / "model.training.json"
    assert load_settings(graph) == settings


def test_a_graph_without_settings_trains_with_the_defaults(tmp_path):
    assert load_settings(tmp_path / "model.json") == TrainingSettings()


def test_a_bad_settings_file_is_refused_naming_the_file_and_setting(tmp_path):
    settings_path(tmp_path / "model.json").write_text(json.dumps({"batch_size": 0}))
    with pytest.raises(TrainingSettingsError, match=r"model\.training\.json: .*`batch_size`"):
        load_settings(tmp_path / "model.json")


# What the settings make of a graph


def test_each_output_keeps_its_own_loss_unless_the_settings_name_one():
    assert output_losses(TrainingSettings(), TWO_HEADS) == {
        "kind": "sparse_categorical_crossentropy",
        "size": "huber",
    }
    assert output_losses(TrainingSettings(loss="mean_absolute_error"), REGRESSOR) == {
        "target": "mean_absolute_error"
    }


def test_metrics_default_to_accuracy_for_classes_and_mae_for_values():
    assert output_metrics(TrainingSettings(), TWO_HEADS) == {"kind": ["accuracy"],
                                                             "size": ["mae"]}  # fmt: skip


def test_log_names_follow_keras_for_one_and_several_outputs():
    assert log_names(TrainingSettings(), CLASSIFIER) == ["loss", "accuracy"]
    assert log_names(TrainingSettings(), TWO_HEADS) == [
        "loss", "kind_loss", "kind_accuracy", "size_loss", "size_mae"
    ]  # fmt: skip


def test_a_binary_only_metric_on_a_regression_output_is_refused():
    (problem,) = check(TrainingSettings(metrics=["auc"]), REGRESSOR)
    assert "auc needs a binary classification Output" in problem and "'target'" in problem


def test_a_monitor_the_run_will_not_log_is_refused():
    (problem,) = check(TrainingSettings(monitor="val_auc"), CLASSIFIER)
    assert "`monitor`" in problem and "val_accuracy" in problem


def test_balanced_class_weights_need_a_classification_output():
    (problem,) = check(TrainingSettings(class_weight="balanced"), REGRESSOR)
    assert "`class_weight`" in problem


def test_accuracy_is_maximized_and_losses_minimized():
    assert monitor_mode("val_accuracy") == "max"
    assert monitor_mode("kind_accuracy") == "max"
    assert monitor_mode("val_loss") == "min"
    assert monitor_mode("val_mae") == "min"


def test_balanced_class_weights_make_each_class_weigh_the_same_in_total():
    weights = balanced_class_weight([0, 0, 0, 1])
    assert weights == {0: 4 / 6, 1: 2.0}
    assert weights[0] * 3 == pytest.approx(weights[1] * 1)


# Keras


@pytest.mark.parametrize(
    ("settings", "kind", "setting", "value"),
    [
        ({"optimizer": "sgd", "momentum": 0.8, "nesterov": True}, "SGD", "momentum", 0.8),
        ({"optimizer": "adamw"}, "AdamW", "weight_decay", 0.004),
        ({"optimizer": "adam", "beta_1": 0.8}, "Adam", "beta_1", 0.8),
        ({"optimizer": "rmsprop", "rho": 0.5}, "RMSprop", "rho", 0.5),
        ({"optimizer": "adagrad", "clipnorm": 1.0}, "Adagrad", "clipnorm", 1.0),
    ],
)
def test_the_optimizer_is_built_with_its_settings(settings, kind, setting, value):
    optimizer = build_optimizer(TrainingSettings.from_dict(settings), steps_per_epoch=10)
    assert type(optimizer).__name__ == kind
    assert getattr(optimizer, setting) == pytest.approx(value)


def rates_at(optimizer, steps: list[int]) -> list[float]:
    """The learning rate the optimizer applies after each number of steps."""
    found = []
    for step in steps:
        optimizer.iterations.assign(step)
        found.append(float(optimizer.learning_rate))
    return found


def test_a_step_schedule_decays_every_so_many_epochs():
    settings = TrainingSettings(schedule="step", learning_rate=0.1, decay_every=2,
                                decay_factor=0.5)  # fmt: skip
    optimizer = build_optimizer(settings, steps_per_epoch=10)
    assert rates_at(optimizer, [0, 19, 20, 40]) == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_a_cosine_schedule_ends_at_the_minimum_learning_rate():
    settings = TrainingSettings(schedule="cosine", learning_rate=0.1, min_learning_rate=0.01,
                                epochs=4)  # fmt: skip
    optimizer = build_optimizer(settings, steps_per_epoch=5)
    assert rates_at(optimizer, [0, 20]) == pytest.approx([0.1, 0.01])


def test_plain_settings_build_the_same_optimizer_with_defaults_for_those_left_out():
    # An exported project's params.yaml holds the settings as plain values.
    plain = build_optimizer({"optimizer": "adamw", "learning_rate": 0.01}, steps_per_epoch=10)
    same = build_optimizer(TrainingSettings(optimizer="adamw", learning_rate=0.01), 10)
    assert type(plain) is type(same)
    assert {**plain.get_config(), "name": None} == {**same.get_config(), "name": None}


def test_the_runtime_defaults_are_the_training_settings_defaults():
    defaults = TrainingSettings().model_dump()
    assert {name: defaults[name] for name in DEFAULTS} == DEFAULTS


def test_an_unknown_optimizer_name_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="`optimizer`.*optimizer='adamx'"):
        build_optimizer({"optimizer": "adamx"}, steps_per_epoch=1)


def test_steps_per_epoch_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="`steps_per_epoch`"):
        build_optimizer(TrainingSettings(), steps_per_epoch=0)


def test_one_output_compiles_with_its_loss_and_metric():
    model = compile_model(build_model(CLASSIFIER), TrainingSettings(), CLASSIFIER)
    logs = model.evaluate(np.zeros((2, 4)), np.array([0, 1]), return_dict=True, verbose=0)
    assert model.loss == "sparse_categorical_crossentropy"
    assert sorted(logs) == ["accuracy", "loss"]


def test_several_outputs_compile_with_a_loss_each_by_node_id():
    model = compile_model(build_model(TWO_HEADS), TrainingSettings(), TWO_HEADS)
    targets = {"kind": np.array([0, 1]), "size": np.array([0.5, 1.5])}
    logs = model.evaluate(np.zeros((2, 4)), targets, return_dict=True, verbose=0)
    assert model.loss == {"kind": "sparse_categorical_crossentropy", "size": "huber"}
    assert set(log_names(TrainingSettings(), TWO_HEADS)) <= set(logs)


def test_plain_outputs_compile_as_a_project_gives_them():
    outputs = {"kind": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
               "size": {"loss": "huber", "metrics": ["mae"]}}  # fmt: skip
    model = training.compile_model(build_model(TWO_HEADS), {}, outputs, steps_per_epoch=1)
    assert model.loss == {"kind": "sparse_categorical_crossentropy", "size": "huber"}
    assert type(model.optimizer).__name__ == "Adam"


def test_compiling_refuses_settings_that_do_not_suit_the_graph():
    with pytest.raises(TrainingSettingsError, match="auc"):
        compile_model(build_model(REGRESSOR), TrainingSettings(metrics=["auc"]), REGRESSOR)


def test_early_stopping_and_plateau_callbacks_follow_the_settings():
    assert callbacks(TrainingSettings()) == []
    found = callbacks(TrainingSettings(patience=4, monitor="val_accuracy",
                                       schedule="reduce_on_plateau"))  # fmt: skip
    stopping, plateau = found
    assert (type(stopping).__name__, stopping.patience, stopping.monitor) == (
        "EarlyStopping", 4, "val_accuracy"
    )  # fmt: skip
    assert type(plateau).__name__ == "ReduceLROnPlateau" and plateau.monitor == "val_accuracy"


def test_without_validation_rows_the_callbacks_watch_the_training_value():
    (stopping,) = callbacks(TrainingSettings(patience=2), validation=False)
    assert stopping.monitor == "loss"


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("name", ["learning_rate", "weight_decay", "momentum", "min_learning_rate"])
def test_non_finite_numbers_are_refused_naming_the_setting(name, value):
    with pytest.raises(TrainingSettingsError, match=f"Received an invalid value for `{name}`"):
        TrainingSettings.from_dict({name: value})


def test_layerflow_train_refuses_lr_inf_before_a_run_is_made(workspace, capsys):
    from app.cli.main import main

    graph = workspace / "g.json"
    graph.parent.mkdir(parents=True, exist_ok=True)
    graph.write_text(load_template("tabular_classification").to_json())
    assert main(["train", str(graph), "--data", "nope", "--lr", "inf"]) == 1
    err = capsys.readouterr().err
    assert "`learning_rate`" in err and len(err.strip().splitlines()) == 1
    assert not (workspace / "models").exists()
