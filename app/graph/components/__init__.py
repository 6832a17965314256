"""The component catalogue: every component LayerFlow can put on a canvas, by name."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from app.graph.components import advanced, conv, core, merge, preprocessing, recurrent
from app.graph.components.base import BACKENDS, Component, LayerInfo, Setting, Shape, ShapeError

if TYPE_CHECKING:
    from app.graph.document import GraphDocument

CATALOGUE: dict[str, Component] = {
    c.name: c
    for module in (core, conv, recurrent, merge, preprocessing, advanced)
    for c in module.COMPONENTS
}

# Components a graph may use at its top level; BlockInput lives only inside block definitions.
TOP_LEVEL = frozenset(CATALOGUE) - {"BlockInput"}


def get(name: str) -> Component | None:
    return CATALOGUE.get(name)


_TENSORFLOW = re.compile(r"\b(tf\.|tensorflow\b)")


def backend_notes(doc: GraphDocument) -> list[str]:
    """One line per node that ties the graph to fewer backends than Keras 3's three: a
    component that runs on some only, or a Custom node whose code calls TensorFlow itself."""
    notes = []
    for node in doc.all_nodes():
        spec = CATALOGUE.get(node.component)
        if spec is not None and spec.backends != BACKENDS:
            notes.append(f"{node.id} ({node.component}) runs on {', '.join(spec.backends)} only")
        if node.code and _TENSORFLOW.search(node.code):
            notes.append(f"{node.id} ({node.component}): its code calls TensorFlow, so the model "
                         "runs on the TensorFlow backend only")  # fmt: skip
    return notes


__all__ = [
    "BACKENDS",
    "CATALOGUE",
    "TOP_LEVEL",
    "Component",
    "LayerInfo",
    "Setting",
    "Shape",
    "ShapeError",
    "backend_notes",
    "get",
]
