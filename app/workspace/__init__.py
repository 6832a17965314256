"""Where a user's projects, data, models and blocks live.

The workspace is the project repository by default; LAYERFLOW_WORKSPACE points elsewhere.
Paths a user gives are resolved inside it, never outside.
"""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def workspace_root() -> Path:
    return Path(os.environ.get("LAYERFLOW_WORKSPACE") or REPOSITORY).resolve()


def inside(root: Path, *parts: str) -> Path:
    """root/parts, refusing any path that would leave root (.., absolute parts, links)."""
    path = root.joinpath(*parts).resolve()
    if path != root.resolve() and root.resolve() not in path.parents:
        raise ValueError(f"{'/'.join(parts)}: path leaves the workspace {root}")
    return path
