"""Starting points for new graphs: ready-made graph documents in `model_templates/`.

A template is an ordinary graph document, `model_templates/<name>.json`, whose meta says what
it is for (`task`, `description`) and what data it is made for (`expects`). Adding a template
means adding a file; nothing here lists them. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.graph.document import GraphDocument, Meta, load

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "model_templates"
TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class TemplateInfo:
    """What a gallery shows of one template, read from its meta."""

    name: str  # the file name without .json, the key for load_template
    title: str  # meta.name
    task: str
    description: str
    expects: str
    nodes: int


def template_names() -> list[str]:
    """The names of the available templates, sorted."""
    return sorted(path.stem for path in TEMPLATES_DIR.glob("*.json")
                  if TEMPLATE_NAME.fullmatch(path.stem))  # fmt: skip


def list_templates() -> list[TemplateInfo]:
    """Every template with its title, task, description, expected data and node count."""
    infos = []
    for name in template_names():
        doc = load_template(name)
        infos.append(TemplateInfo(name, doc.meta.name, doc.meta.task or "", doc.meta.description,
                                  doc.meta.expects, len(doc.nodes)))  # fmt: skip
    return infos


def load_template(name: str) -> GraphDocument:
    """The template's graph document, as stored.

    Raises ValueError naming the available templates when there is no template `name`, and
    GraphError (a ValueError) when the template file itself is broken.
    """
    names = template_names()
    if not isinstance(name, str) or not TEMPLATE_NAME.fullmatch(name) or name not in names:
        raise ValueError(
            "Received an invalid value for `name`, expected one of the model templates: "
            f"{', '.join(names) or 'none installed'}. Received: name={name!r}"
        )
    return load(TEMPLATES_DIR / f"{name}.json")


def new_from_template(name: str, graph_name: str | None = None) -> GraphDocument:
    """A new graph document copied from a template, named `graph_name` (default: its title)."""
    doc = load_template(name)
    if graph_name is None:
        return doc
    if not graph_name.strip():
        raise ValueError("Received an invalid value for `graph_name`, expected a non-empty name. "
                         f"Received: graph_name={graph_name!r}")  # fmt: skip
    meta = Meta.model_validate({**doc.meta.model_dump(), "name": graph_name.strip()})
    return doc.model_copy(update={"meta": meta})
