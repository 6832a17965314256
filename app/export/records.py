"""Where exports live and how they are recorded: `models/<model>/exports/<name>/`, each with
its metadata.json, listed newest first (`list_exports`), kept out of the workspace's DVC
pipelines, and recorded as a DVC version (app.workspace.versions) once in place.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from app.errors import one_line
from app.export.options import ExportError
from app.files import atomic_write_text
from app.runtime.predictor import METADATA
from app.workspace import Workspace, runs, versions


def exports_dir(model: str) -> Path:
    """The folder of a model's exports (by the model's name or slug)."""
    return Workspace.current().models_dir / runs.model_slug(model) / "exports"


def list_exports(model: str) -> list[dict[str, Any]]:
    """The exports of a model (its name or slug), newest first: each one's metadata, with
    "folder" its path."""
    found = []
    for path in exports_dir(model).glob(f"*/{METADATA}"):
        found.append({**json.loads(path.read_text()), "folder": str(path.parent)})
    return sorted(found, key=lambda meta: meta.get("created") or 0, reverse=True)


def write_metadata(folder: Path, metadata: dict[str, Any]) -> None:
    atomic_write_text(folder / METADATA, json.dumps(metadata, indent=2, default=str) + "\n")


def keep_out_of_workspace_pipelines(exports: Path) -> None:
    """A project export holds its own dvc.yaml, which belongs to the project, not to the
    workspace's DVC repository: DVC skips files git ignores, so ignore it (and the staging
    folders) here. Once recorded, the whole export folder is ignored by the line DVC adds."""
    path = exports / ".gitignore"
    lines = path.read_text().splitlines() if path.exists() else []
    wanted = ["/.staging-*", "/*-project/dvc.yaml"]
    missing = [line for line in wanted if line not in lines]
    if missing:
        atomic_write_text(path, "\n".join([*lines, *missing]) + "\n")


def record(root: Path, folder: Path, note: str, attempts: int = 30) -> None:
    """Record the export as a DVC version, waiting a turn while another process holds DVC's
    lock."""
    for attempt in range(attempts):
        try:
            versions.record(root, folder, note=note)
            return
        except Exception as err:
            if type(err).__name__ == "LockError" and attempt < attempts - 1:
                time.sleep(1.0)
                continue
            raise ExportError(
                f"{folder}: exported, but DVC could not record it: {one_line(err)}"
            ) from err


def file_list(folder: Path, written: list[str]) -> list[dict[str, Any]]:
    """Every file of the export (those in written folders too) with its size."""
    files = []
    for name in written:
        path = folder / name
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            files.append(
                {"path": file.relative_to(folder).as_posix(), "bytes": file.stat().st_size}
            )
    return files
