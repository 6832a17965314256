"""Small graph documents for tests, built in code so each test states what it needs."""

from __future__ import annotations

from typing import Any

from app.graph.document import GraphDocument, parse
from app.workspace import Workspace


def chain(*nodes: tuple[str, str, dict[str, Any]], name: str = "test") -> GraphDocument:
    """A straight line of (id, component, settings) nodes, each feeding the next."""
    return parse(chain_data(*nodes, name=name))


def chain_data(*nodes: tuple[str, str, dict[str, Any]], name: str = "test") -> dict[str, Any]:
    return {
        "schema_version": 1,
        "meta": {"name": name},
        "nodes": [{"id": i, "component": c, "settings": s} for i, c, s in nodes],
        "edges": [{"source": a[0], "target": b[0]} for a, b in zip(nodes, nodes[1:], strict=False)],
    }


def single(
    component: str,
    settings: dict[str, Any],
    input_shapes: list[list[int | None]],
    dtype: str = "float32",
) -> GraphDocument:
    """Inputs -> one component -> an Output that adds nothing (no head, linear)."""
    nodes = [
        {"id": f"in{i}", "component": "Input", "settings": {"shape": shape, "dtype": dtype}}
        for i, shape in enumerate(input_shapes)
    ]
    nodes.append({"id": "under_test", "component": component, "settings": settings})
    nodes.append(
        {
            "id": "out",
            "component": "Output",
            "settings": {"units": None, "activation": "linear", "loss": "mean_squared_error"},
        }
    )
    edges = [
        {"source": f"in{i}", "target": "under_test", "slot": i} for i in range(len(input_shapes))
    ]
    edges.append({"source": "under_test", "target": "out"})
    return parse({"schema_version": 1, "meta": {"name": component}, "nodes": nodes, "edges": edges})


def trusted(doc: GraphDocument) -> GraphDocument:
    """The document, its code trusted in the current workspace (as code written here is)."""

    nodes = doc.all_nodes()
    Workspace.current().trust(n.code for n in nodes if n.code is not None)
    return doc
