"""streamlit-flow-component 1.6.1 (MIT, Dhruv Kapur; LICENSE here), its frontend rebuilt with
LayerFlow's patch (PATCH.diff, against upstream commit 751d62b; rebuild with build.sh). The
patch:

- with a manual layout (LayerFlow places the nodes), no ELK layout pass runs when the canvas
  mounts or takes a new state; a big graph draws about a third sooner (README, Big models);
- with a manual layout, the canvas answers the first state it takes (the page then knows it is
  drawn), not each later one: that answer made Streamlit run the page's script a second time
  after every edit. It then keeps the state's own timestamp, not the browser's time, so the
  page's next state, stamped after the canvas's last answer, is taken too;
- a node's text comes as lines of plain text, each with a style (`data.lines`), drawn as
  text: no Markdown is parsed (that took a third of the canvas's script on a 1,000-node
  graph), and text from a graph is never markup. `data.content` still draws as Markdown, with
  no raw HTML, math or code highlighting; its parser, ELK's layouts and the context menus are
  chunks of their own, fetched when first used (the script a canvas loads fell from 2.2 MB
  to 0.5 MB);
- the frame takes the height the page gives the canvas, not the document's measured after
  every render (which laid out every node each time);
- a node's menu offers Delete only: its Edit edited the node's Markdown, which LayerFlow's nodes
  do not carry (their settings are edited in the page's node panel);
- an edge with `data={"hover": text}` shows that text as its label while the pointer is on it
  (the tensor it carries), and its own label again after;
- a new state keeps the objects of the nodes and edges it leaves as they were (and the list
  itself when none changed), so React Flow draws again only what changed (an edit on a
  1,000-node graph draws one node, not all);
- the handlers handed to React Flow are the same functions from render to render: React Flow
  gives them to every node and edge, and a new function drew every node and edge again at
  each state (a label edit on the folded NASNetMobile: about 100 ms of the canvas's script
  before, 25 after);
- the state's `version` comes back with every answer. The page writes it into each node's data
  (`VERSION`, as the installed component can only echo node data); this wrapper sends it once
  instead, so that the nodes an edit leaves alone are equal to what the canvas has;
- an answer carries each node's id and position and each edge's ends, not whole nodes:
  Streamlit sends the last answer with every rerun (on a 1,000-node graph, 129 KB, not 878 KB).

The Python side is the installed package's: its state and element classes, and the same
arguments. Only the component's files are ours. LAYERFLOW_CANVAS=upstream draws the installed
package's own component instead, for bench/bench_app.py to measure both side by side.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import streamlit.components.v1 as components
from streamlit_flow.elements import StreamlitFlowEdge, StreamlitFlowNode
from streamlit_flow.layouts import ManualLayout
from streamlit_flow.state import StreamlitFlowState

from app.graph.canvas import markdown

_component = components.declare_component("canvas", path=str(Path(__file__).parent / "build"))
VERSION = "version"  # a key of every node's data: which of the page's states the canvas shows


def streamlit_flow(
    key: str,
    state: StreamlitFlowState,
    height: int = 500,
    fit_view: bool = False,
    show_minimap: bool = False,
    allow_new_edges: bool = False,
    get_node_on_click: bool = False,
    min_zoom: float = 0.5,
    enable_node_menu: bool = False,
    enable_edge_menu: bool = False,
    hide_watermark: bool = False,
) -> StreamlitFlowState:
    """The canvas of `state`; its last answer (nodes, edges, the selected id, the browser's
    timestamp), or `state` itself until it has answered."""
    if os.environ.get("LAYERFLOW_CANVAS") == "upstream":
        import streamlit_flow as upstream

        return upstream.streamlit_flow(
            key, _as_markdown(state), height=height, fit_view=fit_view, show_minimap=show_minimap,
            allow_new_edges=allow_new_edges, get_node_on_click=get_node_on_click,
            min_zoom=min_zoom, enable_node_menu=enable_node_menu,
            enable_edge_menu=enable_edge_menu, hide_watermark=hide_watermark,
        )  # fmt: skip
    nodes = [node.asdict() for node in state.nodes]
    versions = {node["data"].get(VERSION) for node in nodes}
    version = versions.pop() if len(versions) == 1 else None
    answer = _component(
        component="streamlit_flow",  # the frontend draws only this one
        key=key,
        nodes=[{**node, "data": {k: v for k, v in node["data"].items() if k != VERSION}}
               for node in nodes],  # fmt: skip
        version=version,
        edges=[edge.asdict() for edge in state.edges],
        timestamp=state.timestamp,
        height=height,
        fitView=fit_view,
        showControls=True,
        showMiniMap=show_minimap,
        style={},
        animateNewEdges=False,
        allowNewEdges=allow_new_edges,
        layoutOptions=ManualLayout().__to_dict__(),
        getNodeOnClick=get_node_on_click,
        getEdgeOnClick=False,
        panOnDrag=True,
        allowZoom=True,
        minZoom=min_zoom,
        enableNodeMenu=enable_node_menu,
        enablePaneMenu=False,
        enableEdgeMenu=enable_edge_menu,
        hideWatermark=hide_watermark,
    )
    if answer is None:
        return state
    for node in answer["nodes"] if version is not None else ():
        node.setdefault("data", {})[VERSION] = answer.get("version")
    return StreamlitFlowState(
        nodes=[StreamlitFlowNode.from_dict(node) for node in answer["nodes"]],
        edges=[StreamlitFlowEdge.from_dict(edge) for edge in answer["edges"]],
        selected_id=answer["selectedId"],
        timestamp=answer["timestamp"],
    )


def _as_markdown(state: StreamlitFlowState) -> StreamlitFlowState:
    """`state` with each node's text lines as Markdown (`content`), which the installed
    component renders."""
    nodes = []
    for node in state.nodes:
        node = copy.copy(node)
        node.data = {**{k: v for k, v in node.data.items() if k != "lines"},
                     "content": markdown(node.data.get("lines", []))}  # fmt: skip
        nodes.append(node)
    return StreamlitFlowState(nodes, state.edges, state.selected_id, state.timestamp)
