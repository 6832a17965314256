"""The canvas's state (streamlit-flow) of a graph, as the Model page edits it and the Search
page shows a trial's graph."""

from __future__ import annotations

import dataclasses

from streamlit_flow.elements import StreamlitFlowEdge, StreamlitFlowNode
from streamlit_flow.state import StreamlitFlowState

from app.graph import canvas
from app.graph.analysis import Analysis

VERSION = "version"  # a key of every node's data: which of our states the canvas shows


def flow_state(
    analysis: Analysis,
    selected: str | None = None,
    heat: dict[str, float] | None = None,
    editable: bool = True,
    version: str = "",
    after: int | None = None,
) -> StreamlitFlowState:
    """The canvas's nodes and edges; `heat` (node id -> 0..1) tints nodes by their profile, and
    on a big graph only the `selected` node shows more than its label and shape.

    version: written into every node's data, so that the canvas's answers say which state they
        are about (`shows`).
    after: the timestamp of the canvas's last answer, for a state sent to a canvas already
        drawn: see `stamped`.
    """
    heat = heat or {}
    nodes, edges = canvas.elements(analysis, selected)
    state = StreamlitFlowState(
        nodes=[
            StreamlitFlowNode(
                id=node.id,
                pos=(node.x, node.y),
                data={"content": node.content, VERSION: version},
                node_type=node.kind,
                source_position="bottom",
                target_position="top",
                selectable=True,
                connectable=editable,
                deletable=editable,
                draggable=editable,
                selected=node.id == selected,
                style={"border": f"2px solid {node.color}", "borderRadius": "6px",
                       "fontSize": "12px", "width": "190px", "padding": "4px",
                       **({"background": f"rgba(230, 80, 30, {0.1 + 0.8 * heat[node.id]:.2f})"}
                          if node.id in heat else {})},  # fmt: skip
            )
            for node in nodes
        ],
        edges=[
            StreamlitFlowEdge(edge.id, edge.source, edge.target, label=edge.label,
                              deletable=editable)  # fmt: skip
            for edge in edges
        ],
    )
    return state if after is None else stamped(state, after)


def stamped(state: StreamlitFlowState, after: int) -> StreamlitFlowState:
    """`state` stamped just after the canvas's answer of timestamp `after` (the browser's clock,
    not the server's: an edit made on the canvas since is then newer, and is not missed).

    The component takes a state only when it is no older than its own last answer, which it
    stamps with the browser's clock; it then answers again (its nodes, a new timestamp), and
    once more after it has laid them out. A state stamped after the last answer the server saw
    wins, unless an answer is still on its way: `shows` then tells, and the page sends the state
    again, stamped after that answer. So the canvas is never remounted for a change made beside
    it, and keeps its zoom and pan.
    """
    return dataclasses.replace(state, timestamp=after + 1)


def shows(answer: StreamlitFlowState, version: str) -> bool:
    """Whether the canvas's answer is about our state `version` (not an older one it kept)."""
    return all(node.data.get(VERSION) == version for node in answer.nodes)
