"""A project: one model being built, kept in the workspace under projects/<name>/.

It holds the graph document, the name of the dataset it is trained on, and the settings that
belong beside the graph: preprocessing (fitted into the dataset's version by
app.workspace.datasets.refit_project) and training.
Every write is atomic; several projects can live in one workspace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.files import atomic_write_text
from app.graph.document import GraphDocument, loads, read_text, save
from app.paths import named

PROJECT, GRAPH, PREPROCESSING, TRAINING = (
    "project.json",
    "graph.json",
    "preprocessing.json",
    "training.json",
)


def projects_dir(root: Path) -> Path:
    return root / "projects"


@dataclass
class Project:
    name: str
    folder: Path

    @property
    def root(self) -> Path:
        """The workspace the project is in (projects/<name>/ in it)."""
        return self.folder.parent.parent

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.folder / PROJECT).read_text())

    def graph(self, text: str | None = None) -> GraphDocument:
        """The project's graph; `text`: its file's text, read already (`graph_text`)."""
        path = self.folder / GRAPH
        return loads(read_text(path) if text is None else text, str(path), strict=False)

    def graph_text(self) -> str:
        """The graph file's text: comparing it costs far less than reading the graph (10 ms
        for an imported NASNetMobile)."""
        return read_text(self.folder / GRAPH)

    def save_graph(self, doc: GraphDocument) -> str:
        """Save the project's graph; the text written."""
        text = doc.to_json()
        atomic_write_text(self.folder / GRAPH, text)
        return text

    @property
    def dataset(self) -> str | None:
        return self.meta.get("dataset")

    def use_dataset(self, name: str | None) -> None:
        self._update_meta(dataset=name)

    def settings(self, kind: str) -> dict[str, Any] | None:
        """The project's `preprocessing` or `training` settings, if it has its own."""
        path = self.folder / {"preprocessing": PREPROCESSING, "training": TRAINING}[kind]
        return json.loads(path.read_text()) if path.exists() else None

    def save_settings(self, kind: str, settings: dict[str, Any]) -> None:
        path = self.folder / {"preprocessing": PREPROCESSING, "training": TRAINING}[kind]
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n")

    def _update_meta(self, **changes: Any) -> None:
        atomic_write_text(self.folder / PROJECT, json.dumps({**self.meta, **changes}, indent=2))


def _folder(root: Path, name: str) -> Path:
    return named(projects_dir(root), name)


def create_project(root: Path, name: str, doc: GraphDocument) -> Project:
    folder = _folder(root, name)
    if (folder / PROJECT).exists():
        raise ValueError(f"A project named {name!r} exists already")
    save(doc, folder / GRAPH)
    atomic_write_text(folder / PROJECT, json.dumps({"name": name, "dataset": None}, indent=2))
    return Project(name, folder)


def open_project(root: Path, name: str) -> Project:
    folder = _folder(root, name)
    if not (folder / PROJECT).exists():
        known = ", ".join(list_projects(root)) or "none yet"
        raise ValueError(f"No project named {name!r} (projects: {known})")
    return Project(name, folder)


def list_projects(root: Path) -> list[str]:
    folder = projects_dir(root)
    return (
        sorted(p.name for p in folder.iterdir() if (p / PROJECT).exists())
        if (folder.is_dir())
        else []
    )
