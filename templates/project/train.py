"""Stage `train`: train the network of model.py on the prepared data, as LayerFlow trained
it, and save it behind its preprocessing as model/model.keras, a model of raw inputs.

    python train.py [--set train.epochs=1 ...]

Reads params.yaml (`train`: optimizer, learning rate and schedule, batch size, epochs, losses
and metrics per output, early stopping, class weights, precision, seed), model.py and prepared/;
writes model/model.keras (the weights of the best epoch by `monitor`), model/preprocessing.json
and model/history.json. `--set` changes a parameter for this run only. The preprocessing and
the training helpers are LayerFlow's own (the package runtime/).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml
from model import build_model
from runtime.config import FittedState, PreprocessConfig
from runtime.serving import arranged, raw_model_inputs, with_preprocessing
from runtime.training import (
    adapt_normalization,
    augmenter,
    balanced_class_weight,
    callbacks,
    compile_model,
    effective_monitor,
    monitor_mode,
)

PREPARED, MODEL = Path("prepared"), Path("model")


def load_params(overrides: list[str]) -> dict:
    """params.yaml, with `section.name=value` overrides (values read as YAML)."""
    params = yaml.safe_load(Path("params.yaml").read_text())
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes KEY=VALUE, received {item!r}")
        *parents, last = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[last] = yaml.safe_load(value)
    return params


def load_split(name: str) -> tuple[dict[str, np.ndarray], np.ndarray | None] | None:
    """A prepared split: raw inputs by name and targets; None when the split has no rows."""
    path = PREPARED / f"{name}.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as arrays:
        inputs = {key[2:]: arrays[key] for key in arrays.files if key.startswith("x_")}
        target = arrays["y"] if "y" in arrays.files else None
    return inputs, target


def input_names(network) -> list[str]:
    """The names of the network's Inputs, as model.py keys them."""
    if isinstance(network.input, dict):
        return list(network.input)
    return [tensor.name for tensor in network.inputs]


def batches(inputs, target, outputs, config, settings, training: bool):
    """tf.data batches of (raw inputs, targets by output); shuffled by the seed and augmented
    in training."""
    y = target if len(outputs) == 1 else {name: target for name in outputs}
    data = tf.data.Dataset.from_tensor_slices((inputs, y))
    if training:
        data = data.shuffle(len(target), seed=settings["seed"], reshuffle_each_iteration=True)
    data = data.batch(settings["batch_size"])
    augment = augmenter(config, settings["seed"]) if training else None
    if augment is not None:
        data = data.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def prepared_batches(network, config, state, inputs: dict):
    """The network's inputs over the raw train split, 1024 rows at a time: the raw rows through
    the fitted preprocessing, arranged as the network takes them."""
    raw, features = raw_model_inputs(config, state)
    prepare = keras.Model(raw, arranged(features, input_names(network)))
    rows = len(next(iter(inputs.values())))
    for start in range(0, rows, 1024):
        yield prepare({k: v[start : start + 1024] for k, v in inputs.items()})


def best_epoch(values: list[float], mode: str) -> int | None:
    """The epoch (from 1) of the best finite value, as Keras' ModelCheckpoint chose it."""
    finite = [(v, epoch) for epoch, v in enumerate(values, 1) if math.isfinite(v)]
    if not finite:
        return None
    return (min if mode == "min" else max)(finite, key=lambda pair: pair[0])[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    params = load_params(args.set)
    config = PreprocessConfig.model_validate(params["preprocessing"])
    settings = params["train"]
    if settings.get("reconstructs"):
        raise SystemExit(
            f"train.py: the model is an autoencoder (it reconstructs its input "
            f"'{settings['reconstructs']}'), which this project cannot retrain yet; retrain it "
            "in LayerFlow with `layerflow train`"
        )
    keras.utils.set_random_seed(settings["seed"])
    tf.config.experimental.enable_op_determinism()
    state = FittedState.model_validate_json((PREPARED / "preprocessing.json").read_text())
    train = load_split("train")
    if train is None or train[1] is None:
        raise SystemExit("prepared/train.npz is missing or has no targets; run prepare.py first")
    validation = load_split("validation")
    outputs = list(settings["outputs"])

    keras.mixed_precision.set_global_policy(
        "mixed_float16" if settings["mixed_precision"] else "float32"
    )
    network = build_model()
    keras.mixed_precision.set_global_policy("float32")  # preprocessing computes in float32
    adapt_normalization(network, lambda: prepared_batches(network, config, state, train[0]))
    model = with_preprocessing(network, config, state, input_names(network), outputs)
    train_data = batches(*train, outputs, config, settings, training=True)
    validation_data = None
    if validation is not None and validation[1] is not None:
        validation_data = batches(*validation, outputs, config, settings, training=False)
    steps = max(1, math.ceil(len(train[1]) / settings["batch_size"]))
    compile_model(model, settings, settings["outputs"], steps)
    monitor = effective_monitor(settings, validation_data is not None)
    class_weight = None
    if settings["class_weight"] == "balanced":
        class_weight = balanced_class_weight(train[1])
    # The best epoch's weights are the model kept, as LayerFlow exports a run's best checkpoint;
    # they wait outside model/ so that a stopped run leaves nothing half-made there.
    with tempfile.TemporaryDirectory() as scratch:
        best = Path(scratch) / "best.weights.h5"
        keep = keras.callbacks.ModelCheckpoint(
            best, monitor, mode=monitor_mode(monitor), save_best_only=True, save_weights_only=True
        )
        history = model.fit(
            train_data,
            validation_data=validation_data,
            epochs=settings["epochs"],
            class_weight=class_weight,
            callbacks=[keep, *callbacks(settings, validation_data is not None)],
            verbose=2,
        )
        if best.exists():
            model.load_weights(best)
    MODEL.mkdir(exist_ok=True)
    model.save(MODEL / "model.keras")
    shutil.copyfile(PREPARED / "preprocessing.json", MODEL / "preprocessing.json")
    values = {key: [float(v) for v in found] for key, found in history.history.items()}
    epoch = best_epoch(values.get(monitor, []), monitor_mode(monitor))
    summary = {"monitor": monitor, "best_epoch": epoch, "history": values}
    (MODEL / "history.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"saved {MODEL / 'model.keras'} (best epoch by {monitor}: {epoch})")


if __name__ == "__main__":
    main()
