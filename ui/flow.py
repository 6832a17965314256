"""The canvas's state (streamlit-flow) of a graph, as the Model page edits it and the Search
page shows a trial's graph, and what the Model page keeps of its canvas between runs
(`Canvas`)."""

from __future__ import annotations

import copy
import dataclasses
import html
from collections.abc import Callable, MutableMapping
from typing import Any

from streamlit_flow.elements import StreamlitFlowEdge, StreamlitFlowNode
from streamlit_flow.state import StreamlitFlowState

from app.graph import canvas
from app.graph.analysis import Analysis
from ui.flow_component import VERSION  # which of our states the canvas shows

COLOURINGS = ("category", "time", "memory", "none")  # what a node's fill shows


def flow_state(
    analysis: Analysis,
    selected: str | None = None,
    heat: dict[str, float] | None = None,
    editable: bool = True,
    version: str = "",
    after: int | None = None,
    by_category: bool = True,
) -> StreamlitFlowState:
    """The canvas's nodes and edges; `heat` (node id -> 0..1) tints nodes by their profile,
    else they are filled by their category (`by_category`), and on a big graph only the
    `selected` node shows more than its label and shape.

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
                data={"lines": node.lines, VERSION: version},
                node_type=node.kind,
                source_position="bottom",
                target_position="top",
                selectable=True,
                connectable=editable,
                deletable=editable,
                draggable=editable,
                selected=node.id == selected,
                style={
                    "border": f"2px solid {node.color}",
                    "borderRadius": "6px",
                    "fontSize": f"{canvas.FONT_SIZE}px",
                    "width": f"{canvas.NODE_WIDTH}px",  # canvas.node_height counts on both
                    "padding": "4px",
                    **_fill(node, heat, by_category),
                },  # fmt: skip
            )
            for node in nodes
        ],
        edges=[
            StreamlitFlowEdge(
                edge.id, edge.source, edge.target, label=edge.label, deletable=editable,
                data={"hover": edge.hover},  # shown while the pointer is on it (PATCH.diff)
            )  # fmt: skip
            for edge in edges
        ],
    )
    return state if after is None else stamped(state, after)


def category_legend(analysis: Analysis) -> str:
    """HTML: a swatch and the name of each component category in the graph."""
    present = sorted({canvas.category_of(node.component) for node in analysis.doc.nodes} - {""})
    chips = "".join(
        f'<span style="background:{canvas.category_color(name)};'
        f'border:1px solid #bbb;border-radius:4px;padding:1px 6px;margin-right:6px">'
        f"{html.escape(name)}</span>"
        for name in present
    )
    return f'<div style="font-size:12px;line-height:1.9">{chips}</div>'


def _fill(node: canvas.CanvasNode, heat: dict[str, float], by_category: bool) -> dict:
    if heat:
        share = heat.get(node.id)
        return (
            {} if share is None else {"background": f"rgba(230, 80, 30, {0.1 + 0.8 * share:.2f})"}
        )
    return {"background": node.fill} if by_category else {}


def stamped(state: StreamlitFlowState, after: int) -> StreamlitFlowState:
    """`state` stamped just after the canvas's answer of timestamp `after` (the browser's clock,
    not the server's: an edit made on the canvas since is then newer, and is not missed).

    The component takes a state only when it is no older than its own last answer, which it
    stamps with the browser's clock, or than the last state it took. (LayerFlow's build answers
    only the first state it takes; the installed component answers each one, and once more after
    laying it out.) A state stamped after the last answer the server saw wins, unless an answer
    is still on its way: `shows` then tells, and the page sends the state again, stamped after
    that answer. So the canvas is never remounted for a change made beside it, and keeps its
    zoom and pan.
    """
    return dataclasses.replace(state, timestamp=after + 1)


def shows(answer: StreamlitFlowState, version: str) -> bool:
    """Whether the canvas's answer is about our state `version` (not an older one it kept)."""
    return all(node.data.get(VERSION) == version for node in answer.nodes)


@dataclasses.dataclass
class Canvas:
    """What the Model page keeps of one canvas (a project's graph, or a block's inside) between
    runs: the state last sent, what it was made from, and the canvas's last answer.

    Each state has its own version, written into its nodes (`shows`), so an answer about an
    older state is told from one about ours; an undo gives back an earlier graph, never an
    earlier state. The component is mounted once, and mounted again (a new key) only to centre
    the view on a node (`focus`).
    """

    name: str  # the project and the open block
    mounts: int = 0
    drawn: Any = None  # what the state was made from: the graph, selection, colouring
    state: StreamlitFlowState | None = None
    version: int = 0
    seen: int = 0  # the timestamp of the canvas's last answer
    resend: bool = False  # send our state again at the end of this run
    refused: list[str] = dataclasses.field(default_factory=list)  # to show on the next run
    shown: frozenset[str] | None = None  # the nodes a new mount shows, to fit its view to them
    revealed: bool = True  # the whole graph is shown again after such a mount

    @classmethod
    def kept(cls, session: MutableMapping, name: str) -> Canvas:
        """The page's canvas `name`; a new one when the page shows another."""
        found = session.get("canvas")
        if not isinstance(found, Canvas) or found.name != name:
            found = session["canvas"] = cls(name)
        return found

    @property
    def key(self) -> str:
        return f"canvas:{self.name}:{self.mounts}"

    def mounting(self, session: MutableMapping) -> bool:
        return self.key not in session

    def draw(
        self, drawn: Any, make: Callable[[str, int], StreamlitFlowState], mounting: bool
    ) -> StreamlitFlowState:
        """Our state for the canvas: made again by `make(version, after)` when what it is made
        from (`drawn`) changed, stamped after the canvas's last answer (a mounting canvas takes
        any state; its first answer, by the browser's clock, is then newer whatever the
        server's clock says)."""
        if drawn != self.drawn or self.state is None:
            self.version += 1
            self.state = make(str(self.version), self.seen)
            self.drawn = drawn
            self.revealed = not (mounting and self.shown is not None)
            if not self.revealed:  # after `focus`: the nodes to fit the view to, alone
                for node in self.state.nodes:
                    node.hidden = node.id not in self.shown
            self.shown = None
        return self.state

    def restore(self) -> None:
        """Our state again, stamped after the canvas's last answer: the canvas drops what the
        graph refused (an edge that would make a cycle)."""
        assert self.state is not None
        self.state = stamped(self.state, self.seen)
        self.resend = True

    def focus(self, node_ids: set[str]) -> None:
        """Centre the view on these nodes: the canvas is mounted again, fitted to them alone,
        and then shown whole."""
        self.mounts += 1
        self.shown = frozenset(node_ids)
        self.drawn = None

    def answer(self, returned: StreamlitFlowState) -> StreamlitFlowState | None:
        """The canvas's answer, when it is a new one about our state (an edit to replay);
        None otherwise. An answer about an older state has our state sent again."""
        assert self.state is not None
        if returned.timestamp <= max(self.seen, self.state.timestamp):
            return None
        self.seen = returned.timestamp
        version = str(self.version)
        if not shows(returned, version):
            # sent again at the end of this run, so that a widget below still gets its click
            self.state = stamped(self.state, returned.timestamp)
            self.resend = True
            return None
        if not self.revealed:  # fitted to the focused nodes: now the whole graph
            self.version += 1
            self.state = stamped(_every_node(self.state, str(self.version)), returned.timestamp)
            self.revealed, self.resend = True, True
            return None
        return returned


def _every_node(state: StreamlitFlowState, version: str) -> StreamlitFlowState:
    nodes = copy.deepcopy(state.nodes)
    for node in nodes:
        node.hidden = False
        node.data[VERSION] = version
    return dataclasses.replace(state, nodes=nodes)
