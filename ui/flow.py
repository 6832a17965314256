"""The canvas's state (streamlit-flow) of a graph, as the Model page edits it and the Search
page shows a trial's graph."""

from __future__ import annotations

from streamlit_flow.elements import StreamlitFlowEdge, StreamlitFlowNode
from streamlit_flow.state import StreamlitFlowState

from app.graph import canvas
from app.graph.analysis import Analysis


def flow_state(
    analysis: Analysis,
    selected: str | None = None,
    heat: dict[str, float] | None = None,
    editable: bool = True,
) -> StreamlitFlowState:
    """The canvas's nodes and edges; `heat` (node id -> 0..1) tints nodes by their profile, and
    on a big graph only the `selected` node shows more than its label and shape."""
    heat = heat or {}
    nodes, edges = canvas.elements(analysis, selected)
    return StreamlitFlowState(
        nodes=[
            StreamlitFlowNode(
                id=node.id,
                pos=(node.x, node.y),
                data={"content": node.content},
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
