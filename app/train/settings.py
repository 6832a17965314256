"""Training settings: how a graph is trained, kept in the project beside the graph as JSON.

`TrainingSettings` holds the optimizer and its settings, the learning rate and its schedule,
batch size, epochs, loss, metrics, early stopping, class weights, precision, seed, strategy and
the cadence of live statistics. A bad value fails at once, Keras-style, naming the setting:
"Received an invalid value for `learning_rate`, expected a number > 0. Received:
learning_rate=-1".

`build_optimizer` and `compile_model` turn the settings and the graph's Output nodes into a
compiled Keras model: one loss per Output (from its settings unless the settings name one),
accuracy for classification and mean absolute error for regression unless metrics are given.

Importing this module does not import TensorFlow; the functions that need it import it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.files import atomic_write_text
from app.graph.components import CATALOGUE
from app.graph.components.core import LOSSES
from app.graph.document import GraphDocument

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad")
SCHEDULES = ("constant", "step", "cosine", "reduce_on_plateau")
STRATEGIES = ("default", "mirrored", "multi_worker")
CLASS_WEIGHTS = ("none", "balanced")
# Metric name -> whether a larger value is better (the direction early stopping watches).
METRICS: dict[str, bool] = {
    "accuracy": True,
    "auc": True,
    "precision": True,
    "recall": True,
    "mae": False,
    "mse": False,
    "rmse": False,
}
BINARY_ONLY = ("auc", "precision", "recall")
CROSSENTROPIES = (
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
)
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
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    optimizer: Literal["adam", "adamw", "sgd", "rmsprop", "adagrad"] = _setting(
        "adam", f"one of {', '.join(OPTIMIZERS)}", "The optimizer."
    )
    learning_rate: float = _setting(3e-3, "a number > 0", "The (initial) learning rate.", gt=0)
    momentum: float = _setting(0.9, "a number in [0, 1)", "sgd: momentum (0 for none).", ge=0, lt=1)
    nesterov: bool = _setting(False, "true or false", "sgd: Nesterov momentum.")
    beta_1: float = _setting(0.9, "a number in [0, 1)", "adam, adamw: beta_1.", ge=0, lt=1)
    beta_2: float = _setting(0.999, "a number in [0, 1)", "adam, adamw: beta_2.", ge=0, lt=1)
    rho: float = _setting(0.9, "a number in [0, 1)", "rmsprop: discounting factor.", ge=0, lt=1)
    weight_decay: float | None = _setting(
        None,
        "a number >= 0 or null",
        "Decoupled weight decay; null: 0.004 for adamw, else none.",
        ge=0,
    )
    clipnorm: float | None = _setting(
        None, "a number > 0 or null", "Clip each gradient to this norm; null: no clipping.", gt=0
    )
    schedule: Literal["constant", "step", "cosine", "reduce_on_plateau"] = _setting(
        "constant", f"one of {', '.join(SCHEDULES)}", "How the learning rate changes."
    )
    decay_every: int = _setting(
        10, "an integer >= 1", "step: epochs between two decays of the learning rate.", ge=1
    )
    decay_factor: float = _setting(
        0.5, "a number in (0, 1)", "step, reduce_on_plateau: factor of each decay.", gt=0, lt=1
    )
    plateau_patience: int = _setting(
        3, "an integer >= 1", "reduce_on_plateau: epochs without improvement before a decay.", ge=1
    )
    min_learning_rate: float = _setting(
        0.0, "a number >= 0", "cosine, reduce_on_plateau: the lowest learning rate.", ge=0
    )
    batch_size: int = _setting(32, "an integer in [1, 65536]", "Samples per batch.", ge=1, le=65536)
    epochs: int = _setting(
        30, "an integer in [1, 100000]", "Passes over the train split.", ge=1, le=100_000
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
        None,
        "an integer >= 1 or null",
        "Early stopping: epochs without improvement of `monitor` "
        "before training stops; null: no early stopping.",
        ge=1,
    )
    monitor: str = _setting(
        "val_loss",
        "loss, val_loss, or a metric name with or without val_",
        "What early stopping, reduce_on_plateau and the best checkpoint watch.",
        pattern=r"^(val_)?[a-z][a-z0-9_]*$",
    )
    class_weight: Literal["none", "balanced"] = _setting(
        "none", "one of none, balanced", "balanced: weigh classes inversely to their frequency."
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

    def effective_weight_decay(self) -> float | None:
        if self.weight_decay is None:
            return 0.004 if self.optimizer == "adamw" else None
        return self.weight_decay or None


def _invalid(name: str, expected: str, value: Any) -> str:
    return (
        f"Received an invalid value for `{name}`, expected {expected}. Received: {name}={value!r}"
    )


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
            messages.append(_invalid(name, expected, data.get(name)))
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
        node: list(settings.metrics)
        if settings.metrics is not None
        else ["accuracy" if loss in CROSSENTROPIES else "mae"]
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


def monitor_mode(monitor: str) -> Literal["min", "max"]:
    """Whether a smaller or a larger value of `monitor` is better."""
    name = monitor.removeprefix("val_")
    for metric, larger_is_better in METRICS.items():
        if name == metric or name.endswith(f"_{metric}"):
            return "max" if larger_is_better else "min"
    return "min"


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
        problems.append(_invalid("monitor", f"one of {', '.join(known)}", settings.monitor))
    if settings.class_weight == "balanced":
        if len(losses) != 1 or next(iter(losses.values())) not in CROSSENTROPIES:
            problems.append(
                "Received an invalid value for `class_weight`: balanced class weights need one "
                "classification Output. Received: class_weight='balanced'"
            )
    return problems


def effective_monitor(settings: TrainingSettings, validation: bool) -> str:
    """The monitor, without its val_ prefix when the data has no validation rows."""
    return settings.monitor if validation else settings.monitor.removeprefix("val_")


def balanced_class_weight(labels: Sequence[int]) -> dict[int, float]:
    """Class id -> n / (classes * count): each class weighs as much in total."""
    counts: dict[int, int] = {}
    for label in labels:
        counts[int(label)] = counts.get(int(label), 0) + 1
    total, classes = sum(counts.values()), len(counts)
    return {label: total / (classes * count) for label, count in sorted(counts.items())}


def params(settings: TrainingSettings) -> dict[str, Any]:
    """The hyperparameters, flat and plain, for params.yaml."""
    return settings.model_dump(mode="json")


# Keras


def build_optimizer(settings: TrainingSettings, steps_per_epoch: int):
    """The Keras optimizer, with the learning rate schedule (step and cosine count batches,
    so they need `steps_per_epoch`; reduce_on_plateau is a callback, see `callbacks`)."""
    import keras

    if (
        isinstance(steps_per_epoch, bool)
        or not isinstance(steps_per_epoch, int)
        or (steps_per_epoch < 1)
    ):
        raise ValueError(_invalid("steps_per_epoch", "an integer >= 1", steps_per_epoch))
    rate: Any = settings.learning_rate
    if settings.schedule == "step":
        rate = keras.optimizers.schedules.ExponentialDecay(
            settings.learning_rate,
            decay_steps=settings.decay_every * steps_per_epoch,
            decay_rate=settings.decay_factor,
            staircase=True,
        )
    elif settings.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            settings.learning_rate,
            decay_steps=settings.epochs * steps_per_epoch,
            alpha=min(settings.min_learning_rate / settings.learning_rate, 1.0),
        )
    common: dict[str, Any] = {"learning_rate": rate, "clipnorm": settings.clipnorm}
    decay = settings.effective_weight_decay()
    if settings.optimizer == "adam":
        return keras.optimizers.Adam(
            beta_1=settings.beta_1, beta_2=settings.beta_2, weight_decay=decay, **common
        )
    if settings.optimizer == "adamw":
        return keras.optimizers.AdamW(
            beta_1=settings.beta_1, beta_2=settings.beta_2, weight_decay=decay, **common
        )
    if settings.optimizer == "sgd":
        return keras.optimizers.SGD(
            momentum=settings.momentum, nesterov=settings.nesterov, weight_decay=decay, **common
        )
    if settings.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(rho=settings.rho, weight_decay=decay, **common)
    return keras.optimizers.Adagrad(weight_decay=decay, **common)


def _metric(name: str, loss: str):
    import keras

    if name == "accuracy":
        accuracy = {
            "sparse_categorical_crossentropy": keras.metrics.SparseCategoricalAccuracy,
            "categorical_crossentropy": keras.metrics.CategoricalAccuracy,
        }.get(loss, keras.metrics.BinaryAccuracy)
        return accuracy(name="accuracy")
    return {
        "auc": keras.metrics.AUC,
        "precision": keras.metrics.Precision,
        "recall": keras.metrics.Recall,
        "mae": keras.metrics.MeanAbsoluteError,
        "mse": keras.metrics.MeanSquaredError,
        "rmse": keras.metrics.RootMeanSquaredError,
    }[name](name=name)


def compile_model(model, settings: TrainingSettings, doc: GraphDocument, steps_per_epoch: int = 1):
    """Compile `model` (built from `doc`) with the settings' optimizer, a loss per Output and
    the metrics; returns the model. Outputs are keyed by node id when there are several."""
    problems = check(settings, doc)
    problems = [p for p in problems if "`monitor`" not in p]  # the monitor is the runner's
    if problems:
        raise TrainingSettingsError(problems)
    losses = output_losses(settings, doc)
    metrics = {
        node: [_metric(m, losses[node]) for m in names]
        for node, names in output_metrics(settings, doc).items()
    }
    if len(losses) == 1:
        (node,) = losses
        loss_arg: Any = losses[node]
        metrics_arg: Any = metrics[node]
    else:
        loss_arg, metrics_arg = losses, metrics
    model.compile(
        optimizer=build_optimizer(settings, steps_per_epoch), loss=loss_arg, metrics=metrics_arg
    )
    return model


def callbacks(settings: TrainingSettings, validation: bool = True) -> list:
    """Early stopping and reduce_on_plateau, as the settings ask."""
    import keras

    monitor = effective_monitor(settings, validation)
    mode = monitor_mode(monitor)
    found = []
    if settings.patience is not None:
        found.append(
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=settings.patience)
        )
    if settings.schedule == "reduce_on_plateau":
        found.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                mode=mode,
                factor=settings.decay_factor,
                patience=settings.plateau_patience,
                min_lr=settings.min_learning_rate,
            )
        )
    return found


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
