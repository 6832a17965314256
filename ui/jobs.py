"""Work that needs TensorFlow, run from a page in a child process through the `layerflow` CLI,
so that the server process never imports TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from app.paths import REPOSITORY
from app.workspace import Workspace


@dataclass
class Outcome:
    ok: bool
    output: str  # what the command printed (its last lines on failure)


def layerflow(*args: str, timeout: float = 900) -> Outcome:
    """Run `layerflow ARGS...` in a child process over the current workspace."""
    env = {**os.environ, "LAYERFLOW_WORKSPACE": str(Workspace.current().root),
           "TF_CPP_MIN_LOG_LEVEL": "3"}  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli.main", *args],
            cwd=REPOSITORY,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Outcome(False, f"layerflow {args[0]} took more than {timeout:.0f} s and was stopped")
    text = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        lines = [line for line in text.splitlines() if line.strip()]
        return Outcome(False, "\n".join(lines[-5:]) or f"layerflow {args[0]} failed")
    return Outcome(True, text)
