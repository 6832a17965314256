"""The graph as the canvas draws it, and the canvas's changes as edits of the graph.

A node's text is `lines` of plain text, each with a style; LayerFlow's build of the canvas
(ui/flow_component) draws them as text, never as markup. The installed streamlit-flow renders
Markdown instead (`markdown`), so there every piece of text that comes from a graph (labels, ids,
settings) goes through `escape_text` first: it arrives as text there too.

`elements` turns an analysed graph into plain node and edge dicts; `apply_changes` reads what
the canvas sends back (positions, deleted nodes, drawn or deleted edges) and replays it on the
graph through app.graph.edit, so the graph document stays the one source of truth. Nothing here
imports Streamlit.
"""

from __future__ import annotations

import collections
import html
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.graph.analysis import Analysis
from app.graph.components import CATALOGUE
from app.graph.components.base import fmt_shape
from app.graph.document import GraphDocument, Node
from app.graph.edit import EditError, connect, disconnect, move, remove_nodes
from app.graph.space import described

LEVEL_COLORS = {"error": "#d62728", "warning": "#ff9f1c", "tip": "#2b8cbe", None: "#9e9e9e"}
# A node's fill, by its component's palette category: light, so that text and borders read.
CATEGORY_COLORS = {
    "Input & Output": "#eceff1",
    "Core": "#dbe9fa",
    "Convolution": "#d9f2dc",
    "Pooling": "#e6f4c4",
    "Normalization": "#f9d6d5",
    "Regularization": "#fbf1c0",
    "Merge": "#eadcf7",
    "Reshaping": "#d6f0f0",
    "Resampling": "#cde8f7",
    "Text & Sequence": "#fadbe6",
    "Preprocessing": "#e8e3dc",
    "Augmentation": "#f0e4f2",
    "Blocks": "#ffe0b2",
    "Advanced": "#e0e0e0",
    "Pretrained": "#d7dbf5",
}
# Markdown's own punctuation, and $ (for the installed component's math plugin): escaped with a
# backslash so that a label reads as the characters it is made of.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$>])")


def escape_text(text: Any) -> str:
    """`text` as literal text for a Markdown-and-HTML renderer: no tag, entity, link, emphasis
    or formula can come out of it."""
    # Quotes by name: a numeric entity (&#x27;) would have its # escaped, and show as written.
    escaped = html.escape(str(text), quote=False).replace('"', "&quot;").replace("'", "&apos;")
    return escape_markdown(escaped)


def escape_markdown(text: Any) -> str:
    """`text` as literal text for a Markdown renderer that shows raw HTML as text (Streamlit's
    st.markdown): no link, emphasis or formula can come out of it."""
    return _MARKDOWN.sub(r"\\\1", str(text).replace("\n", " "))


_MARKS = {"strong": "**", "em": "*", "": ""}


def markdown(lines: Sequence[Sequence[str]]) -> str:
    """A node's (style, text) lines as Markdown, as the installed streamlit-flow takes a node's
    text: every character of the text escaped, a hard break between lines."""
    return "  \n".join(f"{_MARKS[style]}{escape_text(text)}{_MARKS[style]}"
                        for style, text in lines)  # fmt: skip


def edge_id(source: str, target: str, slot: int) -> str:
    return f"{source}->{target}#{slot}"


@dataclass
class CanvasNode:
    id: str
    x: float
    y: float
    lines: list[tuple[str, str]]  # (style: "strong", "em" or "", plain text), a line each
    level: str | None  # the worst problem on the node: error, warning, tip or None
    kind: str  # input, output or default: where its handles are
    category: str  # its component's palette category (CATEGORY_COLORS)

    @property
    def color(self) -> str:
        return LEVEL_COLORS[self.level]

    @property
    def fill(self) -> str:
        return category_color(self.category)


@dataclass
class CanvasEdge:
    id: str
    source: str
    target: str
    label: str
    hover: str  # the label while the pointer is on the edge: its slot and the tensor it carries


def node_level(analysis: Analysis, node_id: str) -> str | None:
    levels = {problem.level for problem in analysis.problems if problem.node == node_id}
    return next((level for level in ("error", "warning", "tip") if level in levels), None)


def category_color(category: str) -> str:
    return CATEGORY_COLORS.get(category, "#ffffff")


def category_of(component: str) -> str:
    found = CATALOGUE.get(component)
    return found.category if found else ""


KINDS = {"Input": "input", "BlockInput": "input", "Output": "output"}
COMPACT_FROM = 60  # nodes: from this many, a node shows its label and shape only


def elements(
    analysis: Analysis, selected: str | None = None
) -> tuple[list[CanvasNode], list[CanvasEdge]]:
    """The nodes (label, component, output shape, parameters, worst problem) and edges. On a
    big graph a node shows its label and shape only, and the selected one all of it (the node
    panel shows everything of the selected node too). The edges into and out of the selected
    node show the tensor they carry; an edge into a node with several inputs shows its slot."""
    compact = len(analysis.doc.nodes) >= COMPACT_FROM
    nodes = []
    for node in analysis.doc.nodes:
        info = analysis.infos.get(node.id)
        shape = fmt_shape(info.shape) if info else "?"
        params = f"{info.params:,} params" if info else "not built"
        title = node_title(node, analysis.settings.get(node.id, node.settings))
        lines = [("strong", title), ("", shape)]
        if not compact or node.id == selected:
            lines[1:] = [("", f"{node.component} · {shape}"), ("", params)]
        lines += [("em", line) for line in search_lines(analysis.doc, node)]
        kind = KINDS.get(node.component, "default")
        position = node.position
        nodes.append(
            CanvasNode(
                id=node.id,
                x=position.x if position else 0.0,
                y=position.y if position else 0.0,
                lines=lines,
                level=node_level(analysis, node.id),
                kind=kind,
                category=category_of(node.component),
            )
        )
    feeds = collections.Counter(edge.target for edge in analysis.doc.edges)
    edges = []
    for edge in analysis.doc.edges:
        slot = [str(edge.slot)] if feeds[edge.target] > 1 else []
        info = analysis.infos.get(edge.source)
        full = ": ".join([*slot, fmt_shape(info.shape) if info else "?"])
        edges.append(
            CanvasEdge(
                id=edge_id(edge.source, edge.target, edge.slot),
                source=edge.source,
                target=edge.target,  # plain text: React Flow draws labels as SVG text
                label=full if selected in (edge.source, edge.target) else ": ".join(slot),
                hover=full,
            )
        )
    return nodes, edges


def search_lines(doc: GraphDocument, node: Node) -> list[str]:
    """What a search varies at a top-level node, a line each (plain text): its settings, those
    inside its block's definition (for every use of the block), and whether it is optional."""
    space = doc.search
    if space is None:
        return []
    lines = [f"{name}: {described(dimension)}"
             for name, dimension in space.settings.get(node.id, {}).items()]  # fmt: skip
    if node.component == "Block":
        prefix = f"{node.settings.get('block')}/"
        lines += [f"{key.removeprefix(prefix)}.{name}: {described(dimension)}"
                  for key, settings in space.settings.items() if key.startswith(prefix)
                  for name, dimension in settings.items()]  # fmt: skip
    if node.id in space.optional:
        lines.append("optional in a search")
    return lines


def node_title(node: Node, settings: dict[str, Any]) -> str:
    """A node's first line: its label or id, and a Block's block and repeat count."""
    title = node.label or node.id
    if node.component == "Block":
        title += f" ({settings.get('block')} x{settings.get('repeat', 1)})"
    return title


# A node as the canvas draws it (ui/flow.py styles it so): NODE_WIDTH px wide, FONT_SIZE px text.
# Measured in Chromium: 28 px of frame (padding, border, margins), lines of 18 px, and about
# 22 characters to a line.
NODE_WIDTH, FONT_SIZE = 190, 12
FRAME, LINE_HEIGHT, LINE_CHARACTERS = 28, 18, 22


def node_height(node: Node, extra_lines: Sequence[str] = ()) -> float:
    """About how tall `node` is on the canvas when it shows everything (selected): its title,
    component and shape, parameters and `extra_lines` (what a search varies: `search_lines`),
    long lines wrapped at spaces as the browser does. The layout spaces its rows by it, so that
    no node covers the next."""
    lines = [node_title(node, node.settings), f"{node.component} · (None, 00, 00, 00)",
             "000,000 params", *extra_lines]  # fmt: skip
    wrapped = sum(len(textwrap.wrap(line, LINE_CHARACTERS)) or 1 for line in lines)
    return FRAME + LINE_HEIGHT * wrapped


def around(doc: GraphDocument, node_id: str, hops: int = 2) -> set[str]:
    """The node and the nodes within `hops` edges of it, either way: what a view centred on it
    shows."""
    near = {node_id}
    for _ in range(hops):
        near |= {e.target for e in doc.edges if e.source in near}
        near |= {e.source for e in doc.edges if e.target in near}
    return near


@dataclass
class Changes:
    doc: GraphDocument
    edits: list[str] = field(default_factory=list)  # what was done, one line each
    errors: list[str] = field(default_factory=list)  # edits the graph refused, one line each

    @property
    def changed(self) -> bool:
        return bool(self.edits)


def apply_changes(
    doc: GraphDocument,
    positions: dict[str, tuple[float, float]],
    edges: list[tuple[str, str]],
) -> Changes:
    """Replay on `doc` what the canvas reports: the nodes it still has (and where), and the
    edges it has (source, target). Nodes missing from `positions` were deleted; edges missing
    from `edges` were deleted; new edges were drawn. Edits the graph refuses (a cycle, a node
    fed twice) are left out and reported in `errors`."""
    result = Changes(doc)
    removed = [node.id for node in doc.nodes if node.id not in positions]
    if removed:
        result.doc = remove_nodes(result.doc, removed)
        result.edits.append(f"removed {', '.join(removed)}")
    for node in result.doc.nodes:
        x, y = positions[node.id]
        here = node.position
        if here is None or abs(here.x - x) > 0.5 or abs(here.y - y) > 0.5:
            result.doc = move(result.doc, node.id, x, y)
            result.edits.append(f"moved {node.id}")
    wanted = set(edges)
    for edge in list(result.doc.edges):
        if (edge.source, edge.target) not in wanted:
            result.doc = disconnect(result.doc, edge.source, edge.target)
            result.edits.append(f"disconnected {edge.source} -> {edge.target}")
    present = {(edge.source, edge.target) for edge in result.doc.edges}
    for source, target in edges:
        if (source, target) in present:
            continue
        try:
            result.doc = connect(result.doc, source, target)
        except EditError as error:
            result.errors.append(str(error))
        else:
            present.add((source, target))
            result.edits.append(f"connected {source} -> {target}")
    return result
