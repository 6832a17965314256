"""Run directories: their files, status and process, read and steered from outside.

app.train.launch creates a run directory and starts its runner.

A run is trained by its own process (`python -m app.train.runner RUN_DIR`, see app.train.runner),
never by the caller; the caller and the pages are readers of its directory, as TensorBoard's
dashboards are readers of a job's log directory. A run directory, `models/<model>/runs/<run-id>/`
in the workspace (model: the graph's name as a slug; run id: start time and a short random part):

  graph.json      the graph as trained
  settings.json   its TrainingSettings
  run.json        id, model, data (name and DVC version), created, command
  status.json     state, pid, epoch, epochs, steps (batches per epoch), reason, best, metrics,
                  updated (atomic)
  control.json    what readers ask of the runner: run, pause or stop (atomic)
  events.jsonl    the event log (app.workspace.events)
  checkpoints/    last.keras and best.keras (whole models, optimizer state included) and
                  state.json (the epoch and best value they hold)
  runner.log      the runner's standard output and error
  params.yaml, metrics.json   written when the run finishes, in DVC's formats; the finished
                  run directory is then a DVC version, and these two files a DVC experiment
                  named after the run (app.workspace.versions)

States: queued -> running <-> paused; running -> stopping -> stopped; running -> finished or
failed. A run whose status says it is active but whose process is gone reads as interrupted.
Stopped, failed and interrupted runs can be resumed from their last checkpoint. A run that is
not active can be deleted, with its DVC records.

Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from app.files import atomic_write_text, locked
from app.paths import REPOSITORY, inside

GRAPH, SETTINGS, RUN, STATUS, CONTROL = (
    "graph.json",
    "settings.json",
    "run.json",
    "status.json",
    "control.json",
)
CHECKPOINTS, LAST, BEST, CHECKPOINT_STATE = "checkpoints", "last.keras", "best.keras", "state.json"
LOG = "runner.log"
TEST_DIR = "test"  # the run's test results (app.evaluate), left out of its DVC versions
STATES = ("queued", "running", "paused", "stopping", "stopped", "finished", "failed", "interrupted")
ACTIVE = ("queued", "running", "paused", "stopping")
RESUMABLE = ("stopped", "failed", "interrupted")
RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")


class RunError(ValueError):
    """A run that cannot be started or steered; one message per fault."""

    def __init__(self, problems: list[str], source: str = "run"):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{source}: cannot start the run, {len(problems)} problem(s)\n{lines}"
            if len(problems) > 1
            else f"{source}: {problems[0]}"
        )


# Where runs live


def models_dir(root: Path) -> Path:
    return root / "models"


def model_slug(name: str) -> str:
    """'Tabular classification (MLP)' -> 'tabular-classification-mlp'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64] or "model"


def new_run_id() -> str:
    """Start time to the second, then a short random part so two runs never share an id."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


ELSEWHERE = ".run-dirs.json"  # in models/: runs made with --run-dir, by path in the workspace


def register_elsewhere(root: Path, folder: Path) -> None:
    """Remember a run directory outside models/ (made with --run-dir), so that listings and
    look-ups by id find it like any other run."""
    index = models_dir(root) / ELSEWHERE
    with locked(index.with_suffix(".lock")):
        known = _elsewhere_paths(root)
        relative = folder.resolve().relative_to(root.resolve()).as_posix()
        if relative not in known:
            write_json(index, {"runs": [*known, relative]})


def _elsewhere_paths(root: Path) -> list[str]:
    try:
        return list(json.loads((models_dir(root) / ELSEWHERE).read_text())["runs"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return []


def _elsewhere(root: Path) -> list[Path]:
    """The registered run directories outside models/ that still hold a run."""
    folders = []
    for relative in _elsewhere_paths(root):
        try:
            folder = inside(root, relative)
        except ValueError:
            continue
        if (folder / RUN).is_file():
            folders.append(folder)
    return folders


def find_run(root: Path, run: str | os.PathLike) -> Path:
    """The directory of a run given by its id or by its directory (inside the workspace)."""
    text = str(run)
    if RUN_ID.fullmatch(text):
        found = sorted(models_dir(root).glob(f"*/runs/{text}"))
        if found:
            return found[0]
    named = [f for f in _elsewhere(root) if read_info(f).get("id") == text]
    if named:
        return named[0]
    if not RUN_ID.fullmatch(text):
        path = inside(root, text)
        if (path / RUN).exists():
            return path
    known = ", ".join(r["id"] for r in list_runs(root)[:10]) or "none yet"
    raise ValueError(f"No run {text!r} (latest runs: {known})")


def spawn(
    root: Path, module: str, folder: Path, log: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, float | None]:
    """Start `python -m MODULE FOLDER` in its own session (it outlives the caller), over the
    workspace at root, its output appended to `log`; the process and its start time (None when
    it has ended already), which tell a later reader whether that pid is still this process."""
    variables = {
        **os.environ,
        "LAYERFLOW_WORKSPACE": str(root),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        **(env or {}),
    }
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(folder)],
            cwd=REPOSITORY,
            env=variables,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        started = psutil.Process(process.pid).create_time()
    except psutil.NoSuchProcess:  # it ended already; its status says why, or it reads as gone
        started = None
    return process, started


# Status


def status_lock(folder: Path) -> contextlib.AbstractContextManager[None]:
    """Every writer of a folder's status.json (launcher, runner, tester, the live callback)
    merges into it under this lock, one at a time."""
    return locked(folder / ".status.lock")


def update_status(run_dir: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge fields into the folder's status.json (atomically) and return the new status; the one
    status merge of run and test folders alike."""
    folder = Path(run_dir)
    with status_lock(folder):
        return merge_status(folder, fields)


def merge_status(folder: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """`update_status` for a caller that holds `status_lock(folder)` already."""
    new = {**read_status(folder), **fields, "updated": time.time()}
    write_json(folder / STATUS, new)
    return new


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """status.json as written, without checking the process."""
    path = Path(run_dir) / STATUS
    return json.loads(path.read_text()) if path.exists() else {}


def status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's status; `interrupted` when it says it is active but its process is gone."""
    current = read_status(run_dir)
    pid = current.get("pid")
    if (
        current.get("state") in ACTIVE
        and pid is not None
        and not alive(pid, current.get("pid_started"))
    ):
        current = {
            **current,
            "state": "interrupted",
            "reason": f"the runner process (pid {pid}) ended while the run was "
            f"{current['state']}; resume the run to continue from its last checkpoint",
        }
    return current


def alive(pid: int, started: float | None) -> bool:
    """Whether the process runs (a zombie, or another process given the same pid, does not)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(process.create_time() - started) < 1.0
    except psutil.NoSuchProcess:
        return False


# Reading


def read_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """run.json: id, model, graph name, data (name and version), created, command."""
    return json.loads((Path(run_dir) / RUN).read_text())


def get_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """All that is known of a run: its status, settings, data and version, last metrics."""
    from app.workspace import versions

    folder = Path(run_dir)
    info = read_info(folder)
    current = status(folder)
    checkpoints = folder / CHECKPOINTS
    return {
        **info,
        "dir": str(folder),
        "state": current.get("state"),
        "pid": current.get("pid"),
        "epoch": current.get("epoch", 0),
        "epochs": current.get("epochs"),
        "reason": current.get("reason"),
        "best": current.get("best"),
        "metrics": current.get("metrics", {}),
        "updated": current.get("updated"),
        "settings": json.loads((folder / SETTINGS).read_text()),
        "checkpoints": {
            name: str(checkpoints / f"{name}.keras")
            for name in ("last", "best")
            if (checkpoints / f"{name}.keras").exists()
        },
        "version": versions.current(folder),
    }


def list_runs(root: Path, model: str | None = None) -> list[dict[str, Any]]:
    """A summary of every run (under models/, and those made with --run-dir), newest first;
    only `model`'s when given."""
    pattern = f"{model_slug(model)}/runs/*" if model else "*/runs/*"
    rows = []
    folders = {f.resolve(): f for f in [*models_dir(root).glob(pattern), *_elsewhere(root)]}
    for folder in folders.values():
        if not (folder / RUN).is_file():
            continue
        info = read_info(folder)
        if model and info.get("model") != model_slug(model):
            continue
        current = status(folder)
        rows.append(
            {
                "id": info["id"],
                "model": info["model"],
                "state": current.get("state"),
                "epoch": current.get("epoch", 0),
                "epochs": current.get("epochs"),
                "data": info["data"]["name"],
                "created": info["created"],
                "best": current.get("best"),
                "search": info.get("search"),  # {"study", "trial"} for a search's trial
                "dir": str(folder),
            }
        )
    return sorted(rows, key=lambda row: row["created"], reverse=True)


# Steering: control.json, which the runner reads between batches


def read_control(run_dir: str | os.PathLike) -> str:
    path = Path(run_dir) / CONTROL
    try:
        return json.loads(path.read_text()).get("action", "run")
    except (FileNotFoundError, json.JSONDecodeError):
        return "run"


def pause(run_dir: str | os.PathLike) -> None:
    """Ask the runner to hold between two batches until `resume`."""
    _ask(run_dir, "pause", ("queued", "running", "paused"))


def resume(run_dir: str | os.PathLike) -> None:
    """Let a paused run go on."""
    _ask(run_dir, "run", ("queued", "running", "paused"))


def stop(run_dir: str | os.PathLike) -> None:
    """Ask the runner to end after the current batch, saving a checkpoint; it can be resumed."""
    _ask(run_dir, "stop", ACTIVE)


def _ask(run_dir: str | os.PathLike, action: str, states: tuple[str, ...]) -> None:
    folder = Path(run_dir)
    state = status(folder)["state"]
    if state not in states:
        verb = {"run": "resumed", "pause": "paused", "stop": "stopped"}[action]
        raise RunError(
            [
                f"Run '{folder.name}' is {state}; only a {', '.join(states[:-1])} or "
                f"{states[-1]} run can be {verb}"
            ]
        )
    write_json(folder / CONTROL, {"action": action, "time": time.time()})


# Deleting


def delete_run(root: Path, run: str | os.PathLike) -> Path:
    """Delete a run that is not active: its directory, its DVC version record (the `.dvc` file,
    its `.gitignore` line and the versions index beside the directory) and its DVC experiment.
    Returns the directory it had. Its recorded versions stay in the DVC cache until `dvc gc`.

    Refuses a queued, running, paused or stopping run, and a run whose runner process is still
    at work (a finished run is being recorded by DVC for a moment after it finishes).
    """
    from app.workspace import versions

    folder = find_run(root, run)
    run_id = read_info(folder)["id"]
    with status_lock(folder):  # the launcher cannot start it again meanwhile
        current = status(folder)
        if current["state"] in ACTIVE:
            raise RunError(
                [
                    f"Run '{folder.name}' is {current['state']}; stop it before deleting it "
                    f"(layerflow runs stop {folder.name})"
                ]
            )
        pid = current.get("pid")
        if pid is not None and alive(pid, current.get("pid_started")):
            raise RunError(
                [
                    f"Run '{folder.name}' is {current['state']} but its runner (pid {pid}) is "
                    "still recording it; try again in a moment"
                ]
            )
        versions.forget(root, folder)
        versions.remove_experiment(root, run_id)
        # Out of the listings at once; the files go after, and a failure leaves them there.
        trash = models_dir(root) / ".deleted" / f"{folder.name}-{secrets.token_hex(3)}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder, trash)
    shutil.rmtree(trash)
    emptied = [trash.parent]
    if folder.parent.parent.parent == models_dir(root):  # models/<model>/runs/<id>
        emptied += [folder.parent, folder.parent.parent]
    for empty in emptied:
        with contextlib.suppress(OSError):  # not empty: kept
            empty.rmdir()
    return folder


def write_json(path: Path, data: dict[str, Any]) -> None:
    """A JSON file of the run directory, written atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
