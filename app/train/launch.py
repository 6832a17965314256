"""Starting training runs: checking that a graph can train on its data with its settings,
writing the run directory (app.workspace.runs) and starting its runner process
(`python -m app.train.runner RUN_DIR`), or starting a stopped one again.

Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from app.files import atomic_write_text
from app.graph.document import GraphDocument, save
from app.graph.problems import node_ref
from app.graph.shapes import untrusted_nodes
from app.train.settings import TrainingSettings
from app.workspace import Workspace, versions
from app.workspace.runs import (
    CONTROL,
    GRAPH,
    LOG,
    RESUMABLE,
    RUN,
    SETTINGS,
    STATUS,
    TEST_DIR,
    RunError,
    model_slug,
    new_run_id,
    read_status,
    spawn,
    status,
    status_lock,
    update_status,
    write_json,
)


def preflight(doc: GraphDocument, settings: TrainingSettings, dataset) -> list[str]:
    """Everything that keeps `doc` from training on `dataset` with `settings`: errors in the
    graph, the data not fitting it (input shape or type, classes, target) and settings that do
    not suit it. Empty when the run can start."""
    from app.data.anomaly import normal_class, reconstructs
    from app.data.autoconfig import facts, mismatches
    from app.graph.analysis import analyze
    from app.runtime.config import FittedState, PreprocessConfig
    from app.runtime.transform import input_spec
    from app.train.settings import check

    meta = dataset.meta
    train_rows = len(dataset.splits.get("train", []))
    problems = [p.message for p in analyze(doc, data=facts(meta, train_rows)).errors]
    problems += [
        f"{node_ref(n.id, n.component)}: its code is not trusted in this workspace; read it, "
        "then trust the graph (`layerflow trust GRAPH` or Trust on the Model page)"
        for n in untrusted_nodes(doc)
    ]
    if not train_rows:
        problems.append(f"Dataset '{dataset.name}' has no rows in its train split")
    config = PreprocessConfig.model_validate(meta["preprocessing"])
    state = FittedState.model_validate(dataset.state)
    inputs = input_spec(config, state)
    classes = state.classes or meta["profile"].get("classes")
    problems += [
        f"{p.message} (dataset '{dataset.name}')"
        for p in mismatches(doc, inputs, meta.get("task"), meta.get("target"), classes)
    ]
    if reconstructs(doc) and settings.normal_class is not None:
        try:
            normal_class(classes, None, settings.normal_class)
        except ValueError as err:
            problems.append(f"{err} (dataset '{dataset.name}')")
    if not problems:  # the settings are judged against a graph that makes sense
        problems += check(settings, doc)
    return problems


def create_run(
    doc: GraphDocument,
    settings: TrainingSettings | dict[str, Any],
    data: str,
    run_dir: str | os.PathLike | None = None,
    command: list[str] | None = None,
    search: dict[str, Any] | None = None,
) -> Path:
    """Check that the run can start, then write its directory (state queued); returns it.

    Raises RunError naming every fault (graph errors, data that does not fit the graph,
    unsuitable settings) and TrainingSettingsError for invalid settings, before anything is
    written.

    Args:
        run_dir: the directory, inside the workspace (default models/<model>/runs/<run-id>).
        command: the command line that asked for the run, kept in run.json.
        search: {"study": name, "trial": number} for a search's trial, kept in run.json.
    """
    workspace = Workspace.current()
    if not isinstance(settings, TrainingSettings):
        settings = TrainingSettings.from_dict(settings)
    dataset = workspace.dataset(data)
    problems = preflight(doc, settings, dataset)
    if problems:
        raise RunError(problems, source=doc.meta.name)
    run_id = new_run_id()
    model = model_slug(doc.meta.name)
    if run_dir is None:
        folder = workspace.models_dir / model / "runs" / run_id
    else:
        folder = workspace.path(str(run_dir))
        if folder.exists() and any(folder.iterdir()):
            raise RunError([f"{run_dir}: the run directory exists and is not empty"])
    folder.mkdir(parents=True, exist_ok=True)
    if run_dir is not None:
        workspace.register_run_dir(folder)
        relative = folder.relative_to(workspace.root).as_posix()
        # As versions.IGNORED does for runs under models/:
        versions.ignore(workspace.root, f"/{relative}/{TEST_DIR}/")
    save(doc, folder / GRAPH)
    atomic_write_text(folder / SETTINGS, settings.model_dump_json(indent=2) + "\n")
    created = time.time()
    run = {
        "id": folder.name if run_dir is not None else run_id,
        "model": model,
        "graph_name": doc.meta.name,
        "data": {"name": data, "version": dataset.version},
        "created": created,
        "command": list(command) if command is not None else None,
    }
    if search is not None:
        run["search"] = search
    write_json(folder / RUN, run)
    write_json(folder / CONTROL, {"action": "run", "time": created})
    update_status(
        folder,
        state="queued",
        pid=None,
        epoch=0,
        epochs=settings.epochs,
        reason=None,
        best=None,
        metrics={},
    )
    return folder


def start_run(run: str | os.PathLike, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start the runner process of a queued run, in its own session (it outlives the caller).

    Args:
        env: variables to add to the runner's environment (TF_CONFIG for a multi-worker run).
    """
    workspace = Workspace.current()
    folder = workspace.run(run)
    process, started = spawn(workspace.root, "app.train.runner", folder, folder / LOG, env)
    with status_lock(folder):
        current = read_status(folder)
        if current.get("state") == "queued":  # the runner may already have said it runs
            write_json(folder / STATUS, {**current, "pid": process.pid, "pid_started": started,
                                          "updated": time.time()})  # fmt: skip
    return process


def resume_run(run: str | os.PathLike, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a stopped, failed or interrupted run again in a new process: it continues from its
    last checkpoint (or from the start when it never finished an epoch), counting epochs on and
    appending to the same event log."""
    folder = Workspace.current().run(run)
    current = status(folder)
    if current["state"] not in RESUMABLE:
        raise RunError(
            [
                f"Run '{folder.name}' is {current['state']}; only a stopped, failed or "
                "interrupted run can be resumed"
            ]
        )
    write_json(folder / CONTROL, {"action": "run", "time": time.time()})
    update_status(folder, state="queued", pid=None, pid_started=None, reason=None)
    return start_run(folder, env)
