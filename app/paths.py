"""Where the workspace is, and keeping the paths a user gives inside it.

The workspace (a user's projects, data, models and blocks) is the LayerFlow repository by
default; LAYERFLOW_WORKSPACE points elsewhere. A foundation module: it imports nothing of the
engine, so every package, the pure graph engine included, may use it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def workspace_root() -> Path:
    return Path(os.environ.get("LAYERFLOW_WORKSPACE") or REPOSITORY).resolve()


# The names of projects, datasets and searches: they name folders and appear in URLs.
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_\-]{0,63}"


def named(parent: Path, name: str) -> Path:
    """parent/name for a project, dataset or search name; a ValueError saying what a name is
    for anything else."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(
            "Received an invalid value for `name`, expected a letter then letters, digits, _ "
            f"or - (64 at most). Received: name={name!r}"
        )
    return inside(parent, name)


def inside(root: Path, *parts: str) -> Path:
    """root/parts, refusing any path that would leave root (.., absolute parts, links)."""
    path = root.joinpath(*parts).resolve()
    if path != root.resolve() and root.resolve() not in path.parents:
        raise ValueError(f"{'/'.join(parts)}: path leaves the workspace {root}")
    return path
