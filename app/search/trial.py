"""One trial of a search: Optuna samples the space, the engine checks the trial's graph, and the
graph trains as an ordinary LayerFlow run (its run directory, events, checkpoints and DVC
experiment, tagged with the search), in the worker's process.

Before a single step of training, a trial is pruned when its graph has errors (an optional node
left out that breaks shapes), its settings are invalid, the data does not fit it, or it breaks
a constraint the engine can judge (parameters, FLOPs). During training, the median pruner reads
the metric at each epoch's end. After it, size and latency are measured on the trained model,
and a trial that breaks a constraint on them is marked infeasible.

Importing this module does not import TensorFlow; training a trial does.
"""

from __future__ import annotations

import json
import math
import typing
from pathlib import Path
from typing import Any

import optuna

from app.graph.analysis import analyze
from app.graph.components import CATALOGUE
from app.graph.document import Choice, GraphDocument, Range
from app.graph.space import dimensions, searched_node, split_dimension, trial_graph
from app.search.spec import AFTER_TRAINING, BEFORE_TRAINING, SearchSpec
from app.search.study import STOPPING
from app.train.settings import TrainingSettings, TrainingSettingsError
from app.workspace import runs

LATENCY_REPEATS = 30
PRIMITIVE = (bool, int, float, str, type(None))


class TrialFailed(Exception):
    """A trial whose run failed, or was stopped: its message is the trial's reason."""


def suggest(trial: optuna.Trial, doc: GraphDocument) -> dict[str, Any]:
    """A value for each dimension of the graph's space, by its name (`node.setting`,
    `optional.node`, `training.name`), from Optuna's sampler."""
    values: dict[str, Any] = {}
    for name, dimension in dimensions(doc.search).items():
        if isinstance(dimension, Choice):
            choices = dimension.choices
            if all(isinstance(c, PRIMITIVE) for c in choices):
                values[name] = trial.suggest_categorical(name, choices)
            else:  # Optuna's choices are plain values: lists and the like go by their JSON
                picked = trial.suggest_categorical(name, [json.dumps(c) for c in choices])
                values[name] = json.loads(picked)
        elif _whole(name, dimension, doc):
            step = int(dimension.step or 1)
            values[name] = trial.suggest_int(
                name, int(dimension.low), int(dimension.high), step=step, log=dimension.log
            )
        else:
            values[name] = trial.suggest_float(
                name, dimension.low, dimension.high, step=dimension.step, log=dimension.log
            )
    return values


def _whole(name: str, dimension: Range, doc: GraphDocument) -> bool:
    """Whether a range takes whole numbers: an int setting's, or one whose ends and step are."""
    key, setting = split_dimension(name)
    if key == "training":
        return whole_training_setting(setting)
    node = searched_node(doc, key)
    spec = CATALOGUE.get(node.component) if node else None
    kinds = {s.name: s.kind for s in spec.settings} if spec else {}
    if kinds.get(setting) == "int":
        return True
    ends = (dimension.low, dimension.high, dimension.step or 0.5)
    return dimension.step is not None and all(float(v).is_integer() for v in ends)


def training_settings(spec: SearchSpec, values: dict[str, Any]) -> TrainingSettings:
    """The search's training settings with the trial's training values."""
    chosen = {k[len("training."):]: v for k, v in values.items() if k.startswith("training.")}
    return TrainingSettings.from_dict({**spec.settings, **chosen})


def whole_training_setting(name: str) -> bool:
    """Whether the training setting takes whole numbers (`int`, or `int | None`)."""
    field = TrainingSettings.model_fields.get(name)
    return field is not None and int in (field.annotation, *typing.get_args(field.annotation))


def record_constraints(trial: optuna.Trial, spec: SearchSpec, measured: dict[str, float],
                       measures: tuple[str, ...]) -> None:  # fmt: skip
    """Tell Optuna each constraint on `measures` by its excess (at most 0 when kept), which
    its samplers steer by."""
    for constraint in spec.constraints:
        if constraint.measure in measures:
            trial.set_constraint(str(constraint), measured[constraint.measure] - constraint.limit)


def broken(spec: SearchSpec, measured: dict[str, float | None]) -> list[str]:
    """The constraints the measures break, in words: 'params 61,450 > 50,000'."""
    return [
        f"{c.measure} {measured[c.measure]:,.6g} > {c.limit:,.6g}"
        for c in spec.constraints
        if measured.get(c.measure) is not None and measured[c.measure] > c.limit
    ]


def run_trial(trial: optuna.Trial, root: Path, spec: SearchSpec) -> float | tuple[float, float]:
    """Optuna's objective: one trial, from sampling to its score (and cost)."""
    from app.train import launch

    doc = GraphDocument.model_validate(spec.graph)
    values = suggest(trial, doc)
    graph = trial_graph(doc, values)
    graph = graph.model_copy(update={"meta": graph.meta.model_copy(
        update={"description": f"trial {trial.number} of search {spec.name}"})})  # fmt: skip

    def prune(reason: str, before_training: bool = True) -> None:
        trial.set_user_attr("reason", reason)
        trial.set_user_attr("before_training", before_training)
        raise optuna.TrialPruned(reason)

    try:
        settings = training_settings(spec, values)
    except TrainingSettingsError as error:
        prune(f"before training: {'; '.join(error.messages)}")
    analysis = analyze(graph)
    if analysis.errors:
        prune(f"before training: {analysis.errors[0].message}")
    totals = analysis.totals()
    measured: dict[str, float | None] = {cost: totals[cost] for cost in BEFORE_TRAINING}
    for cost in BEFORE_TRAINING:
        trial.set_user_attr(cost, totals[cost])
    record_constraints(trial, spec, measured, BEFORE_TRAINING)
    if faults := broken(spec, measured):
        trial.set_user_attr("infeasible", True)
        prune(f"before training: breaks {', '.join(faults)}")
    command = ["layerflow", "search", "worker", spec.name, f"trial {trial.number}"]
    try:
        folder = launch.create_run(
            graph, settings, spec.data, command=command,
            search={"study": spec.name, "trial": trial.number},
        )  # fmt: skip
    except runs.RunError as error:
        prune(f"before training: {'; '.join(error.problems)}")
    trial.set_user_attr("run", folder.name)
    trial.set_user_attr("run_dir", folder.relative_to(root).as_posix())
    score, epochs, pruned_at = _train(trial, folder, spec)
    trial.set_user_attr("epochs", epochs)
    if pruned_at is not None:
        prune(f"pruned at epoch {pruned_at}: {spec.objective.metric} behind the median trial",
              before_training=False)
    if score is None or not math.isfinite(score):
        raise TrialFailed(f"the run logged no finite {spec.objective.metric}")
    measured.update(costs(folder, graph, settings))
    for cost in AFTER_TRAINING:
        trial.set_user_attr(cost, measured[cost])
    record_constraints(trial, spec, measured, AFTER_TRAINING)
    if faults := broken(spec, measured):
        trial.set_user_attr("infeasible", True)
        trial.set_user_attr("reason", f"infeasible: breaks {', '.join(faults)}")
    if spec.cost:
        return score, float(measured[spec.cost])
    return score


def _train(
    trial: optuna.Trial, folder: Path, spec: SearchSpec
) -> tuple[float | None, int, int | None]:
    """Train the trial's run here, reporting the metric at each epoch's end to the pruner; the
    best value, the epochs trained, and the epoch it was pruned at (None if not)."""
    import keras

    from app.train import runner

    metric, maximize = spec.objective.metric, spec.objective.direction == "maximize"
    prunes = not spec.cost  # Optuna prunes single-objective studies only

    class Report(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best: float | None = None
            self.epochs = 0
            self.pruned_at: int | None = None
            self.stop_reason: str | None = None

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.epochs = epoch + 1
            value = (logs or {}).get(metric)
            if value is None or not math.isfinite(float(value)):
                return
            value = float(value)
            if self.best is None or (value > self.best if maximize else value < self.best):
                self.best = value
            if prunes:
                trial.report(value, epoch)
                if trial.should_prune():
                    self.pruned_at = epoch + 1
                    self.stop_reason = f"pruned by search {spec.name} at epoch {epoch + 1}"
                    self.model.stop_training = True

    report = Report()
    # A stop asked before the trial had its run: from now on `stop` reaches the run itself.
    if trial.study.user_attrs.get(STOPPING):
        runs.update_status(folder, state="stopped", reason="the search was stopped")
        trial.set_user_attr("stopped", True)
        raise TrialFailed("stopped: the search was stopped before the trial trained")
    keras.backend.clear_session()
    runner.execute(folder, callbacks=[report])
    current = runs.status(folder)
    if current["state"] == "stopped":
        trial.set_user_attr("stopped", True)
        raise TrialFailed(f"stopped: {current.get('reason') or 'by the user'}")
    if current["state"] != "finished":
        raise TrialFailed(f"the run {current['state']}: {current.get('reason')}")
    return report.best, report.epochs, report.pruned_at


def costs(folder: Path, graph: GraphDocument, settings: TrainingSettings) -> dict[str, float]:
    """The trained model's size (bytes of its weights) and latency (ms for one sample, the
    median of LATENCY_REPEATS calls after warm-up, timed as the test report times)."""
    import numpy as np

    from app.keras.builder import build_model
    from app.keras.timing import times_ms
    from app.train.runner import Data

    checkpoints = folder / runs.CHECKPOINTS
    weights = checkpoints / (runs.BEST if (checkpoints / runs.BEST).exists() else runs.LAST)
    model = build_model(graph)
    model.load_weights(weights)
    size = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)
    x, _ = Data(folder, settings, graph).sample
    one = {k: v[:1] for k, v in x.items()} if isinstance(x, dict) else x[:1]
    times = times_ms(lambda: model.predict_on_batch(one), LATENCY_REPEATS, budget_s=3.0)
    return {"size": float(size), "latency": float(np.median(times))}
