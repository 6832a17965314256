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

The callback's parts live beside it: how often it records (app.keras.cadence), the sample probe
(app.keras.sample_probe), array statistics and previews (app.keras.statistics,
app.keras.previews), the warnings it writes (app.keras.training_warnings) and the runs it
makes for a script (app.keras.script_runs).
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import psutil
import tensorflow as tf

from app.keras.cadence import Cadence
from app.keras.sample_probe import SampleProbe
from app.keras.script_runs import ExitGuard, check_model_name, new_run_dir, write_run_info
from app.keras.statistics import array_stats
from app.keras.training_warnings import TrainingWarnings
from app.workspace import runs
from app.workspace.events import EventWriter


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
            check_model_name(model_name)
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
            self.run_dir = new_run_dir(model_name)
        self.timings = dict.fromkeys(
            ("batch_metrics", "epoch_metrics", "layer_stats", "gradients", "activations",
             "system"), 0.0)  # fmt: skip
        self._lock = threading.RLock()  # warnings are written from inside locked parts
        self._warnings = TrainingWarnings(self._write_warning, self._lock)
        self._writer: EventWriter | None = None
        self._owns_status: bool | None = None
        self._best: dict[str, Any] | None = None  # {monitor, value, epoch}, as the runner's
        self._exit_guard: ExitGuard | None = None
        self._probe: SampleProbe | None = None
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
            self.run_dir = new_run_dir(self.model.name)
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
            self._probe = SampleProbe(self.model, self.sample, self._warnings.warn)

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
                self._warnings.check_nan(loss, self._epoch, step)
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
            self._warnings.check_loss_trend(logs.get("loss"), epoch, self.plateau_epochs)
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
            write_run_info(self.run_dir, self.model_name or self.model.name)
        if self._owns_status:
            process = psutil.Process()
            runs.update_status(self.run_dir, pid=process.pid,
                           pid_started=process.create_time(), epochs=self.params.get("epochs"),
                           epoch=0, metrics={}, best=None)  # fmt: skip
            self._set_status("running", None)
            # fit does not call on_train_end when it raises: mark the run failed at exit then.
            self._exit_guard = ExitGuard(self.run_dir / runs.STATUS)
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
                entry["grad_flag"] = self._warnings.check_gradient(layer.name, norm, step)
            if layer.name in activations:
                entry.update(activations[layer.name])
                zeros = entry["activation"]["zero_fraction"]
                self._warnings.check_zeros(layer, zeros, step)
            if entry:
                layers[layer.name] = entry
        with self._lock:
            self._write("layers", epoch=self._epoch, step=step, layers=layers)
        self.timings["layer_stats"] += time.perf_counter() - started
        if self._layer_calls:  # the first call traces the probe: a one-time cost
            self._layer_seconds += time.perf_counter() - started_all
        self._layer_calls += 1

    def _write_warning(self, code: str, message: str, layer: str | None,
                       step: int | None) -> None:  # fmt: skip
        fields = {"layer": layer} if layer is not None else {}
        self._write("warning", code=code, message=message, epoch=self._epoch,
                    step=self._step if step is None else step, **fields)  # fmt: skip


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
