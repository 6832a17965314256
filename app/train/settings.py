"""Training settings: how a graph is trained, kept in the project beside the graph as JSON.

`TrainingSettings` holds the optimizer and its settings, the learning rate and its schedule,
batch size, epochs, loss, metrics, early stopping, class weights, precision, seed, strategy and
the cadence of live statistics. A bad value fails at once, Keras-style, naming the setting:
"Received an invalid value for `learning_rate`, expected a number > 0. Received:
learning_rate=-1".

`compile_model` turns the settings and the graph's Output nodes into a compiled Keras model: one
loss per Output (from its settings unless the settings name one), accuracy for classification
and mean absolute error for regression unless metrics are given. The Keras side (optimizer,
schedule, metrics, callbacks) and the defaults it shares with exported projects are
app.runtime.training's.

Importing this module does not import TensorFlow; the functions that need it import it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.files import atomic_write_text
from app.graph.components import CATALOGUE
from app.graph.components.core import LOSSES
from app.graph.document import GraphDocument
from app.runtime import training
from app.runtime.training import (
    CROSSENTROPIES,
    DEFAULTS,
    METRICS,
    OPTIMIZERS,
    SCHEDULES,
    default_metrics,
    invalid_setting,
)

STRATEGIES = ("default", "mirrored", "multi_worker")
CLASS_WEIGHTS = ("none", "balanced")
BINARY_ONLY = ("auc", "precision", "recall")
SETTINGS_SUFFIX = ".training.json"


def _setting(default: Any, expected: str, help_text: str, **constraints: Any) -> Any:
    """A field whose error message says what it expects, in Keras' words."""
    return Field(
        default, description=help_text, json_schema_extra={"expected": expected}, **constraints
    )


class TrainingSettingsError(ValueError):
    """Training settings that cannot be used; one message per setting at fault."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("\n".join(messages))


class TrainingSettings(BaseModel):
    """How to train a graph. Every field has a default, so `TrainingSettings()` is usable."""

    # strict: true is not an integer and "3" is not a number, as a JSON reader sees them
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    optimizer: Literal[OPTIMIZERS] = _setting(  # type: ignore[valid-type]
        DEFAULTS["optimizer"], f"one of {', '.join(OPTIMIZERS)}", "The optimizer."
    )
    learning_rate: float = _setting(
        DEFAULTS["learning_rate"], "a number > 0", "The (initial) learning rate.", gt=0
    )
    momentum: float = _setting(
        DEFAULTS["momentum"], "a number in [0, 1)", "sgd: momentum (0 for none).", ge=0, lt=1
    )
    nesterov: bool = _setting(DEFAULTS["nesterov"], "true or false", "sgd: Nesterov momentum.")
    beta_1: float = _setting(
        DEFAULTS["beta_1"], "a number in [0, 1)", "adam, adamw: beta_1.", ge=0, lt=1
    )
    beta_2: float = _setting(
        DEFAULTS["beta_2"], "a number in [0, 1)", "adam, adamw: beta_2.", ge=0, lt=1
    )
    rho: float = _setting(
        DEFAULTS["rho"], "a number in [0, 1)", "rmsprop: discounting factor.", ge=0, lt=1
    )
    weight_decay: float | None = _setting(
        DEFAULTS["weight_decay"],
        "a number >= 0 or null",
        "Decoupled weight decay; null: 0.004 for adamw, else none.",
        ge=0,
    )
    clipnorm: float | None = _setting(
        DEFAULTS["clipnorm"],
        "a number > 0 or null",
        "Clip each gradient to this norm; null: no clipping.",
        gt=0,
    )
    schedule: Literal[SCHEDULES] = _setting(  # type: ignore[valid-type]
        DEFAULTS["schedule"], f"one of {', '.join(SCHEDULES)}", "How the learning rate changes."
    )
    decay_every: int = _setting(
        DEFAULTS["decay_every"],
        "an integer >= 1",
        "step: epochs between two decays of the learning rate.",
        ge=1,
    )
    decay_factor: float = _setting(
        DEFAULTS["decay_factor"],
        "a number in (0, 1)",
        "step, reduce_on_plateau: factor of each decay.",
        gt=0,
        lt=1,
    )
    plateau_patience: int = _setting(
        DEFAULTS["plateau_patience"],
        "an integer >= 1",
        "reduce_on_plateau: epochs without improvement before a decay.",
        ge=1,
    )
    min_learning_rate: float = _setting(
        DEFAULTS["min_learning_rate"],
        "a number >= 0",
        "cosine, reduce_on_plateau: the lowest learning rate.",
        ge=0,
    )
    batch_size: int = _setting(32, "an integer in [1, 65536]", "Samples per batch.", ge=1, le=65536)
    epochs: int = _setting(
        DEFAULTS["epochs"],
        "an integer in [1, 100000]",
        "Passes over the train split.",
        ge=1,
        le=100_000,
    )
    loss: Literal[LOSSES] | None = _setting(  # type: ignore[valid-type]
        None,
        f"one of {', '.join(LOSSES)} or null",
        "The loss of every Output; null: each "
        "Output's own loss setting (which configuring from the data sets).",
    )
    metrics: list[Literal[tuple(METRICS)]] | None = _setting(  # type: ignore[misc]
        None,
        f"a list of {', '.join(METRICS)} or null",
        "null: accuracy for a classification Output, mae for a regression one.",
    )
    patience: int | None = _setting(
        DEFAULTS["patience"],
        "an integer >= 1 or null",
        "Early stopping: epochs without improvement of `monitor` "
        "before training stops; null: no early stopping.",
        ge=1,
    )
    monitor: str = _setting(
        DEFAULTS["monitor"],
        "loss, val_loss, or a metric name with or without val_",
        "What early stopping, reduce_on_plateau and the best checkpoint watch.",
        pattern=r"^(val_)?[a-z][a-z0-9_]*$",
    )
    class_weight: Literal["none", "balanced"] = _setting(
        "none", "one of none, balanced", "balanced: weigh classes inversely to their frequency."
    )
    normal_class: str | None = _setting(
        None,
        "a class of the dataset or null",
        "Anomaly detection: the class of the normal rows, the only ones an autoencoder trains "
        "on; null: the train split's most common class.",
    )
    mixed_precision: bool = _setting(
        False, "true or false", "Compute in float16, keep weights in float32 (mixed_float16)."
    )
    seed: int = _setting(0, "an integer >= 0", "Seed of weights, dropout and shuffling.", ge=0)
    strategy: Literal["default", "mirrored", "multi_worker"] = _setting(
        "default",
        f"one of {', '.join(STRATEGIES)}",
        "mirrored: every local device; "
        "multi_worker: the cluster the TF_CONFIG environment variable describes.",
    )
    stats_cadence: int = _setting(
        10,
        "an integer >= 1",
        "Live statistics: batches between two batch events (loss and metrics) in the event log.",
        ge=1,
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingSettings:
        """Validated settings, or TrainingSettingsError with one Keras-like message per fault."""
        if not isinstance(data, dict):
            raise TrainingSettingsError(
                [f"Training settings must be a JSON object. Received: {type(data).__name__}"]
            )
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise TrainingSettingsError(_messages(err, data)) from None

    def with_changes(self, **changes: Any) -> TrainingSettings:
        """A copy with some settings changed (None values are left out), validated."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return TrainingSettings.from_dict(data)


def _messages(err: ValidationError, data: dict[str, Any]) -> list[str]:
    messages = []
    fields = TrainingSettings.model_fields
    for error in err.errors():
        name = str(error["loc"][0]) if error["loc"] else None
        if error["type"] == "extra_forbidden":
            messages.append(
                f"Unknown training setting `{name}`; the settings are: {', '.join(fields)}"
            )
        elif name in fields:
            expected = (fields[name].json_schema_extra or {})["expected"]
            messages.append(invalid_setting(name, expected, data.get(name)))
        else:  # a check across settings: pydantic prefixes our own message
            messages.append(str(error["msg"]).removeprefix("Value error, "))
    return list(dict.fromkeys(messages))


# Kept beside the graph


def settings_path(graph_path: str | os.PathLike) -> Path:
    """Where the training settings of a graph file live: `model.json` -> `model.training.json`."""
    path = Path(graph_path)
    return path.with_name(path.name.removesuffix(".json") + SETTINGS_SUFFIX)


def load_settings(graph_path: str | os.PathLike) -> TrainingSettings:
    """The settings saved beside a graph, or the defaults when there are none."""
    path = settings_path(graph_path)
    if not path.exists():
        return TrainingSettings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TrainingSettingsError(
            [f"{path}: not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}"]
        ) from None
    try:
        return TrainingSettings.from_dict(data)
    except TrainingSettingsError as err:
        raise TrainingSettingsError([f"{path}: {m}" for m in err.messages]) from None


def save_settings(settings: TrainingSettings, graph_path: str | os.PathLike) -> Path:
    return atomic_write_text(settings_path(graph_path), settings.model_dump_json(indent=2) + "\n")


# What the settings mean for a graph


def output_losses(settings: TrainingSettings, doc: GraphDocument) -> dict[str, str]:
    """Output node id -> its loss: the settings' loss, or the Output's own."""
    losses = {}
    for node in doc.nodes:
        if node.component == "Output":
            own = CATALOGUE["Output"].resolve(node.settings)[0]["loss"]
            losses[node.id] = settings.loss or own
    return losses


def output_metrics(settings: TrainingSettings, doc: GraphDocument) -> dict[str, list[str]]:
    """Output node id -> its metric names."""
    return {
        node: list(settings.metrics) if settings.metrics is not None else default_metrics(loss)
        for node, loss in output_losses(settings, doc).items()
    }


def log_names(settings: TrainingSettings, doc: GraphDocument) -> list[str]:
    """The names Keras logs for each epoch (without the val_ twins): `loss` and `<metric>` for
    one Output; `loss`, `<output>_loss` and `<output>_<metric>` for several."""
    metrics = output_metrics(settings, doc)
    if len(metrics) == 1:
        return ["loss", *next(iter(metrics.values()))]
    names = ["loss"]
    for node, node_metrics in metrics.items():
        names += [f"{node}_loss", *(f"{node}_{m}" for m in node_metrics)]
    return names


def check(settings: TrainingSettings, doc: GraphDocument) -> list[str]:
    """What keeps these settings from training this graph, one message each. (A val_ monitor
    is fine for data without validation rows: the training value is watched instead.)"""
    problems = []
    losses = output_losses(settings, doc)
    for node, metrics in output_metrics(settings, doc).items():
        for metric in metrics:
            if metric in BINARY_ONLY and losses[node] != "binary_crossentropy":
                problems.append(
                    f"Received an invalid value for `metrics`: {metric} needs a binary "
                    f"classification Output (binary_crossentropy), and Output '{node}' uses "
                    f"{losses[node]}. Received: metrics={settings.metrics!r}"
                )
            if metric == "accuracy" and losses[node] not in CROSSENTROPIES:
                problems.append(
                    f"Received an invalid value for `metrics`: accuracy needs a classification "
                    f"Output, and Output '{node}' uses {losses[node]}. "
                    f"Received: metrics={settings.metrics!r}"
                )
    names = log_names(settings, doc)
    known = names + [f"val_{n}" for n in names]
    if settings.monitor not in known:
        problems.append(
            invalid_setting("monitor", f"one of {', '.join(known)}", settings.monitor)
        )
    if settings.class_weight == "balanced":
        if len(losses) != 1 or next(iter(losses.values())) not in CROSSENTROPIES:
            problems.append(
                "Received an invalid value for `class_weight`: balanced class weights need one "
                "classification Output. Received: class_weight='balanced'"
            )
    return problems


def params(settings: TrainingSettings) -> dict[str, Any]:
    """The hyperparameters, flat and plain, for params.yaml."""
    return settings.model_dump(mode="json")


def output_params(settings: TrainingSettings, doc: GraphDocument) -> dict[str, dict[str, Any]]:
    """Output node id -> {"loss": ..., "metrics": [...]}: what each Output is trained with, as
    app.runtime.training.compile_model (and params.yaml's `train.outputs`) takes it."""
    metrics = output_metrics(settings, doc)
    return {
        node: {"loss": loss, "metrics": metrics[node]}
        for node, loss in output_losses(settings, doc).items()
    }


# Keras


def compile_model(model, settings: TrainingSettings, doc: GraphDocument, steps_per_epoch: int = 1):
    """Compile `model` (built from `doc`) with the settings' optimizer, a loss per Output and
    the metrics; returns the model. Outputs are keyed by node id when there are several."""
    problems = check(settings, doc)
    problems = [p for p in problems if "`monitor`" not in p]  # the monitor is the runner's
    if problems:
        raise TrainingSettingsError(problems)
    return training.compile_model(model, settings, output_params(settings, doc), steps_per_epoch)


def make_strategy(settings: TrainingSettings):
    """The tf.distribute strategy: the default one, MirroredStrategy over the local devices, or
    MultiWorkerMirroredStrategy over the cluster in TF_CONFIG. Create it before any other
    TensorFlow work: a multi-worker strategy must come first in its process."""
    import tensorflow as tf

    if settings.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if settings.strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def apply_precision(settings: TrainingSettings) -> None:
    """Set Keras' global dtype policy; call it before the model is built."""
    import keras

    keras.mixed_precision.set_global_policy(
        "mixed_float16" if settings.mixed_precision else "float32"
    )
