"""Finding, starting and asking the warm model server of a run or export (no TensorFlow here:
the pages and the CLI use this, the server process loads the model).

A server records itself in `serving.json` in its folder (url, port, pid); `running` reads it
and checks that the process is alive; `start` starts one (`python -m app.serve FOLDER`, in its
own session, stopping after WARM_IDLE seconds without a request) unless one runs, one starter
at a time per folder; `stop` stops it; `predict` and `metadata` ask it over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from app.files import locked
from app.paths import inside
from app.runtime.predictor import METADATA
from app.workspace import Workspace, runs

RECORD = "serving.json"
LOCK = ".serving.lock"
LOG = "serving.log"
IDLE_ENV = "LAYERFLOW_SERVE_IDLE"
WARM_IDLE = 600.0  # seconds
START_SECONDS = 180.0


class ServeError(ValueError):
    """A server that cannot be started or that refused a request: one line."""


def target_folder(target: str | os.PathLike) -> Path:
    """The folder of a run (by id or directory) or of an export (its folder, holding
    metadata.json, given from here or from the workspace root)."""
    workspace = Workspace.current()
    for path in (Path(target), inside(workspace.root, str(target))):
        if (path / METADATA).is_file():
            return path.resolve()
    return workspace.run(target)


def read_record(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's serving.json, or None when there is none (or it cannot be read)."""
    try:
        record = json.loads((Path(folder) / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def running(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The record of the folder's server if that process is alive, else None."""
    record = read_record(folder)
    if record is None or not isinstance(record.get("pid"), int):
        return None
    return record if runs.alive(record["pid"], record.get("pid_started")) else None


def start(
    folder: str | os.PathLike, idle: float = WARM_IDLE, timeout: float = START_SECONDS
) -> dict[str, Any]:
    """The record of the folder's server, started (and waited for) unless one runs."""
    folder = Path(folder)
    with locked(folder / LOCK):
        if (record := running(folder)) is not None:
            return record
        log = folder / LOG
        process, _ = runs.spawn(
            Workspace.current().root, "app.serve", folder, log, env={IDLE_ENV: str(idle)}
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = running(folder)
            if record is not None and record["pid"] == process.pid:
                return record
            if process.poll() is not None:
                raise ServeError(f"{folder.name}: the model server ended: {_last_line(log)}")
            time.sleep(0.1)
        process.kill()
        raise ServeError(f"{folder.name}: the model server did not start in {timeout:.0f} s")


def stop(folder: str | os.PathLike, timeout: float = 30) -> bool:
    """Stop the folder's server, if one runs (SIGTERM, then wait for it to forget its record);
    whether one was running."""
    record = running(folder)
    if record is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(record["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running(folder) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    return lines[-1] if lines else "no output"


def predict(
    record: dict[str, Any], body: dict[str, Any], timeout: float = 60, verb: str = "predict"
) -> dict[str, Any]:
    """POST a TF Serving predict body to the server of `record` (or, with `verb`, a body of
    LayerFlow's reconstruct or decode); its answer."""
    return ask(f"{record['url']}:{verb}", body, timeout)


def metadata(record: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
    """The server's model metadata (signature, and LayerFlow's `layerflow` part)."""
    return ask(record["url"] + "/metadata", None, timeout)


def ask(url: str, body: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
    """GET (or, with a body, POST as JSON) `url`; the JSON answer, or ServeError with the
    server's one-line error."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read()).get("error")
        except (ValueError, AttributeError):
            message = None
        raise ServeError(message or f"HTTP {err.code} from {url}") from None
    except (urllib.error.URLError, OSError) as err:
        raise ServeError(f"no answer from {url}: {getattr(err, 'reason', err)}") from None
