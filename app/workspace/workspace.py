"""The Workspace: one object that knows where a user's things are and hands them out.

In the spirit of DVC's `Repo`: `Workspace.current()` (the folder LAYERFLOW_WORKSPACE names, else
the LayerFlow repository) or `Workspace(path)`, then its projects, datasets, runs, blocks,
versions and the code it trusts. The modules beside this one own each kind of thing and take
the workspace's root explicitly; callers get those things here, so that no caller reads the
environment or joins the workspace's folder names itself.

    ws = Workspace.current()
    ws.add_dataset("iris.csv", "iris", target="species")
    project = ws.create_project("flowers", doc)
    ws.runs(model="flowers")
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import trust as trusted_code
from app.graph.document import BlockDef, GraphDocument
from app.paths import inside, workspace_root
from app.workspace import blocks as block_library
from app.workspace import project as project_files
from app.workspace import runs as run_dirs
from app.workspace import versions as dvc

if TYPE_CHECKING:  # datasets bring pandas, which the app's first page does without
    from app.workspace.datasets import Dataset


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @classmethod
    def current(cls) -> Workspace:
        """The workspace this process works in (LAYERFLOW_WORKSPACE, else the repository)."""
        return cls(workspace_root())

    def path(self, *parts: str) -> Path:
        """root/parts; a ValueError for any path that would leave the workspace."""
        return inside(self.root, *parts)

    def ensure_repository(self) -> None:
        """Make the workspace a git + DVC repository if it is not one yet."""
        dvc.ensure_repository(self.root)

    # Projects: projects/<name>/

    @property
    def projects_dir(self) -> Path:
        return project_files.projects_dir(self.root)

    def project(self, name: str) -> project_files.Project:
        return project_files.open_project(self.root, name)

    def create_project(self, name: str, doc: GraphDocument) -> project_files.Project:
        return project_files.create_project(self.root, name, doc)

    def projects(self) -> list[str]:
        return project_files.list_projects(self.root)

    # Datasets: data/<name>/, each a DVC-versioned folder

    @property
    def data_dir(self) -> Path:
        return _datasets().data_dir(self.root)

    def dataset(self, name: str) -> Dataset:
        return _datasets().get(self.root, name)

    def datasets(self) -> list[dict[str, Any]]:
        return _datasets().list_datasets(self.root)

    def add_dataset(self, path: str | Path, name: str, **options: Any) -> Dataset:
        """Add a table, image folder, text file or .zip as dataset `name`; the options are
        those of app.workspace.datasets.add (target, overrides, fractions, seed, progress)."""
        return _datasets().add(self.root, path, name, **options)

    def refit_dataset(self, name: str, config: Any) -> Dataset:
        return _datasets().refit(self.root, name, config)

    def dataset_of_run(self, run_dir: Path) -> Dataset:
        """The dataset a run was trained on, at that version (a DataError otherwise)."""
        return _datasets().of_run(self.root, run_dir)

    def dataset_versions(self, name: str) -> list[dvc.Version]:
        return _datasets().dataset_versions(self.root, name)

    def restore_dataset(self, name: str, version: str) -> dvc.Version:
        return _datasets().restore(self.root, name, version)

    # Runs: models/<model>/runs/<id>/, and directories made with --run-dir

    @property
    def models_dir(self) -> Path:
        return run_dirs.models_dir(self.root)

    def run(self, run: str | os.PathLike) -> Path:
        """The directory of a run given by its id or its directory."""
        return run_dirs.find_run(self.root, run)

    def runs(self, model: str | None = None) -> list[dict[str, Any]]:
        """A summary of every run, newest first; only `model`'s when given."""
        return run_dirs.list_runs(self.root, model)

    def register_run_dir(self, folder: Path) -> None:
        run_dirs.register_elsewhere(self.root, folder)

    def delete_run(self, run: str | os.PathLike) -> Path:
        return run_dirs.delete_run(self.root, run)

    # The block library: blocks/<name>.json

    @property
    def blocks_dir(self) -> Path:
        return block_library.library_dir(self.root)

    def block(self, name: str) -> BlockDef:
        return block_library.load_block(self.root, name)

    def blocks(self) -> list[str]:
        return block_library.list_blocks(self.root)

    def save_block(self, name: str, block: BlockDef) -> Path:
        return block_library.save_block(self.root, name, block)

    def use_block(self, doc: GraphDocument, name: str) -> GraphDocument:
        """A copy of doc whose block definitions include the library's block `name`."""
        return block_library.use_block(self.root, doc, name)

    # Versions of folders in the workspace (DVC)

    def record(self, folder: str | os.PathLike, note: str = "") -> dvc.Version:
        return dvc.record(self.root, Path(folder), note)

    def versions(self, folder: str | os.PathLike) -> list[dvc.Version]:
        return dvc.versions(Path(folder))

    def restore(self, folder: str | os.PathLike, version: str) -> dvc.Version:
        return dvc.restore(self.root, Path(folder), version)

    # Code this workspace trusts (.layerflow/trusted.json)

    def trusts(self, code: str) -> bool:
        return trusted_code.is_trusted(code, self.root)

    def trust(self, codes: Iterable[str]) -> int:
        """Trust these pieces of code; how many were not trusted before."""
        return trusted_code.trust(codes, self.root)


def _datasets():
    """app.workspace.datasets, imported when first used: it brings pandas, which the app's first
    page does without (about half a second of its first drawing)."""
    from app.workspace import datasets

    return datasets
