"""The runs LayerFlowCallback makes for a `model.fit` script of the user's own: named, described
and failed as LayerFlow's own runs are (app.workspace.runs), so that they are listed with them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from app.files import atomic_write_text
from app.workspace import Workspace, runs
from app.workspace.events import EventWriter


def check_model_name(name: Any) -> None:
    """Raise ValueError unless `name` is a non-empty string."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            "Received an invalid value for `model_name`, expected a non-empty string. "
            f"Received: model_name={name!r}"
        )


def new_run_dir(model_name: str) -> Path:
    """A new run directory named as LayerFlow's own runs are (app.workspace.runs): models/<model
    slug>/runs/<start time>-<random>/ in the workspace."""
    models = Workspace.current().models_dir
    run_dir = models / runs.model_slug(model_name) / "runs" / runs.new_run_id()
    run_dir.mkdir(parents=True)
    return run_dir


def write_run_info(run_dir: Path, model_name: str) -> None:
    """The run's run.json, with the fields app.workspace.runs lists; a script's run has no
    LayerFlow dataset."""
    model = runs.model_slug(model_name)
    info = {"id": run_dir.name, "model": model, "data": {"name": None, "version": None},
            "created": time.time(), "command": list(sys.argv), "source": "callback"}  # fmt: skip
    atomic_write_text(run_dir / runs.RUN, json.dumps(info, indent=2) + "\n")


class ExitGuard:
    """Marks a run failed if the process ends while it is still running (fit raised)."""

    def __init__(self, status_path: Path):
        self.status_path = status_path

    def __call__(self) -> None:
        reason = "the process ended before training finished"
        runs.update_status(self.status_path.parent, state="failed", reason=reason)
        with EventWriter(self.status_path.parent) as writer:
            writer.write("status", state="failed", reason=reason)
