"""Errors, warnings and tips about a graph, each tied to the node or edge it concerns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Level = Literal["error", "warning", "tip"]


@dataclass(frozen=True)
class Fix:
    """A change that resolves a problem: set settings on `node`, or insert a component
    right before it (on its first input) or right after it (before all its successors)."""

    description: str
    node: str
    set_settings: dict[str, Any] = field(default_factory=dict)
    insert: str | None = None
    where: Literal["before", "after"] = "before"


@dataclass(frozen=True)
class Problem:
    level: Level
    code: str
    message: str
    node: str | None = None
    edge: int | None = None
    setting: str | None = None
    fix: Fix | None = None

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def node_ref(node_id: str, component: str | None = None) -> str:
    return f"Node '{node_id}'" + (f" ({component})" if component else "")


class GraphError(ValueError):
    """A graph document that cannot be used; carries one problem per fault."""

    def __init__(self, problems: list[Problem], source: str = "graph"):
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p.message}" for p in problems)
        super().__init__(f"{source}: {len(problems)} error(s)\n{lines}")
