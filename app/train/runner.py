"""The training process of one run: `python -m app.train.runner RUN_DIR`.

app.workspace.runs writes the run directory and starts this process in its own session; from then
on the two meet only in the directory. The runner trains the run's graph on its dataset with its
settings, and writes:
  - status.json at each change of state and at the end of each epoch;
  - the event log, through app.keras.livestats.LayerFlowCallback (batch, epoch, layers, system and
    warning events) and itself (status events);
  - checkpoints/last.keras at the end of each epoch (the whole model with its optimizer state,
    so a resumed run goes on where it stopped) and checkpoints/best.keras when `monitor`
    improves, with checkpoints/state.json saying which epoch and value they hold;
  - params.yaml and metrics.json when the run finishes, after which the run directory is
    recorded as a DVC version and the two files as a DVC experiment named after the run, so
    that `dvc exp show` lists it (app.workspace.versions).
Between two batches it reads control.json: `pause` holds training until `run`, `stop` (or
SIGTERM) ends it gracefully after a checkpoint. A non-finite loss stops the run as failed, with
the last checkpoint (from before it) kept; any exception fails it with a one-line reason.

When the run directory already holds a checkpoint, the run resumes from it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from app.data.anomaly import normal_rows, reconstructs
from app.errors import one_line
from app.files import atomic_write_text
from app.graph.document import GraphDocument, load
from app.keras.builder import build_model
from app.keras.livestats import LayerFlowCallback
from app.keras.pipeline import make_dataset
from app.runtime.config import FittedState, PreprocessConfig
from app.runtime.finite import first_non_finite
from app.runtime.training import (
    adapt_normalization,
    balanced_class_weight,
    callbacks,
    effective_monitor,
    monitor_mode,
)
from app.runtime.transform import input_spec
from app.train.settings import (
    TrainingSettings,
    apply_precision,
    compile_model,
    make_strategy,
    params,
)
from app.workspace import Workspace, runs, versions
from app.workspace.events import EventWriter

POLL_SECONDS = 0.2
RECORD_ATTEMPTS = 30  # runs finishing together wait for DVC's repository lock in turn
SAMPLE_SIZE = 32


class RunFailure(Exception):
    """A fault of the run (not a bug of the runner): its message is the run's reason."""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m app.train.runner RUN_DIR", file=sys.stderr)
        return 2
    return execute(Path(args[0]).resolve())


def execute(run_dir: Path, callbacks: list | None = None) -> int:
    """Train the run in run_dir; 0 when it finished or was stopped, 1 when it failed.

    Args:
        callbacks: Keras callbacks to add to the run's own (a search's trial reports its
            epochs with one); one with a `stop_reason` that stops training gives the reason.
    """
    import psutil

    started = psutil.Process().create_time()
    runs.update_status(run_dir, state="running", pid=os.getpid(), pid_started=started, reason=None)
    writer = EventWriter(run_dir)
    writer.write("status", state="running", reason=None)
    training = None
    try:
        training = Training(run_dir, writer, callbacks or [])
        previous = signal.getsignal(signal.SIGTERM)

        def terminate(signum: int, frame: Any) -> None:  # and tell the process's own handler
            training.terminate(signum, frame)
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, terminate)
        try:
            state, reason = training.run()
        finally:  # a search's worker trains many runs in one process
            signal.signal(signal.SIGTERM, previous)
    except Exception as err:  # the run fails; the process ends normally with its reason
        traceback.print_exc()
        state, reason = "failed", one_line(err, plain=RunFailure)
    runs.update_status(run_dir, state=state, reason=reason)
    writer.write("status", state=state, reason=reason)
    if state == "finished" and training is not None and training.is_chief():
        training.record()
    writer.close()
    return 1 if state == "failed" else 0


class Training:
    """One run's training, from its directory."""

    def __init__(self, run_dir: Path, writer: EventWriter, extra_callbacks: list | None = None):
        self.run_dir = run_dir
        self.extra_callbacks = extra_callbacks or []
        self.writer = writer
        self.info = runs.read_info(run_dir)
        self.settings = TrainingSettings.from_dict(
            json.loads((run_dir / runs.SETTINGS).read_text())
        )
        self.doc = load(run_dir / runs.GRAPH)
        self.checkpoints = run_dir / runs.CHECKPOINTS
        self.terminated = False

    def terminate(self, signum: int, frame: Any) -> None:
        """SIGTERM: stop as if asked to, after the current batch and a checkpoint."""
        self.terminated = True

    def is_chief(self) -> bool:
        """The worker that records versions: the only one, or worker 0 (or the chief) of a
        multi-worker cluster."""
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task = config.get("task") or {}
        if self.settings.strategy != "multi_worker" or not task:
            return True
        return task.get("type") == "chief" or (
            task.get("type") == "worker"
            and task.get("index") == 0
            and "chief" not in config.get("cluster", {})
        )

    def run(self) -> tuple[str, str | None]:
        settings = self.settings
        # A multi-worker strategy must exist before any other TensorFlow work in the process.
        strategy = make_strategy(settings)
        keras.utils.set_random_seed(settings.seed)
        tf.config.experimental.enable_op_determinism()
        apply_precision(settings)
        data = Data(self.run_dir, settings, self.doc)
        runs.update_status(self.run_dir, steps=data.steps_per_epoch)  # for progress bars
        resume = (self.checkpoints / runs.LAST).exists()
        with strategy.scope():
            model = build_model(self.doc)
            compile_model(model, settings, self.doc, steps_per_epoch=data.steps_per_epoch)
        state = {"epoch": 0, "best": None}
        if resume:
            state = json.loads((self.checkpoints / runs.CHECKPOINT_STATE).read_text())
            with strategy.scope():
                model.optimizer.build(model.trainable_variables)
            model.load_weights(self.checkpoints / runs.LAST)
        else:
            adapt_normalization(model, lambda: (x for x, _ in data.batches("train")))
        if state["epoch"] >= settings.epochs:
            return "finished", None
        steering = Steering(self, state, data.has_validation)
        live = LayerFlowCallback(
            self.run_dir,
            cadence={"batch_metrics_every": settings.stats_cadence},
            sample=data.sample,
        )
        if settings.strategy == "multi_worker":
            work_around_keras_multi_worker(model, strategy)
        with strategy.scope():
            model.fit(
                data.train,
                validation_data=data.validation,
                epochs=settings.epochs,
                initial_epoch=state["epoch"],
                shuffle=False,  # the pipeline shuffles, the same way for the same seed
                class_weight=balanced_class_weight(data.labels())
                if settings.class_weight == "balanced"
                else None,
                callbacks=[steering, live, ObeyAtEpochEnd(steering),
                           *callbacks(settings, data.has_validation), *self.extra_callbacks],
                verbose=0,
            )
        if steering.failure:
            return "failed", data.explain(steering.failure)
        if steering.stopping:
            return "stopped", f"stopped at epoch {steering.epochs_done} of {settings.epochs}"
        self.write_reports(steering)
        reasons = [getattr(c, "stop_reason", None) for c in self.extra_callbacks]
        if any(reasons):
            return "finished", next(r for r in reasons if r)
        if steering.epochs_done < settings.epochs:
            return "finished", (
                f"early stopping at epoch {steering.epochs_done}: "
                f"{steering.monitor} stopped improving"
            )
        return "finished", None

    def write_reports(self, steering: Steering) -> None:
        """params.yaml (the hyperparameters) and metrics.json (the final metrics), in the
        formats `dvc params` and `dvc metrics` read."""
        import yaml  # DVC reads params.yaml; PyYAML comes with it

        values = {**params(self.settings), "data": self.info["data"]}
        if self.info.get("search"):  # a search's trial: `dvc exp show` tells which
            values["search"] = self.info["search"]
        atomic_write_text(self.run_dir / "params.yaml", yaml.safe_dump(values, sort_keys=False))
        best = steering.state["best"] or {}
        metrics = {
            **steering.last_metrics,
            "epoch": steering.epochs_done,
            "best_epoch": best.get("epoch"),
            f"best_{best.get('monitor', steering.monitor)}": best.get("value"),
        }
        atomic_write_text(self.run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")

    def record(self) -> None:
        """Record the finished run directory as a DVC version, and its params and metrics as
        the DVC experiment named after the run."""
        root = Workspace.current().root
        for attempt in range(RECORD_ATTEMPTS):
            try:
                versions.record(root, self.run_dir, note=f"run {self.info['id']}")
                break
            except Exception as err:  # noqa: BLE001 - reported in the status, never fatal
                # Another process holds DVC's lock (two runs finishing together): wait a turn.
                if type(err).__name__ == "LockError" and attempt < RECORD_ATTEMPTS - 1:
                    time.sleep(1.0)
                    continue
                traceback.print_exc()
                runs.update_status(
                    self.run_dir, reason=f"finished, but not recorded by DVC: {one_line(err)}"
                )
                return
        try:
            versions.save_experiment(
                root, self.info["id"], self.run_dir / "params.yaml", self.run_dir / "metrics.json"
            )
        except Exception as err:  # noqa: BLE001 - reported in the status, never fatal
            traceback.print_exc()
            runs.update_status(
                self.run_dir,
                reason=f"finished and recorded, but not saved as a DVC experiment: {one_line(err)}",
            )


class Data:
    """The run's dataset as tf.data pipelines shaped for the model's inputs and outputs."""

    def __init__(self, run_dir: Path, settings: TrainingSettings, doc: GraphDocument):
        try:
            dataset = Workspace.current().dataset_of_run(run_dir)
        except ValueError as err:  # DataError
            raise RunFailure(str(err)) from None
        self.config = PreprocessConfig.model_validate(dataset.meta["preprocessing"])
        self.state = FittedState.model_validate(dataset.state)
        self.source = dataset.source()
        self.splits = dataset.splits
        self.settings = settings
        # An autoencoder trains on its input, on the normal rows alone.
        self.reconstructs = reconstructs(doc)
        if self.reconstructs:
            fitting = {s: self.splits[s] for s in ("train", "validation") if s in self.splits}
            cut, normal = normal_rows(
                self.config, self.state, self.source, fitting, settings.normal_class
            )
            if normal is not None and not cut.get("train"):
                raise RunFailure(
                    f"Dataset '{dataset.name}' has no train rows of the normal class "
                    f"{self.state.classes[normal]!r}; set `normal_class` to a class it has"
                )
            self.splits = {**self.splits, **cut}
        self.inputs = [n.id for n in doc.nodes if n.component == "Input"]
        self.outputs = [n.id for n in doc.nodes if n.component == "Output"]
        self.has_validation = bool(self.splits.get("validation"))
        self.train = self.batches("train", training=True)
        self.validation = self.batches("validation") if self.has_validation else None
        cardinality = int(self.train.cardinality())
        self.steps_per_epoch = (
            cardinality
            if cardinality > 0
            else max(1, math.ceil(len(self.splits["train"]) / settings.batch_size))
        )
        if settings.strategy == "multi_worker":
            # Each worker takes every other batch of the same seeded order: the data is in
            # memory, not in files that could be shared out.
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = (
                tf.data.experimental.AutoShardPolicy.DATA
            )
            self.train = self.train.with_options(options)
            if self.validation is not None:
                self.validation = self.validation.with_options(options)
        self.sample = self._sample()

    def batches(self, split: str, training: bool = False):
        """A split's batches shaped for the model: shuffled (by the seed) and augmented in
        training, in order otherwise."""
        dataset = make_dataset(
            self.config,
            self.state,
            self.source,
            self.splits[split],
            self.settings.batch_size,
            training=training,
            seed=self.settings.seed,
        )
        return self._shaped(dataset)

    def explain(self, failure: str) -> str:
        """A non-finite loss's reason: the data first (NaN or an infinity in the inputs or
        targets, naming the column and row), and only if it is finite, the learning rate."""
        for split in ("train", "validation"):
            rows = self.splits.get(split, [])
            found = first_non_finite(self.config, self.state, self.source, rows)
            if found:
                return (
                    f"{failure}; the {split} data is not finite after preprocessing, at "
                    f"{found} (fix or drop that value)"
                )
        return (
            f"{failure}; the data is finite, so the learning rate is likely too high (lower it), "
            "or the inputs are not normalized"
        )

    def labels(self) -> list[int]:
        return [int(v) for _, y in self.batches("train") for v in np.asarray(y).reshape(-1)]

    def _sample(self) -> tuple | None:
        """A fixed small batch for the live statistics' gradients and activations."""
        for x, y in self.batches("validation" if self.has_validation else "train").take(1):
            if isinstance(x, dict):
                return {k: v[:SAMPLE_SIZE] for k, v in x.items()}, y[:SAMPLE_SIZE]
            return x[:SAMPLE_SIZE], y[:SAMPLE_SIZE]
        return None

    def _shaped(self, dataset):
        """(inputs by data name, target) -> what the model takes: its one input as a tensor, or
        a dict by Input node id; the target as a tensor, or a dict by Output node id."""
        doc_inputs, doc_outputs, reconstructs = self.inputs, self.outputs, self.reconstructs
        data_inputs = list(input_spec(self.config, self.state))

        def shape(inputs, target=None):  # data without a target gives inputs alone
            if len(doc_inputs) == 1 and len(data_inputs) == 1:
                x = inputs[data_inputs[0]]
            else:
                x = {node: inputs[node] for node in doc_inputs}
            if reconstructs:
                target = x[reconstructs] if isinstance(x, dict) else x
            y = target if len(doc_outputs) == 1 else {node: target for node in doc_outputs}
            return x, y

        return dataset.map(shape)


def work_around_keras_multi_worker(model, strategy) -> None:
    """Make Keras 3's fit work under MultiWorkerMirroredStrategy (tensorflow/tensorflow#72388).

    Keras 3 fails there twice: it builds a distributed model by averaging a first batch across
    workers with strategy.reduce, which cannot take an (inputs, target) pair; and it averages
    each step's logs with strategy.reduce(..., axis=0), which cannot take their scalars. The
    model is built ahead instead (optimizer here, the rest while the train step is traced in
    the strategy's scope), and scalar logs are averaged over the workers with axis=None.
    """
    from keras import tree
    from keras.src.backend.tensorflow import trainer

    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    model._distribute_strategy = None  # fit then takes the strategy of the scope it runs in
    if getattr(trainer.reduce_per_replica, "layerflow", False):
        return
    keras_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction="auto"):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica.layerflow = True
    trainer.reduce_per_replica = reduce_per_replica


def _numbers(logs: dict[str, Any] | None) -> dict[str, float]:
    return {key: float(value) for key, value in (logs or {}).items()}


class ObeyAtEpochEnd(keras.callbacks.Callback):
    """Steering's pause or stop at an epoch's end; placed after every callback that records the
    epoch, so that a kill during a pause loses none of it, and a stop comes after them all."""

    def __init__(self, steering: Steering):
        super().__init__()
        self.steering = steering

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.steering.failure:
            self.steering.obey()


class Steering(keras.callbacks.Callback):
    """Obeys control.json and SIGTERM between batches, stops on a non-finite loss, saves the
    checkpoints and keeps status.json up to date at the end of each epoch."""

    def __init__(self, training: Training, state: dict[str, Any], validation: bool):
        super().__init__()
        self.training = training
        self.run_dir = training.run_dir
        self.state = state  # {"epoch": completed epochs, "best": {monitor, value, epoch}}
        self.monitor = effective_monitor(training.settings, validation)
        self.mode = monitor_mode(self.monitor)
        self.failure: str | None = None
        self.stopping = False
        self.epoch = state["epoch"]
        self.epochs_done = state["epoch"]
        self.last_metrics: dict[str, float] = {}
        self._control_mtime: int | None = None
        self._action = "run"

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            kind = "NaN" if math.isnan(float(loss)) else "infinite"
            self.failure = f"loss became {kind} at epoch {self.epoch + 1}, step {batch + 1}"
            self.model.stop_training = True
            return
        self.obey()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.failure:
            return  # the weights hold NaNs: the last checkpoint stays the one from before
        metrics = _numbers(logs)
        broken = [name for name in ("val_loss", "loss") if not math.isfinite(metrics.get(name, 0))]
        if broken:  # the weights after the last step already give NaN on the validation data
            kind = "NaN" if math.isnan(metrics[broken[0]]) else "infinite"
            self.failure = f"{broken[0]} became {kind} at epoch {epoch + 1}"
            self.model.stop_training = True
            return
        self.save_checkpoint(epoch, metrics)
        self.epochs_done = epoch + 1
        self.last_metrics = metrics
        runs.update_status(self.run_dir, epoch=epoch + 1, metrics=metrics, best=self.state["best"])
        # Pause and stop are obeyed by ObeyAtEpochEnd, once this epoch's event is written too.

    def save_checkpoint(self, epoch: int, metrics: dict[str, float]) -> None:
        folder = self.training.checkpoints
        folder.mkdir(exist_ok=True)
        partial = folder / "partial.keras"  # saved whole, then renamed: never half a model
        self.model.save(partial)
        os.replace(partial, folder / runs.LAST)
        value = metrics.get(self.monitor)
        best = self.state["best"]
        improved = (
            value is not None
            and math.isfinite(value)
            and (
                best is None
                or (value < best["value"] if self.mode == "min" else value > best["value"])
            )
        )
        if improved:
            shutil.copyfile(folder / runs.LAST, partial)
            os.replace(partial, folder / runs.BEST)
            self.state["best"] = {"monitor": self.monitor, "value": value, "epoch": epoch + 1}
        self.state["epoch"] = epoch + 1
        atomic_write_text(folder / runs.CHECKPOINT_STATE, json.dumps(self.state, indent=2) + "\n")

    def obey(self) -> None:
        """Pause or stop as control.json (or SIGTERM) says."""
        action = self.action()
        if action == "pause" and not self.stopping:
            self.announce("paused")
            while action == "pause" and not self.training.terminated:
                time.sleep(POLL_SECONDS)
                action = self.action()
            if action != "stop" and not self.training.terminated:
                self.announce("running")
        if (action == "stop" or self.training.terminated) and not self.stopping:
            self.stopping = True
            self.model.stop_training = True
            self.announce("stopping")

    def action(self) -> str:
        """control.json's action; the file is read again only when it changed."""
        try:
            mtime = (self.run_dir / runs.CONTROL).stat().st_mtime_ns
        except FileNotFoundError:
            return "run"
        if mtime != self._control_mtime:
            self._control_mtime = mtime
            self._action = runs.read_control(self.run_dir)
        return self._action

    def announce(self, state: str) -> None:
        runs.update_status(self.run_dir, state=state)
        self.training.writer.write("status", state=state, reason=None)


if __name__ == "__main__":
    sys.exit(main())
