"""Live training statistics: a Keras callback that writes a run's event log as a model trains.

`LayerFlowCallback` works in LayerFlow's own runner and in any `model.fit` script ("your own
script, our dashboard"): it appends `batch`, `epoch`, `layers`, `system` and `warning` events
(see app/workspace/events.py) to the run directory, which the Train and Runs pages read. Given a
model name instead of a run directory, it makes a new run in the workspace as app.workspace.runs
names them (`models/<model slug>/runs/<run id>/`); when the run directory has no `status.json` or
`run.json`, it writes them with the fields app.workspace.runs reads, so the run is listed like any
other.

Per-layer statistics are keyed by Keras layer name, which for models built by LayerFlow is the
graph node id. Keras callbacks never see the training batches, so activation statistics,
previews and gradient norms are computed on a fixed `sample=(x, y)` given to the callback, and
skipped when there is none.
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import psutil
import tensorflow as tf

from app.files import atomic_write_text
from app.workspace import runs
from app.workspace.events import EventWriter

VANISHING_GRADIENT = 1e-7
EXPLODING_GRADIENT = 1e3
DEAD_RELU_FRACTION = 0.9
DIVERGENCE_FACTOR = 3.0  # an epoch loss this many times the best so far is diverging
RISING_EPOCHS = 3
PLATEAU_MIN_IMPROVEMENT = 1e-3  # relative; smaller gains count as no improvement

PREVIEW_SIZE = 32  # feature maps and spatial outputs are shrunk to at most this many pixels a side
PREVIEW_VALUES = 8192  # all the maps of one layers event together: deep models get smaller ones
PREVIEW_MAPS = 4
PREVIEW_SAMPLES = 4
PREVIEW_VECTOR = 32  # longer output vectors are previewed by their largest entry only


@dataclass(frozen=True)
class Cadence:
    """How often `LayerFlowCallback` records each kind of statistic.

    Args:
        batch_metrics_every: write the loss and metrics every this many training batches.
        layers_every_epochs: write layer statistics at the end of every this many epochs;
            None for never.
        layers_every_batches: also write layer statistics every this many batches; None (the
            default) for never, since layer statistics cost far more than batch metrics.
        layers_max_share: skip a layer-statistics point while they have taken more than this
            share of the training time so far (their first call, which traces the sample
            probe, aside), so that large models or short epochs get them less often rather
            than slow down; the last epoch is never skipped. None for no limit.
        system_every_seconds: write CPU, memory and GPU use at most this often.
        histogram_bins: bins of the weight and activation histograms.
    """

    batch_metrics_every: int = 10
    layers_every_epochs: int | None = 1
    layers_every_batches: int | None = None
    layers_max_share: float | None = 0.03
    system_every_seconds: float = 5.0
    histogram_bins: int = 30

    def __post_init__(self) -> None:
        for name in ("batch_metrics_every", "histogram_bins"):
            _check_positive_int(name, getattr(self, name), optional=False)
        for name in ("layers_every_epochs", "layers_every_batches"):
            _check_positive_int(name, getattr(self, name), optional=True)
        share = self.layers_max_share
        if share is not None and (
            isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1
        ):
            raise ValueError(
                "Received an invalid value for `layers_max_share`, expected a number in (0, 1] "
                f"or None. Received: layers_max_share={share!r}"
            )
        seconds = self.system_every_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(
                "Received an invalid value for `system_every_seconds`, expected a positive "
                f"number of seconds. Received: system_every_seconds={seconds!r}"
            )

    @classmethod
    def of(cls, value: Cadence | dict | None) -> Cadence:
        """A Cadence from a Cadence, a dict of its fields, or None for the defaults."""
        if value is None:
            return cls()
        if isinstance(value, Cadence):
            return value
        if not isinstance(value, dict):
            raise ValueError(
                "Received an invalid value for `cadence`, expected a Cadence, a dict or None. "
                f"Received: cadence={value!r}"
            )
        fields = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ValueError(
                f"Received unknown keys for `cadence`: {', '.join(unknown)}. Expected some of: "
                f"{', '.join(fields)}. Received: cadence={value!r}"
            )
        return cls(**value)


def _check_positive_int(name: str, value: Any, optional: bool) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = "a positive integer or None" if optional else "a positive integer"
        raise ValueError(
            f"Received an invalid value for `{name}`, expected {expected}. "
            f"Received: {name}={value!r}"
        )


class LayerFlowCallback(keras.callbacks.Callback):
    """Writes a run's live statistics to its event log while a Keras model trains.

    Batch metrics (every `cadence.batch_metrics_every` batches): loss, metrics, learning rate,
    ETA. Epoch metrics: training and validation loss and metrics, learning rate, samples per
    second, ETA. Layer statistics (at the layer cadence), keyed by layer name: every weight's
    mean, std, min, max and histogram; and, on the fixed `sample` only, each layer's gradient
    norm, its activation statistics with the fraction of zeros, and previews (the first feature
    maps of rank-4 convolution outputs, and prediction beside target for the model's outputs).
    System use every `cadence.system_every_seconds`. Warnings, once each time a condition
    begins: NaN loss, diverging loss, plateau (no improvement for `plateau_epochs` epochs), dead
    ReLUs, vanishing or exploding gradients.

    Layer statistics are taken on the training thread between steps and are the costly part;
    `cadence.layers_max_share` caps their share of the training time. Seconds spent on each
    part are summed in `timings`, to keep the cost visible.

    Args:
        run_dir: the run directory to write to. With neither `run_dir` nor `model_name`, a new
            run of the Keras model's name is made in the workspace.
        model_name: make a new run under `models/<slug of model_name>/runs/` in the
            workspace.
        cadence: a `Cadence`, or a dict of its fields; None for the defaults.
        sample: a small fixed batch `(x, y)` (say 32 samples; `y` may be None) for gradient
            norms, activations and previews. Without it only weights, metrics and system use
            are recorded: Keras callbacks are not given the training batches.
    """

    # Batch ends only read the logs Keras already converted and append to the log under a lock,
    # so Keras may call them from its thread pool and keep training meanwhile.
    async_safe = True
    plateau_epochs = 5

    def __init__(
        self,
        run_dir: str | os.PathLike | None = None,
        model_name: str | None = None,
        cadence: Cadence | dict | None = None,
        sample: tuple | None = None,
    ):
        super().__init__()
        if run_dir is not None and model_name is not None:
            raise ValueError(
                "Received both `run_dir` and `model_name`, expected one of them (or neither). "
                f"Received: run_dir={str(run_dir)!r}, model_name={model_name!r}"
            )
        if model_name is not None:
            _check_model_name(model_name)
        if sample is not None and (not isinstance(sample, tuple | list) or len(sample) != 2):
            raise ValueError(
                "Received an invalid value for `sample`, expected a tuple (x, y) of one small "
                f"batch. Received: sample of type {type(sample).__name__}"
            )
        self.cadence = Cadence.of(cadence)
        self.sample = tuple(sample) if sample is not None else None
        self.model_name = model_name
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is None and model_name is not None:
            self.run_dir = _new_run_dir(model_name)
        self.timings = dict.fromkeys(
            ("batch_metrics", "epoch_metrics", "layer_stats", "gradients", "activations",
             "system"), 0.0)  # fmt: skip
        self._lock = threading.RLock()  # warnings are written from inside locked parts
        self._writer: EventWriter | None = None
        self._owns_status: bool | None = None
        self._best: dict[str, Any] | None = None  # {monitor, value, epoch}, as the runner's
        self._exit_guard: _ExitGuard | None = None
        self._probe: _SampleProbe | None = None
        self._active_warnings: set[tuple[str, str | None]] = set()
        self._epoch_losses: list[float] = []
        self._best_loss = math.inf
        self._epochs_without_improvement = 0
        # Steps count on across fits with the same callback: a second fit continues the run.
        self._step = 0
        self._epoch = 0
        self._epoch_start_step = 0
        self._epoch_start: float | None = None
        self._train_end: float | None = None
        self._last_batch_event_step = 0
        self._last_epoch_steps: int | None = None
        self._layer_calls = 0
        self._last_layers_step = 0

    # -- Keras hooks ------------------------------------------------------------------------

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.run_dir is None:
            self.run_dir = _new_run_dir(self.model.name)
        self._start_run()
        self._epochs = self.params.get("epochs")
        self._steps = self.params.get("steps")  # None when the dataset's length is unknown
        self._epoch_durations: list[float] = []
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading only starts the measurement
        self._has_gpu = bool(tf.config.list_physical_devices("GPU"))
        self._last_system = time.monotonic()
        self._train_start = time.monotonic()
        self._layer_seconds = 0.0
        if self.sample is not None and self._probe is None:
            self._probe = _SampleProbe(self.model, self.sample, self._warn)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._epoch_start_step = self._step
        self._epoch_start = time.monotonic()
        self._train_end = None
        self._samples_seen = None

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        # Here, not at batch end: batch begins run between training steps, never beside them.
        every = self.cadence.layers_every_batches
        step = self._epoch_start_step + batch  # steps done so far
        # Not at step 0 (_last_layers_step starts there), nor twice at one step.
        due = every and step % every == 0 and step != self._last_layers_step
        if due and self._within_budget():
            self._layer_stats(step)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        started = time.perf_counter()
        logs = logs or {}
        step = self._epoch_start_step + batch + 1
        with self._lock:
            self._step = max(self._step, step)
            loss = logs.get("loss")
            if isinstance(loss, float):
                self._check_nan(loss, step)
            every = self.cadence.batch_metrics_every
            # Crossing a multiple, not landing on it, so that steps_per_execution > 1 still logs.
            if step // every != self._last_batch_event_step // every:
                self._last_batch_event_step = step
                self._write(
                    "batch", epoch=self._epoch, step=step, metrics=_numbers(logs),
                    lr=self._learning_rate(), eta_s=self._batch_eta(batch),
                )  # fmt: skip
            self.timings["batch_metrics"] += time.perf_counter() - started
        self._maybe_system()

    def on_test_begin(self, logs: dict | None = None) -> None:
        # Validation inside fit: the training part of the epoch is over, and the loss tracker
        # still counts its samples (evaluate resets it right after this hook).
        if self._epoch_start is not None and self._train_end is None:
            self._train_end = time.monotonic()
            self._samples_seen = _samples_seen(self.model)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        started = time.perf_counter()
        logs = logs or {}
        now = time.monotonic()
        if self._train_end is None:
            self._train_end = now
            self._samples_seen = _samples_seen(self.model)
        train_seconds = max(self._train_end - self._epoch_start, 1e-9)
        self._epoch_durations.append(now - self._epoch_start)
        self._last_epoch_steps = self._step - self._epoch_start_step
        remaining = self._epochs - epoch - 1 if self._epochs else None
        with self._lock:
            self._write(
                "epoch", epoch=epoch, step=self._step, metrics=_numbers(logs),
                lr=self._learning_rate(),
                samples_per_sec=_rate(self._samples_seen, train_seconds),
                steps_per_sec=_rate(self._last_epoch_steps, train_seconds),
                duration_s=round(now - self._epoch_start, 3),
                eta_s=None if remaining is None else
                round(remaining * float(np.mean(self._epoch_durations)), 1),
            )  # fmt: skip
            self._check_loss_trend(logs.get("loss"), epoch)
        if self._owns_status:  # progress for the runs list, as the runner gives its runs
            self._update_best(logs, epoch)
            runs.update_status(self.run_dir, epoch=epoch + 1, metrics=_numbers(logs),
                           best=self._best)  # fmt: skip
        self.timings["epoch_metrics"] += time.perf_counter() - started
        every = self.cadence.layers_every_epochs
        last = self._epochs is not None and epoch == self._epochs - 1
        if every and (epoch + 1) % every == 0 and (last or self._within_budget()):
            self._layer_stats(self._step)
        self._maybe_system()

    def on_train_end(self, logs: dict | None = None) -> None:
        self._maybe_system(force=True)
        if self._owns_status:
            loss = (logs or {}).get("loss")
            if isinstance(loss, float) and not math.isfinite(loss):
                self._set_status("failed", "the loss became NaN")
            else:
                self._set_status("finished", None)
            atexit.unregister(self._exit_guard)
        self._writer.close()
        self._writer = None

    # -- run directory ------------------------------------------------------------------------

    def _start_run(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._writer = EventWriter(self.run_dir)
        if self._owns_status is None:  # decided once: a second fit continues the same run
            self._owns_status = not (self.run_dir / runs.STATUS).exists()
        if not (self.run_dir / runs.RUN).exists():
            from app.workspace.runs import model_slug

            # The fields app.workspace.runs lists; a script's run has no LayerFlow dataset.
            model = model_slug(self.model_name or self.model.name)
            info = {"id": self.run_dir.name, "model": model, "data": {"name": None,
                    "version": None}, "created": time.time(), "command": list(sys.argv),
                    "source": "callback"}  # fmt: skip
            atomic_write_text(self.run_dir / runs.RUN, json.dumps(info, indent=2) + "\n")
        if self._owns_status:
            process = psutil.Process()
            runs.update_status(self.run_dir, pid=process.pid,
                           pid_started=process.create_time(), epochs=self.params.get("epochs"),
                           epoch=0, metrics={}, best=None)  # fmt: skip
            self._set_status("running", None)
            # fit does not call on_train_end when it raises: mark the run failed at exit then.
            self._exit_guard = _ExitGuard(self.run_dir / runs.STATUS)
            atexit.register(self._exit_guard)

    def _set_status(self, state: str, reason: str | None) -> None:
        runs.update_status(self.run_dir, state=state, reason=reason)
        with self._lock:
            self._write("status", state=state, reason=reason)

    def _update_best(self, logs: dict, epoch: int) -> None:
        monitor = "val_loss" if "val_loss" in logs else "loss"
        value = logs.get(monitor)
        if not isinstance(value, float) or not math.isfinite(value):
            return
        if self._best is None or self._best["monitor"] != monitor or value < self._best["value"]:
            self._best = {"monitor": monitor, "value": value, "epoch": epoch + 1}

    # -- parts --------------------------------------------------------------------------------

    def _write(self, event_type: str, **fields: Any) -> None:
        self._writer.write(event_type, **fields)

    def _learning_rate(self) -> float | None:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        try:  # a schedule is evaluated at the optimizer's current iteration by the property
            return float(optimizer.learning_rate)
        except (AttributeError, TypeError, ValueError):
            return None

    def _batch_eta(self, batch: int) -> float | None:
        steps = self._steps or self._last_epoch_steps
        if not steps or not self._epochs:
            return None
        per_step = (time.monotonic() - self._epoch_start) / (batch + 1)
        remaining = steps - batch - 1 + (self._epochs - self._epoch - 1) * steps
        return round(max(remaining, 0) * per_step, 1)

    def _maybe_system(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:  # batch ends may come here from several threads at once
            if not force and now - self._last_system < self.cadence.system_every_seconds:
                return
            self._last_system = now
        started = time.perf_counter()
        fields: dict[str, Any] = {
            "cpu_percent": self._process.cpu_percent(None),
            "memory_mb": round(self._process.memory_info().rss / 2**20, 1),
        }
        if self._has_gpu:
            try:
                info = tf.config.experimental.get_memory_info("GPU:0")
            except (ValueError, RuntimeError):  # a device TensorFlow cannot measure
                info = None
            if info:
                fields["gpu_memory_mb"] = round(info["current"] / 2**20, 1)
                fields["gpu_peak_mb"] = round(info["peak"] / 2**20, 1)
        with self._lock:
            self._write("system", **fields)
        self.timings["system"] += time.perf_counter() - started

    def _within_budget(self) -> bool:
        share = self.cadence.layers_max_share
        trained = time.monotonic() - self._train_start
        return share is None or self._layer_seconds <= share * trained

    def _layer_stats(self, step: int) -> None:
        started_all = time.perf_counter()
        self._last_layers_step = step
        bins = self.cadence.histogram_bins
        layers: dict[str, dict[str, Any]] = {}
        grad_norms, activations = {}, {}
        if self._probe is not None:
            started = time.perf_counter()
            grad_norms, outputs = self._probe.run()  # forward and backward on the sample
            self.timings["gradients"] += time.perf_counter() - started
            started = time.perf_counter()
            activations = self._probe.describe(outputs, bins)
            self.timings["activations"] += time.perf_counter() - started
        started = time.perf_counter()
        for layer in self.model.layers:
            entry: dict[str, Any] = {}
            if layer.weights:
                entry["weights"] = {
                    _weight_name(layer, weight): array_stats(weight.numpy(), bins)
                    for weight in layer.weights
                }  # fmt: skip
            if layer.name in grad_norms:
                norm = grad_norms[layer.name]
                entry["grad_norm"] = norm
                entry["grad_flag"] = self._check_gradient(layer.name, norm, step)
            if layer.name in activations:
                entry.update(activations[layer.name])
                zeros = entry["activation"]["zero_fraction"]
                if _is_relu(layer):
                    self._warn(
                        "dead_relu",
                        f"{zeros:.0%} of the outputs of ReLU layer `{layer.name}` are zero on "
                        "the sample: dead ReLUs. Lower the learning rate or use leaky_relu.",
                        active=zeros > DEAD_RELU_FRACTION, layer=layer.name, step=step,
                    )  # fmt: skip
            if entry:
                layers[layer.name] = entry
        with self._lock:
            self._write("layers", epoch=self._epoch, step=step, layers=layers)
        self.timings["layer_stats"] += time.perf_counter() - started
        if self._layer_calls:  # the first call traces the probe: a one-time cost
            self._layer_seconds += time.perf_counter() - started_all
        self._layer_calls += 1

    # -- warnings -----------------------------------------------------------------------------

    def _warn(self, code: str, message: str, active: bool = True, layer: str | None = None,
              step: int | None = None) -> None:  # fmt: skip
        """Write a warning when its condition begins; forget it when the condition ends, so
        that it is written again if the condition comes back."""
        key = (code, layer)
        with self._lock:
            if not active:
                self._active_warnings.discard(key)
                return
            if key in self._active_warnings:
                return
            self._active_warnings.add(key)
            fields = {"layer": layer} if layer is not None else {}
            self._write("warning", code=code, message=message, epoch=self._epoch,
                        step=self._step if step is None else step, **fields)  # fmt: skip

    def _check_nan(self, loss: float, step: int) -> None:
        self._warn(
            "nan_loss",
            f"The loss is {loss} at epoch {self._epoch}, step {step}: the learning rate is "
            "likely too high, or the inputs are not normalized.",
            active=not math.isfinite(loss), step=step,
        )  # fmt: skip

    def _check_loss_trend(self, loss: Any, epoch: int) -> None:
        if not isinstance(loss, float) or not math.isfinite(loss):
            return
        best = self._best_loss
        self._epoch_losses.append(loss)
        recent = self._epoch_losses[-RISING_EPOCHS - 1 :]
        rising = len(recent) > RISING_EPOCHS and all(a < b for a, b in itertools.pairwise(recent))
        self._warn(
            "loss_diverging",
            f"The loss is diverging ({loss:.4g} at epoch {epoch}, best {best:.4g}): the learning "
            "rate is likely too high. Lower it.",
            active=rising or (math.isfinite(best) and loss > DIVERGENCE_FACTOR * best > 0),
        )  # fmt: skip
        if not math.isfinite(best) or loss < best - abs(best) * PLATEAU_MIN_IMPROVEMENT:
            self._best_loss = loss
            self._epochs_without_improvement = 0
        else:
            self._epochs_without_improvement += 1
        self._warn(
            "loss_plateau",
            f"The loss has not improved for {self._epochs_without_improvement} epochs (best "
            f"{self._best_loss:.4g}): lower the learning rate, or use a bigger model.",
            active=self._epochs_without_improvement >= self.plateau_epochs,
        )  # fmt: skip

    def _check_gradient(self, name: str, norm: float, step: int) -> str | None:
        vanishing = norm < VANISHING_GRADIENT
        exploding = not math.isfinite(norm) or norm > EXPLODING_GRADIENT
        self._warn(
            "vanishing_gradients",
            f"The gradient norm of layer `{name}` is {norm:.2g} on the sample: vanishing "
            "gradients, the layer barely learns. Use ReLU-family activations, "
            "BatchNormalization, residual connections or a better initializer.",
            active=vanishing, layer=name, step=step,
        )  # fmt: skip
        self._warn(
            "exploding_gradients",
            f"The gradient norm of layer `{name}` is {norm:.3g} on the sample: exploding "
            "gradients. Lower the learning rate or clip gradients (clipnorm).",
            active=exploding, layer=name, step=step,
        )  # fmt: skip
        return "vanishing" if vanishing else "exploding" if exploding else None


class _SampleProbe:
    """Gradient norms, activations and previews of one model on one fixed batch.

    One traced function runs the sample forward through a model of every layer's output (which
    includes the model's outputs, for the loss) and back for the gradients: a few milliseconds
    a call after a one-time trace, against tens of milliseconds for each eager call."""

    def __init__(self, model: keras.Model, sample: tuple, warn: Any):
        self.model = model
        x, y = sample
        self.x = keras.tree.map_structure(tf.convert_to_tensor, x)
        self.y = None if y is None else keras.tree.map_structure(np.asarray, y)
        self._warn = warn
        self._output_names = _output_layer_names(model)
        self._layers: list = []  # the layers whose outputs the probe returns, in order
        self._graded: list = []  # the layers whose gradient norms it returns, in order
        self._preview_side = PREVIEW_SIZE
        self._function = None
        self._failed = False

    def run(self) -> tuple[dict[str, float], list[tuple[keras.layers.Layer, np.ndarray]]]:
        """The gradient norm of the loss over each layer's trainable weights (by layer name;
        none without a target or a compiled loss) and each layer's output on the sample."""
        if self._failed:
            return {}, []
        # A multi-output loss updates the per-output loss metrics: put them back afterwards.
        metrics = [variable for metric in self.model.metrics for variable in metric.variables]
        saved = [variable.numpy() for variable in metrics] if len(self._output_names) > 1 else []
        try:
            if self._function is None:
                self._function = self._build()
            outputs, squares = self._function(self.x, self.y)
        except Exception as error:  # a monitor must not stop the training it watches
            self._failed = True
            self._warn("stats_unavailable", f"Gradients and activations are off: {error}")
            return {}, []
        for variable, value in zip(metrics if saved else [], saved, strict=True):
            variable.assign(value)
        # -1 marks a layer the loss does not depend on: no norm rather than a zero one.
        norms = {layer.name: _significant(np.sqrt(value))
                 for layer, value in zip(self._graded, squares.numpy(), strict=True)
                 if value != -1}  # fmt: skip
        values = [output.numpy() for output in outputs]
        return norms, list(zip(self._layers, values, strict=True))

    def describe(self, outputs: list[tuple[keras.layers.Layer, np.ndarray]],
                 bins: int) -> dict[str, dict[str, Any]]:  # fmt: skip
        """Per layer name: {"activation": stats with zero_fraction, "preview": ...}."""
        result = {}
        for layer, values in outputs:
            if values.dtype.kind not in "fiu" or not values.size:
                continue  # token ids as strings, masks as booleans: nothing to average
            stats = array_stats(values, bins)
            stats["zero_fraction"] = round(np.count_nonzero(values == 0) / values.size, 4)
            entry: dict[str, Any] = {"activation": stats}
            if layer.name in self._output_names:
                entry["preview"] = self._output_preview(layer.name, values)
            elif values.ndim == 4 and "Conv" in type(layer).__name__:
                data_format = getattr(layer, "data_format", None)
                entry["preview"] = feature_maps(values, data_format, self._preview_side)
            result[layer.name] = entry
        return result

    def _build(self):
        model = self.model
        both = self._model_of_every_output()
        if both is None:

            def both(x, training):
                return model(x, training=training), []

        self._graded = [layer for layer in model.layers if layer.trainable_weights]
        variables = [weight for layer in self._graded for weight in layer.trainable_weights]
        with_gradients = self.y is not None and getattr(model, "loss", None) is not None
        if not with_gradients:
            self._graded = []

        def probe(x, y):
            if not with_gradients:
                return both(x, training=False)[1], tf.zeros([0])
            with tf.GradientTape() as tape:
                y_pred, outputs = both(x, training=False)
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred)
            gradients = iter(tape.gradient(loss, variables))
            squares = []
            for layer in self._graded:
                parts = [next(gradients) for _ in layer.trainable_weights]
                parts = [tf.reduce_sum(tf.square(tf.cast(tf.convert_to_tensor(g), tf.float32)))
                         for g in parts if g is not None]  # fmt: skip
                squares.append(tf.add_n(parts) if parts else tf.constant(-1.0))
            return outputs, tf.stack(squares) if squares else tf.zeros([0])

        # autograph=False: the probe has no control flow on tensors, and converting Keras'
        # code would only lengthen the trace.
        return tf.function(probe, autograph=False)

    def _model_of_every_output(self) -> keras.Model | None:
        """A model of the model's outputs and every layer's output; None when the model has no
        layer graph (a subclassed model) or it cannot be cut into one."""
        model = self.model
        layers, tensors = [], []
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                continue  # a nested model's `output` is in its own graph, not this one
            try:
                output = layer.output
            except (AttributeError, ValueError):
                continue  # a layer called twice has no single output; a subclassed model none
            if isinstance(output, keras.KerasTensor):
                layers.append(layer)
                tensors.append(output)
        if not tensors:
            return None
        try:
            both = keras.Model(_symbolic(model, "input"), [_symbolic(model, "output"), tensors])
        except ValueError as error:
            self._warn("stats_unavailable", f"Activation statistics are off: {error}")
            return None
        self._layers = layers
        maps = sum(min(PREVIEW_MAPS, tensor.shape[-1] or PREVIEW_MAPS)
                   for layer, tensor in zip(layers, tensors, strict=True)
                   if len(tensor.shape) == 4 and "Conv" in type(layer).__name__)  # fmt: skip
        maps += sum(2 * PREVIEW_SAMPLES for layer, tensor in zip(layers, tensors, strict=True)
                    if layer.name in self._output_names and len(tensor.shape) >= 3)  # fmt: skip
        self._preview_side = max(8, min(PREVIEW_SIZE, math.isqrt(PREVIEW_VALUES // max(maps, 1))))
        return both

    def _output_preview(self, name: str, prediction: np.ndarray) -> dict[str, Any]:
        target = _target_of(self.y, name, self._output_names)
        side = self._preview_side
        return {
            "kind": "output",
            "prediction": [_compact(row, side) for row in prediction[:PREVIEW_SAMPLES]],
            "target": None if target is None else
            [_compact(row, side) for row in np.asarray(target)[:PREVIEW_SAMPLES]],
        }  # fmt: skip


def _symbolic(model: keras.Model, name: str) -> Any:
    """model.input or model.output as the model declares it; a Sequential model only has the
    lists model.inputs and model.outputs."""
    try:
        return getattr(model, name)
    except (AttributeError, ValueError):
        tensors = getattr(model, name + "s")
        return tensors[0] if len(tensors) == 1 else tensors


def array_stats(values: np.ndarray, bins: int = 30) -> dict[str, Any]:
    """Mean, std, min, max and histogram {edges, counts} of an array's finite values.

    Non-finite values are left out and counted in "nonfinite", present only when there are
    any; with no finite value at all, the statistics are None."""
    values = np.asarray(values).ravel()
    low, high = (values.min(), values.max()) if values.size else (np.nan, np.nan)
    nonfinite = 0
    if not (np.isfinite(low) and np.isfinite(high)):  # min and max propagate NaN: one check
        finite = values[np.isfinite(values)]
        nonfinite = values.size - finite.size
        values = finite
        if not values.size:
            empty = dict.fromkeys(("mean", "std", "min", "max", "hist"))
            return {**empty, "nonfinite": nonfinite} if nonfinite else empty
        low, high = values.min(), values.max()
    counts, edges = histogram(values, float(low), float(high), bins)
    stats = {
        "mean": _significant(values.mean()),
        "std": _significant(values.std()),
        "min": _significant(low),
        "max": _significant(high),
        "hist": {"edges": [_significant(edge) for edge in edges], "counts": counts.tolist()},
    }
    if nonfinite:
        stats["nonfinite"] = nonfinite
    return stats


def histogram(values: np.ndarray, low: float, high: float, bins: int) -> tuple:
    """np.histogram(values, bins, range=(low, high)) for finite values within the range, up
    to float rounding at bin edges, in a fraction of its time on small arrays."""
    low, high = float(low), float(high)
    if low == high:  # as numpy does: one unit around the value
        low, high = low - 0.5, high + 0.5
    width = high - low
    if not (math.isfinite(width) and width > 0):
        # weights that blew up past float range: every value in one bin says so plainly
        counts = np.zeros(bins, dtype=np.intp)
        counts[0] = values.size
        return counts, np.linspace(low, high, bins + 1) if math.isfinite(width) else np.full(
            bins + 1, np.nan
        )
    index = ((values - low) * (bins / width)).astype(np.intp)
    counts = np.bincount(np.minimum(index, bins - 1, out=index), minlength=bins)
    return counts, np.linspace(low, high, bins + 1)


def feature_maps(values: np.ndarray, data_format: str | None = None,
                 side: int = PREVIEW_SIZE) -> dict[str, Any]:  # fmt: skip
    """The first PREVIEW_MAPS channels of the first sample of a rank-4 batch, each shrunk to at
    most side x side and rounded to 3 decimals."""
    first = values[0]
    if data_format == "channels_first":
        first = np.moveaxis(first, 0, -1)
    maps = [_rounded(_shrink(first[:, :, channel], side))
            for channel in range(min(PREVIEW_MAPS, first.shape[-1]))]  # fmt: skip
    return {"kind": "feature_maps", "shape": list(first.shape), "maps": maps}


def _shrink(array: np.ndarray, side: int) -> np.ndarray:
    """The first two axes sampled down to at most `side` evenly spaced rows and columns."""
    rows, cols = (np.linspace(0, size - 1, min(size, side)).round().astype(int)
                  for size in array.shape[:2])  # fmt: skip
    return array[rows][:, cols]


def _compact(value: Any, side: int = PREVIEW_SIZE) -> Any:
    """One sample's prediction or target, small: rounded numbers; a map (or the first channel
    of one) shrunk to at most side x side; a long vector (many classes) as its largest entry."""
    array = np.asarray(value)
    if array.dtype.kind not in "fiub" or array.ndim > 3:
        return None
    if array.ndim >= 2:
        array = _shrink(array[..., 0] if array.ndim == 3 else array, side)
    elif array.ndim == 1 and array.size > PREVIEW_VECTOR:
        return {"argmax": int(np.argmax(array)), "max": round(float(array.max()), 3)}
    return _rounded(array) if array.dtype.kind == "f" else array.tolist()


def _rounded(array: np.ndarray) -> Any:
    # float64 first: float32's 0.123 becomes 0.12300000339746475 in JSON
    return np.round(np.asarray(array, dtype=np.float64), 3).tolist()


def _significant(value: Any) -> float:
    return float(f"{float(value):.6g}")


def _target_of(y: Any, name: str, output_names: list[str]) -> Any:
    """The part of y that is the target of output `name`."""
    if y is None:
        return None
    if isinstance(y, dict):
        return y.get(name)
    if isinstance(y, list | tuple) and len(y) == len(output_names):
        return y[output_names.index(name)]
    return y if len(output_names) == 1 else None


def _output_layer_names(model: keras.Model) -> list[str]:
    names = getattr(model, "output_names", None)  # functional models; Sequential has none
    if names:
        return list(names)
    return [model.layers[-1].name] if model.layers else []


def _is_relu(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return not layer.negative_slope
    return getattr(getattr(layer, "activation", None), "__name__", None) == "relu"


def _weight_name(layer: keras.layers.Layer, weight: keras.Variable) -> str:
    """The weight's path below its layer: "kernel", or "block/conv/kernel" in a nested model."""
    prefix = layer.name + "/"
    return weight.path[len(prefix) :] if weight.path.startswith(prefix) else weight.path


def _numbers(logs: dict) -> dict[str, float]:
    return {key: value for key, value in logs.items()
            if isinstance(value, int | float) and not isinstance(value, bool)}  # fmt: skip


def _rate(amount: float | None, seconds: float) -> float | None:
    return round(amount / seconds, 1) if amount else None


def _samples_seen(model: keras.Model) -> int | None:
    """Samples trained on since the metrics were last reset, from the loss tracker's count
    (Keras weights each batch's mean loss by the batch size); None for a custom train_step
    without one."""
    tracker = next((metric for metric in model.metrics if metric.name == "loss"), None)
    count = getattr(tracker, "count", None)
    return int(keras.ops.convert_to_numpy(count)) if count is not None else None


# -- run directory -------------------------------------------------------------------------------


def _check_model_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            "Received an invalid value for `model_name`, expected a non-empty string. "
            f"Received: model_name={name!r}"
        )


def _new_run_dir(model_name: str) -> Path:
    """A new run directory named as LayerFlow's own runs are (app.workspace.runs): models/<model
    slug>/runs/<start time>-<random>/ in the workspace."""
    run_dir = runs.models_dir() / runs.model_slug(model_name) / "runs" / runs.new_run_id()
    run_dir.mkdir(parents=True)
    return run_dir


class _ExitGuard:
    """Marks a run failed if the process ends while it is still running (fit raised)."""

    def __init__(self, status_path: Path):
        self.status_path = status_path

    def __call__(self) -> None:
        reason = "the process ended before training finished"
        runs.update_status(self.status_path.parent, state="failed", reason=reason)
        with EventWriter(self.status_path.parent) as writer:
            writer.write("status", state="failed", reason=reason)
