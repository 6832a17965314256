"""The component catalogue: every component LayerFlow can put on a canvas, by name."""

from __future__ import annotations

from app.graph.components import advanced, conv, core, merge, preprocessing, recurrent
from app.graph.components.base import Component, LayerInfo, Setting, Shape, ShapeError

CATALOGUE: dict[str, Component] = {
    c.name: c
    for module in (core, conv, recurrent, merge, preprocessing, advanced)
    for c in module.COMPONENTS
}

# Components a graph may use at its top level; BlockInput lives only inside block definitions.
TOP_LEVEL = frozenset(CATALOGUE) - {"BlockInput"}


def get(name: str) -> Component | None:
    return CATALOGUE.get(name)


__all__ = [
    "CATALOGUE",
    "TOP_LEVEL",
    "Component",
    "LayerInfo",
    "Setting",
    "Shape",
    "ShapeError",
    "get",
]
