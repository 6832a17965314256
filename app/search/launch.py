"""Making a search: the graph's space (its own, one given, or one proposed), checked with the
training settings and the data before a study is made, then the study and its workers.

Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from app.graph.document import GraphDocument, SearchSpace
from app.graph.space import dimensions, propose, space_problems
from app.search import study as studies
from app.search.spec import Constraint, Objective, SearchSpec, default_objective, objective_problem
from app.search.study import SearchError
from app.train.settings import TrainingSettings, TrainingSettingsError, log_names


def with_space(doc: GraphDocument, space: SearchSpace | None = None) -> tuple[GraphDocument, bool]:
    """The graph with the space to search: `space` if given, else its own, else one proposed
    from it; and whether it was proposed."""
    if space is not None:
        return doc.model_copy(update={"search": space}), False
    if doc.search is not None and dimensions(doc.search):
        return doc, False
    return doc.model_copy(update={"search": propose(doc)}), True


def with_library_blocks(doc: GraphDocument) -> tuple[GraphDocument, list[str]]:
    """The graph with the library's blocks that its space chooses between (a Block node's
    `block` given choices: a structure search over cells) copied into its own blocks; and one
    message per chosen block that is neither the graph's nor the library's."""
    from app.workspace import Workspace

    workspace = Workspace.current()
    nodes = {node.id: node for node in doc.nodes}
    blocks = dict(doc.blocks)
    missing = []
    for node_id, settings in (doc.search.settings if doc.search else {}).items():
        chosen = settings.get("block")
        if nodes.get(node_id) is None or nodes[node_id].component != "Block" or chosen is None:
            continue
        for name in getattr(chosen, "choices", []):
            if name in blocks:
                continue
            if isinstance(name, str) and name in workspace.blocks():
                blocks[name] = workspace.block(name)
            else:
                missing.append(f"search.settings.{node_id}.block: no block {name!r} in the graph "
                               f"or the library (blocks: {', '.join(sorted(blocks)) or 'none'})")
    return doc.model_copy(update={"blocks": blocks}), missing


def problems(doc: GraphDocument, settings: TrainingSettings, data: str,
             objective: Objective | None, root: Path) -> list[str]:  # fmt: skip
    """Everything that keeps the search from starting, one line each: the space, its training
    values, the graph and data (as a run's preflight), and the objective (None: the default
    one, which is always logged)."""
    from app.search.trial import whole_training_setting
    from app.train.launch import preflight
    from app.workspace import Workspace

    found = [p.message for p in space_problems(doc)]
    if doc.search is not None and not dimensions(doc.search):
        found.append("search: the space is empty; give a node setting a range or choices")
    for name, dimension in (doc.search.training if doc.search else {}).items():
        if name not in TrainingSettings.model_fields:
            found.append(f"search.training.{name}: no training setting {name!r}")
            continue
        step = getattr(dimension, "step", None)
        if whole_training_setting(name) and step is not None and not (
            float(step).is_integer() and step >= 1
        ):
            found.append(f"search.training.{name}: {name} is a whole number: a step must be a "
                         "whole number >= 1")  # fmt: skip
            continue
        ends = getattr(dimension, "choices", None) or [dimension.low, dimension.high]
        for value in ends:
            if whole_training_setting(name) and float(value).is_integer():
                value = int(value)
            try:
                settings.with_changes(**{name: value})
            except TrainingSettingsError as error:
                found += [f"search.training.{name}: {m}" for m in error.messages]
    try:
        dataset = Workspace.current().dataset(data)
    except ValueError as error:
        return [*found, str(error)]
    found += preflight(doc.model_copy(update={"search": None}), settings, dataset)
    if not found:
        validation = bool(dataset.splits.get("validation"))
        names = log_names(settings, doc)
        objective = objective or default_objective(names, validation)
        if problem := objective_problem(objective, names, validation):
            found.append(problem)
    return found


def default_for(doc: GraphDocument, settings: TrainingSettings, data: str) -> Objective:
    """val_accuracy:max for a model that logs accuracy, else val_loss:min."""
    from app.workspace import Workspace

    validation = bool(Workspace.current().dataset(data).splits.get("validation"))
    return default_objective(log_names(settings, doc), validation)


def start_search(
    root: Path,
    doc: GraphDocument,
    data: str,
    trials: int,
    settings: TrainingSettings,
    objective: Objective | None = None,
    cost: str | None = None,
    constraints: list[Constraint] | None = None,
    workers: int = 1,
    name: str | None = None,
    url: str | None = None,
    command: list[str] | None = None,
) -> SearchSpec:
    """Check, make the study, and start `workers` local workers (none with 0); its spec.
    Raises SearchError naming every fault before anything is written."""
    if trials < 1:
        raise SearchError([f"Received an invalid value for `trials`, expected a number >= 1. "
                           f"Received: trials={trials}"])  # fmt: skip
    if workers < 0:
        raise SearchError([f"Received an invalid value for `workers`, expected a number >= 0. "
                           f"Received: workers={workers}"])  # fmt: skip
    doc, found = with_library_blocks(doc)
    found += problems(doc, settings, data, objective, root)
    if found:
        raise SearchError(found)
    objective = objective or default_for(doc, settings, data)
    spec = SearchSpec(
        name=name or studies.new_name(doc.meta.name),
        graph=doc.model_dump(mode="json"),
        data=data,
        trials=trials,
        objective=objective,
        cost=cost,
        constraints=constraints or [],
        settings=settings.model_dump(mode="json", exclude_defaults=True),
        seed=settings.seed,
        created=time.time(),
        command=command,
    )
    studies.create(root, spec, url)
    if workers:
        studies.start_workers(root, spec.name, workers)
    return spec


def use_trial(root: Path, name: str, number: int) -> tuple[GraphDocument, dict[str, Any]]:
    """A trial's graph (with the search's space kept, so the next search starts from it) and
    its training settings, as changes to the defaults."""
    study, spec = studies.load(root, name)
    trial = studies.trial_of(study, number)
    from app.graph.space import trial_graph
    from app.search.trial import training_settings

    values = _values(trial, spec)
    doc = GraphDocument.model_validate(spec.graph)
    graph = trial_graph(doc, values).model_copy(update={"search": doc.search})
    if any(k.startswith("optional.") and v is False for k, v in values.items()):
        graph = graph.model_copy(update={"search": None})  # its optional nodes are gone
    settings = training_settings(spec, values).model_dump(mode="json", exclude_defaults=True)
    return graph, settings


def _values(trial, spec: SearchSpec) -> dict[str, Any]:
    """The trial's sampled values, as the graph takes them (JSON-encoded choices decoded)."""
    import json

    doc = GraphDocument.model_validate(spec.graph)
    found = {}
    for name, value in trial.params.items():
        dimension = dimensions(doc.search).get(name)
        choices = getattr(dimension, "choices", None)
        if choices and isinstance(value, str) and value not in choices:
            value = json.loads(value)
        found[name] = value
    return found
