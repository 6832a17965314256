"""The profiling process a project starts, as training starts its runner: `start` snapshots the
graph into the project's `profile/` folder and runs `python -m app.profile FOLDER` in its own
process; `run` (that process) profiles the snapshot, writing its progress to status.json and
the report to profile.json, each whole; `state` and `report` read them for the Model page.

A new profile replaces the last one only once it is complete: a failed or killed profile
leaves the last good report. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psutil

from app.errors import one_line
from app.files import atomic_write_text, locked
from app.graph.document import GraphDocument, load, save
from app.jsonable import json_ready
from app.workspace.runs import alive, spawn

FOLDER = "profile"
# TensorFlow runs independent ops side by side on its inter-op threads; one at a time, each op's
# time in the trace is its own and the nodes' times add up to the whole step's. A profiling
# process sets this before TensorFlow starts (`layerflow profile`, `python -m app.profile`).
ENVIRONMENT = {"TF_NUM_INTEROP_THREADS": "1"}
GRAPH, REQUEST, STATUS, REPORT, LOG, LOCK = (
    "graph.json", "request.json", "status.json", "profile.json", "profile.log", ".lock"
)  # fmt: skip


def state(folder: Path) -> dict[str, Any]:
    """status.json: state (running, done, failed), fraction, message; a running profile whose
    process is gone reads as failed."""
    path = folder / STATUS
    found = json.loads(path.read_text()) if path.is_file() else {"state": "none"}
    if found.get("state") == "running" and not alive(found["pid"], found.get("pid_started")):
        found = {**found, "state": "failed",
                 "message": f"the profiling process (pid {found['pid']}) ended early"}  # fmt: skip
    return found


def report(folder: Path) -> dict[str, Any] | None:
    """The last complete profile, or None."""
    path = folder / REPORT
    return json.loads(path.read_text()) if path.is_file() else None


def start(folder: Path, doc: GraphDocument, root: Path, batch_sizes: list[int]) -> bool:
    """Profile `doc` in a new process, unless one runs already for this folder (False)."""
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / LOCK):
        if state(folder).get("state") == "running":
            return False
        save(doc, folder / GRAPH)
        request = {"batch_sizes": batch_sizes, "graph_key": doc.content_key()}
        atomic_write_text(folder / REQUEST, json.dumps(request) + "\n")
        process, started = spawn(root, "app.profile", folder, folder / LOG, ENVIRONMENT)
        _write(folder, state="running", fraction=0.0, message="starting", pid=process.pid,
               pid_started=started)  # fmt: skip
    return True


def run(folder: Path) -> int:
    """Profile the snapshot in `folder` (the child process's work); 0 when done, 1 on error."""
    from app.profile.profiler import profile_graph

    request = json.loads((folder / REQUEST).read_text())
    me = psutil.Process()
    pid = {"pid": me.pid, "pid_started": me.create_time()}

    def say(**fields: Any) -> None:  # after `start`'s own status, which it writes under the lock
        with locked(folder / LOCK):
            _write(folder, **fields, **pid)

    try:
        found = profile_graph(
            load(folder / GRAPH), request["batch_sizes"],
            progress=lambda fraction, message: say(state="running", fraction=fraction,
                                                   message=message),
        )  # fmt: skip
    except Exception as error:  # noqa: BLE001 - said in the status, in one line
        say(state="failed", fraction=1.0, message=one_line(error))
        return 1
    found["graph_key"] = request["graph_key"]
    atomic_write_text(folder / REPORT, json.dumps(json_ready(found)) + "\n")
    say(state="done", fraction=1.0, message="done")
    return 0


def _write(folder: Path, **fields: Any) -> None:
    atomic_write_text(folder / STATUS, json.dumps({**fields, "updated": time.time()}) + "\n")
