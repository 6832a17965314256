"""Training helpers an exported project shares with LayerFlow: the optimizer with its
learning-rate schedule, a model compiled with each output's loss and metrics, the callbacks that
watch `monitor` (early stopping, reduce on plateau), balanced class weights and the random
flips, rotations and zooms of images in training (`augmenter`), and Normalization layers adapted
to the train split (`adapt_normalization`).

Settings are plain values by name, as the `train` section of a project's params.yaml holds them
(LayerFlow's TrainingSettings dumped as JSON; a TrainingSettings itself will do too). A setting
left out takes its value from `DEFAULTS`, which are TrainingSettings' defaults as well. Keras is
imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

from .config import PreprocessConfig, input_names

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad")
SCHEDULES = ("constant", "step", "cosine", "reduce_on_plateau")
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
CROSSENTROPIES = (
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
)
ADAMW_WEIGHT_DECAY = 0.004  # the weight decay of adamw when none is given
DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",
    "learning_rate": 3e-3,
    "momentum": 0.9,
    "nesterov": False,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "rho": 0.9,
    "weight_decay": None,
    "clipnorm": None,
    "schedule": "constant",
    "decay_every": 10,
    "decay_factor": 0.5,
    "plateau_patience": 3,
    "min_learning_rate": 0.0,
    "epochs": 30,
    "patience": None,
    "monitor": "val_loss",
}


class _Dumped(Protocol):
    def model_dump(self) -> dict[str, Any]: ...


# The `train` settings by name (params.yaml), or TrainingSettings, which dumps them so.
Settings = Mapping[str, Any] | _Dumped


def weight_decay(optimizer: str, value: float | None) -> float | None:
    """The decoupled weight decay: `value`, or when it is None, 0.004 for adamw and none for
    the other optimizers; 0 means none."""
    if value is None:
        return ADAMW_WEIGHT_DECAY if optimizer == "adamw" else None
    return value or None


def learning_rate(settings: Settings, steps_per_epoch: int) -> Any:
    """The learning rate: a number, or a Keras schedule for step and cosine (which count
    batches, hence `steps_per_epoch`). reduce_on_plateau is a callback, see `callbacks`."""
    import keras

    values = _values(settings)
    _check_steps(steps_per_epoch)
    rate = values["learning_rate"]
    if values["schedule"] == "step":
        return keras.optimizers.schedules.ExponentialDecay(
            rate,
            decay_steps=values["decay_every"] * steps_per_epoch,
            decay_rate=values["decay_factor"],
            staircase=True,
        )
    if values["schedule"] == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            rate,
            decay_steps=values["epochs"] * steps_per_epoch,
            alpha=min(values["min_learning_rate"] / rate, 1.0),
        )
    return rate


def build_optimizer(settings: Settings, steps_per_epoch: int) -> Any:
    """The Keras optimizer the settings name, with its learning rate (`learning_rate`)."""
    import keras

    values = _values(settings)
    name = values["optimizer"]
    common: dict[str, Any] = {
        "learning_rate": learning_rate(values, steps_per_epoch),
        "clipnorm": values["clipnorm"],
        "weight_decay": weight_decay(name, values["weight_decay"]),
    }
    if name in ("adam", "adamw"):
        kind = keras.optimizers.Adam if name == "adam" else keras.optimizers.AdamW
        return kind(beta_1=values["beta_1"], beta_2=values["beta_2"], **common)
    if name == "sgd":
        return keras.optimizers.SGD(
            momentum=values["momentum"], nesterov=values["nesterov"], **common
        )
    if name == "rmsprop":
        return keras.optimizers.RMSprop(rho=values["rho"], **common)
    if name == "adagrad":
        return keras.optimizers.Adagrad(**common)
    raise ValueError(invalid_setting("optimizer", f"one of {', '.join(OPTIMIZERS)}", name))


def default_metrics(loss: str) -> list[str]:
    """The metrics of an output whose settings name none: accuracy for a classification loss,
    mean absolute error for any other."""
    return ["accuracy" if loss in CROSSENTROPIES else "mae"]


def metric(name: str, loss: str) -> Any:
    """The Keras metric `name` (a key of METRICS) of an output trained with `loss`; accuracy
    is the one that suits the loss (sparse categorical, categorical or binary)."""
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


def compile_model(
    model: Any,
    settings: Settings,
    outputs: Mapping[str, Mapping[str, Any]],
    steps_per_epoch: int,
) -> Any:
    """Compile `model` with the settings' optimizer and each output's loss and metrics; returns
    the model.

    Args:
        outputs: output name -> {"loss": a Keras loss name, "metrics": names from METRICS}, in
            the model's output order (params.yaml's `train.outputs`). With one output, loss and
            metrics are given to Keras unkeyed; with several, keyed by output name.
    """
    losses = {name: output["loss"] for name, output in outputs.items()}
    metrics = {
        name: [metric(m, losses[name]) for m in output["metrics"]]
        for name, output in outputs.items()
    }
    if len(losses) == 1:
        (name,) = losses
        loss_arg: Any = losses[name]
        metrics_arg: Any = metrics[name]
    else:
        loss_arg, metrics_arg = losses, metrics
    model.compile(
        optimizer=build_optimizer(settings, steps_per_epoch), loss=loss_arg, metrics=metrics_arg
    )
    return model


def monitor_mode(monitor: str) -> Literal["min", "max"]:
    """Whether a smaller or a larger value of `monitor` is better."""
    name = monitor.removeprefix("val_")
    for found, larger_is_better in METRICS.items():
        if name == found or name.endswith(f"_{found}"):
            return "max" if larger_is_better else "min"
    return "min"


def effective_monitor(settings: Settings, validation: bool) -> str:
    """The monitor, without its val_ prefix when the data has no validation rows."""
    monitor = _values(settings)["monitor"]
    return monitor if validation else monitor.removeprefix("val_")


def callbacks(settings: Settings, validation: bool = True) -> list:
    """Early stopping (with `patience`) and reduce_on_plateau, as the settings ask, watching
    `monitor` (its training value when there are no validation rows)."""
    import keras

    values = _values(settings)
    monitor = effective_monitor(values, validation)
    mode = monitor_mode(monitor)
    found = []
    if values["patience"] is not None:
        found.append(
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=values["patience"])
        )
    if values["schedule"] == "reduce_on_plateau":
        found.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                mode=mode,
                factor=values["decay_factor"],
                patience=values["plateau_patience"],
                min_lr=values["min_learning_rate"],
            )
        )
    return found


def adapt_normalization(model: Any, batches: Callable[[], Iterable[Any]]) -> None:
    """Adapt every Normalization layer of the model that has no given mean to the train split,
    as the templates ask: each sees the values its own input layer gives. `batches()` yields the
    model's inputs over the train split, batch by batch (called once per such layer)."""
    import keras
    import numpy as np

    for layer in model.layers:
        if not isinstance(layer, keras.layers.Normalization) or layer.input_mean is not None:
            continue
        before = keras.Model(model.inputs, layer.input)
        layer.adapt(np.concatenate([np.asarray(before(x, training=False)) for x in batches()]))


def balanced_class_weight(labels: Sequence[int]) -> dict[int, float]:
    """Class id -> n / (classes * count): each class weighs as much in total."""
    counts: dict[int, int] = {}
    for label in labels:
        counts[int(label)] = counts.get(int(label), 0) + 1
    total, classes = sum(counts.values()), len(counts)
    return {label: total / (classes * count) for label, count in sorted(counts.items())}


def augmenter(config: PreprocessConfig, seed: int) -> Callable | None:
    """Random flips, rotations and zooms of batches of images (and of their masks, with the
    same draw) in training, as a function for tf.data's map: (inputs by name[, target]) -> the
    same, augmented. None when no image feature asks for any."""
    import keras
    import tensorflow as tf

    names = input_names(config)
    specs = {names[s.column]: s for s in config.features if s.augments}
    if not specs:
        return None
    segmentation = config.target_kind == "mask"
    # Masks are moved with their image in one tensor; nearest-neighbour keeps class ids whole.
    interpolation = "nearest" if segmentation else "bilinear"
    augmenters = {}
    for name, spec in specs.items():
        layers = []
        if spec.flip:
            layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
        if spec.rotation > 0:
            layers.append(
                keras.layers.RandomRotation(
                    spec.rotation, interpolation=interpolation, seed=seed + 1
                )
            )
        if spec.zoom > 0:
            layers.append(
                keras.layers.RandomZoom(spec.zoom, interpolation=interpolation, seed=seed + 2)
            )
        augmenters[name] = layers

    def augment(inputs: dict[str, Any], *rest: Any) -> Any:
        inputs = dict(inputs)
        target = rest[0] if rest else None
        for name, layers in augmenters.items():
            image = inputs[name]
            channels = image.shape[-1]
            if segmentation and target is not None:
                image = tf.concat([image, tf.cast(target, image.dtype)[..., None]], axis=-1)
            for layer in layers:
                image = layer(image, training=True)
            if segmentation and target is not None:
                target = tf.cast(tf.round(image[..., channels]), target.dtype)
                image = image[..., :channels]
            inputs[name] = image
        return inputs if target is None else (inputs, target)

    return augment


def invalid_setting(name: str, expected: str, value: Any) -> str:
    """A bad setting's message, in Keras' words: "Received an invalid value for `epochs`,
    expected an integer >= 1. Received: epochs=0"."""
    return (
        f"Received an invalid value for `{name}`, expected {expected}. Received: {name}={value!r}"
    )


def _values(settings: Settings) -> dict[str, Any]:
    """The settings by name, DEFAULTS standing in for those left out."""
    plain = settings.model_dump() if hasattr(settings, "model_dump") else settings
    return {**DEFAULTS, **plain}


def _check_steps(steps_per_epoch: Any) -> None:
    if (
        isinstance(steps_per_epoch, bool)
        or not isinstance(steps_per_epoch, int)
        or (steps_per_epoch < 1)
    ):
        raise ValueError(invalid_setting("steps_per_epoch", "an integer >= 1", steps_per_epoch))
