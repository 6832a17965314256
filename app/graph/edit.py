"""Editing operations on a graph document, as the canvas calls them.

Each operation is a pure function `(doc, ...) -> GraphDocument`: the input is never changed,
so the caller can keep it for undo (see `History`). An edit that cannot be made raises
`EditError` with one line naming the node, edge or setting at fault. Edits check what they
touch; whole-graph faults (a missing Output, an unfed input) are left to `app.graph.document.check`,
since a graph is often incomplete while it is being drawn.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from app.graph.block_layers import block_layer_names, block_layer_pattern, layer_owners, specialized
from app.graph.components import CATALOGUE, TOP_LEVEL, Component
from app.graph.components.advanced import CUSTOM_EXAMPLE
from app.graph.components.base import SettingError
from app.graph.document import (
    BLOCK_NAME_PATTERN,
    NODE_ID_PATTERN,
    BlockDef,
    Edge,
    GraphDocument,
    Meta,
    Node,
    Position,
)
from app.graph.problems import Fix, node_ref

MAX_SLOT = 63  # the schema's bound on Edge.slot
LAYER_GAP = 110.0  # vertical distance between layers, as app.graph.layout uses by default
BLOCK_EXCLUDED = {"Input", "Output", "Block"}  # what check_block refuses inside a block


class EditError(ValueError):
    """An edit that cannot be made; the message names the node, edge or setting."""


# Ids


def new_node_id(doc: GraphDocument, component: str) -> str:
    """The first free id '<component in lower case>_<n>', e.g. 'conv2d_3', and no name that a
    Block node gives one of its layers (its node would build a second layer of that name)."""
    base = component.lower()
    taken = {n.id for n in doc.nodes} | set(layer_owners(doc))
    block_ids = [n.id for n in doc.nodes if n.component == "Block"]
    number = 1
    while True:
        candidate = f"{base}_{number}"
        if candidate not in taken and not clashes_with_block_layers(
            candidate, component, taken, block_ids
        ):
            return candidate
        number += 1


def clashes_with_block_layers(
    candidate: str, component: str, taken: Iterable[str], block_ids: list[str]
) -> bool:
    """Whether a new node `candidate` (of `component`) clashes with a Block node's layer names,
    '<id>_<repetition>_<inner id>', which check() refuses any other node's id to read like:
    it reads like one of the `block_ids`' layers, or it is a Block whose layers some node in
    `taken` reads like."""
    if reads_like_block_layer(candidate, block_ids):
        return True
    mine = block_layer_pattern([candidate])
    return component == "Block" and any(mine.match(other) for other in taken)


def reads_like_block_layer(name: str, block_ids: Iterable[str]) -> bool:
    """Whether `name` reads like a layer of one of these Block nodes ('<id>_<n>_...')."""
    pattern = block_layer_pattern(block_ids)
    return bool(pattern and pattern.match(name))


# Nodes


def add_node(
    doc: GraphDocument,
    component: str,
    settings: dict[str, Any] | None = None,
    label: str | None = None,
    position: tuple[float, float] | None = None,
    node_id: str | None = None,
) -> tuple[GraphDocument, str]:
    """A copy of doc with a new node, and the new node's id.

    Only the settings given are written; the others keep following the component's defaults.
    A Custom node starts with example code.
    """
    spec = CATALOGUE.get(component)
    if spec is None or component not in TOP_LEVEL:
        hint = difflib.get_close_matches(component, sorted(TOP_LEVEL), n=1, cutoff=0.6)
        raise EditError(
            f"Unknown component {component!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
        )
    if node_id is None:
        node_id = new_node_id(doc, component)
    elif not re.fullmatch(NODE_ID_PATTERN, node_id):
        raise EditError(
            f"Invalid node id {node_id!r}: ids start with a letter or _ and hold only "
            "letters, digits, _, . and -"
        )
    elif any(n.id == node_id for n in doc.nodes):
        raise EditError(f"{node_ref(node_id)}: the id is already taken")
    settings = dict(settings or {})
    for name, value in settings.items():
        _check_setting(doc, node_id, spec, name, value)
    x, y = position if position is not None else (0.0, 0.0)
    node = _node(
        id=node_id,
        component=component,
        settings=settings,
        label=_clean_label(label),
        code=CUSTOM_EXAMPLE if component == "Custom" else None,
        position=_position(node_id, x, y),
    )
    new = _copy(doc)
    new.nodes.append(node)
    return new, node_id


def remove_nodes(doc: GraphDocument, ids: Iterable[str]) -> GraphDocument:
    """A copy of doc without the given nodes and the edges that touch them."""
    ids = set(ids)
    for node_id in sorted(ids):
        _find(doc, node_id)
    new = _copy(doc)
    new.nodes = [n for n in new.nodes if n.id not in ids]
    new.edges = [e for e in new.edges if e.source not in ids and e.target not in ids]
    return new


def set_settings(doc: GraphDocument, node_id: str, changes: dict[str, Any]) -> GraphDocument:
    """A copy of doc with the node's settings updated; each new value is checked first.

    A value equal to the default is written as given, so the document says it explicitly.
    """
    node = _find(doc, node_id)
    spec = CATALOGUE.get(node.component)
    if spec is None:
        raise EditError(f"{node_ref(node_id, node.component)}: unknown component")
    for name, value in changes.items():
        _check_setting(doc, node_id, spec, name, value)
    return _replace_node(doc, node_id, settings={**node.settings, **changes})


def set_label(doc: GraphDocument, node_id: str, label: str | None) -> GraphDocument:
    """A copy of doc with the node's label set; None or blank removes it."""
    _find(doc, node_id)
    return _replace_node(doc, node_id, label=_clean_label(label))


def set_code(doc: GraphDocument, node_id: str, code: str | None) -> GraphDocument:
    """A copy of doc with the node's code set (any node may carry code); None removes it.

    The code is not compiled here: it is typed a line at a time, and check() reports it.
    """
    _find(doc, node_id)
    return _replace_node(doc, node_id, code=code)


def move(doc: GraphDocument, node_id: str, x: float, y: float) -> GraphDocument:
    """A copy of doc with the node at canvas position (x, y)."""
    _find(doc, node_id)
    return _replace_node(doc, node_id, position=_position(node_id, x, y))


# Edges


def connect(doc: GraphDocument, source: str, target: str, slot: int | None = None) -> GraphDocument:
    """A copy of doc with an edge source -> target into `slot` (None: the first free slot)."""
    _find(doc, source)
    target_node = _find(doc, target)
    edge_name = f"Edge {source} -> {target}"
    if source == target:
        raise EditError(f"{edge_name}: a node cannot feed itself")
    if any(e.source == source and e.target == target for e in doc.edges):
        raise EditError(f"{edge_name}: '{source}' already feeds '{target}'")
    if _reaches(doc.edges, target, source):
        raise EditError(f"{edge_name}: '{target}' already feeds '{source}', this would be a cycle")
    fed = {e.slot: e.source for e in doc.edges if e.target == target}
    component = CATALOGUE.get(target_node.component)
    high = component.inputs[1] if component is not None else None
    ref = node_ref(target, target_node.component)
    if high == 0:
        raise EditError(f"{edge_name}: {ref} takes no inputs")
    if slot is None:
        slot = next(s for s in range(MAX_SLOT + 2) if s not in fed)
        if high is not None and slot >= high:
            raise EditError(f"{edge_name}: {ref} already has its {high} input(s)")
    elif isinstance(slot, bool) or not isinstance(slot, int) or slot < 0:
        raise EditError(f"{edge_name}: expected a slot >= 0, received slot={slot!r}")
    elif slot in fed:
        raise EditError(f"{edge_name}: input slot {slot} of '{target}' is fed by '{fed[slot]}'")
    if high is not None and slot >= high:
        raise EditError(f"{edge_name}: {ref} takes {high} input(s), received slot={slot}")
    if slot > MAX_SLOT:
        raise EditError(f"{edge_name}: a node takes at most {MAX_SLOT + 1} inputs")
    new = _copy(doc)
    new.edges.append(Edge(source=source, target=target, slot=slot))
    return new


def disconnect(doc: GraphDocument, source: str, target: str) -> GraphDocument:
    """A copy of doc without the edge source -> target.

    The target's other inputs keep their slots, so a replacement connected next fills the
    freed slot and the order of the inputs (which matters to Subtract, Concatenate) holds.
    """
    if not any(e.source == source and e.target == target for e in doc.edges):
        raise EditError(f"Edge {source} -> {target}: no such edge")
    new = _copy(doc)
    new.edges = [e for e in new.edges if not (e.source == source and e.target == target)]
    return new


# Fixes


def apply_fix(doc: GraphDocument, fix: Fix) -> GraphDocument:
    """A copy of doc with a Problem's fix applied: settings set on `fix.node`, and/or a new
    node of component `fix.insert` placed before it (on its first input) or after it (in
    front of all its successors, which keep their slots)."""
    node = _find(doc, fix.node)
    if fix.set_settings:
        doc = set_settings(doc, fix.node, fix.set_settings)
    if fix.insert is None:
        return doc
    spec = CATALOGUE.get(fix.insert)
    if spec is not None and (spec.inputs[0] > 1 or spec.inputs[1] == 0):
        raise EditError(f"Fix for {node_ref(node.id)}: {fix.insert} does not take one input")
    if fix.where == "before":
        feeds = sorted((e for e in doc.edges if e.target == node.id), key=lambda e: e.slot)
        if not feeds:
            raise EditError(f"{node_ref(node.id, node.component)}: no input to insert before")
        first = feeds[0]
        neighbours = [_find(doc, first.source), node]
        doc, inserted = add_node(doc, fix.insert, position=_between(*neighbours))
        at = doc.edges.index(first)
        doc.edges[at : at + 1] = [
            Edge(source=first.source, target=inserted, slot=0),
            Edge(source=inserted, target=node.id, slot=first.slot),
        ]
        return doc
    successors = [_find(doc, e.target) for e in doc.edges if e.source == node.id]
    below = (
        _between(*successors) if successors else (node.position.x, node.position.y + 2 * LAYER_GAP)
    )
    middle = ((node.position.x + below[0]) / 2, (node.position.y + below[1]) / 2)
    doc, inserted = add_node(doc, fix.insert, position=middle)
    doc.edges = [
        Edge(source=inserted, target=e.target, slot=e.slot) if e.source == node.id else e
        for e in doc.edges
    ]
    doc.edges.append(Edge(source=node.id, target=inserted, slot=0))
    return doc


# Blocks


def make_block(
    doc: GraphDocument, node_ids: Iterable[str], name: str, description: str = ""
) -> GraphDocument:
    """A copy of doc where the selected nodes become the block `name`, used by a new Block
    node (repeat 1) in their place.

    The selection must have one output: the only selected node that feeds unselected nodes.
    Each distinct unselected node feeding the selection becomes a BlockInput, numbered in the
    order its first edge appears in the document; the Block node takes the same inputs.
    """
    selected = list(dict.fromkeys(node_ids))
    chosen = set(selected)
    if not selected:
        raise EditError(f"Block {name!r}: select the nodes to make the block of")
    if not isinstance(name, str) or not re.fullmatch(BLOCK_NAME_PATTERN, name):
        raise EditError(f"Invalid block name {name!r}: block names are Python identifiers")
    if name in doc.blocks:
        raise EditError(f"Block {name!r}: a block of that name already exists")
    for node_id in selected:
        node = _find(doc, node_id)
        if node.component in BLOCK_EXCLUDED:
            raise EditError(
                f"Block {name!r}: {node_ref(node_id, node.component)} cannot go in a block"
            )

    incoming = [e for e in doc.edges if e.target in chosen and e.source not in chosen]
    outgoing = [e for e in doc.edges if e.source in chosen and e.target not in chosen]
    internal = [e for e in doc.edges if e.source in chosen and e.target in chosen]
    exits = [n for n in selected if any(e.source == n for e in outgoing)]
    if len(exits) != 1:
        found = ", ".join(f"'{n}'" for n in exits) or "none"
        raise EditError(
            f"Block {name!r}: exactly one selected node may feed the rest of the graph "
            f"(the block output), found {found}"
        )
    output = exits[0]
    if not incoming:
        raise EditError(f"Block {name!r}: nothing outside the selection feeds it")
    # a selected node that does not lead to the output would compute a result nobody uses
    stray = [n for n in selected if n != output and not _reaches(internal, n, output)]
    if stray:
        raise EditError(
            f"Block {name!r}: {node_ref(stray[0])} does not lead to the block output '{output}'"
        )

    sources = list(dict.fromkeys(e.source for e in incoming))
    input_ids: dict[str, str] = {}
    for slot, source in enumerate(sources):
        input_ids[source] = _unique(f"input_{slot}", chosen | set(input_ids.values()))
    block_nodes = [
        _node(id=input_ids[source], component="BlockInput", settings={"slot": slot})
        for slot, source in enumerate(sources)
    ]
    block_nodes += [n.model_copy(deep=True) for n in doc.nodes if n.id in chosen]
    block_edges = [
        Edge(source=input_ids[e.source], target=e.target, slot=e.slot) for e in incoming
    ] + [e.model_copy() for e in internal]
    block = BlockDef(description=description, nodes=block_nodes, edges=block_edges, output=output)

    new = _copy(doc)
    block_id = new_node_id(_without(new, chosen), "Block")
    members = [n for n in doc.nodes if n.id in chosen]
    x = sum(n.position.x for n in members) / len(members)
    y = sum(n.position.y for n in members) / len(members)
    block_node = _node(
        id=block_id,
        component="Block",
        settings={"block": name, "repeat": 1},
        position=Position(x=x, y=y),
    )
    # the Block node takes the place of the first selected node, keeping the document order
    first = next(i for i, n in enumerate(new.nodes) if n.id in chosen)
    new.nodes = [
        *(n for n in new.nodes[:first] if n.id not in chosen),
        block_node,
        *(n for n in new.nodes[first:] if n.id not in chosen),
    ]
    edges: list[Edge] = []
    for edge in new.edges:
        if edge in incoming:
            wired = Edge(source=edge.source, target=block_id, slot=sources.index(edge.source))
            if wired not in edges:
                edges.append(wired)
        elif edge.source == output and edge.target not in chosen:
            edges.append(Edge(source=block_id, target=edge.target, slot=edge.slot))
        elif edge.source not in chosen and edge.target not in chosen:
            edges.append(edge)
    new.edges = edges
    new.blocks[name] = block
    return new


def expand_block(doc: GraphDocument, node_id: str) -> GraphDocument:
    """A copy of doc with a Block node replaced by its definition's nodes, once per repeat.

    Inlined nodes are named as their Keras layers were (app.graph.block_layers.block_layer_names):
    '<block node>_<repetition>_<inner id>', or the names a folded import keeps, so results and
    weights of the expanded graph still map to those of the block. The block definition goes
    when no other Block node uses it.
    """
    node = _find(doc, node_id)
    ref = node_ref(node_id, node.component)
    if node.component != "Block":
        raise EditError(f"{ref}: only Block nodes can be expanded")
    settings, errors = CATALOGUE["Block"].resolve(node.settings)
    if errors:
        raise EditError(f"{ref}: {errors[0]}")
    name, repeat = settings["block"], settings["repeat"]
    block = doc.blocks.get(name)
    if block is None:
        raise EditError(f"{ref}: no block named {name!r} in this graph")
    block = specialized(block, settings.get("params"))  # with this node's own settings
    inner = {n.id: n for n in block.nodes}
    if block.output not in inner:
        raise EditError(f"{ref}: block {name!r} has no node {block.output!r} for its output")
    feeds = sorted((e for e in doc.edges if e.target == node_id), key=lambda e: e.slot)
    if repeat > 1 and len(feeds) != 1:
        raise EditError(f"{ref}: only a block with one input can be repeated")

    taken = {n.id for n in doc.nodes} - {node_id}
    # where each repetition's BlockInputs read from: the Block node's sources, in slot order,
    # for the first; the previous repetition's output for the others
    inputs = [e.source for e in feeds]
    placed: list[Node] = []
    added_edges: list[Edge] = []
    inner_nodes = [n for n in block.nodes if n.component != "BlockInput"]
    top = min((n.position.y for n in inner_nodes), default=0.0)
    left = min((n.position.x for n in inner_nodes), default=0.0)
    height = max((n.position.y for n in inner_nodes), default=0.0) - top + LAYER_GAP
    layer_names = block_layer_names(node_id, settings, block)
    for rep in range(1, repeat + 1):
        ids: dict[str, str] = {}
        for inner_node in block.nodes:
            if inner_node.component == "BlockInput":
                slot = inner_node.settings.get("slot", 0)
                if not isinstance(slot, int) or not 0 <= slot < len(inputs):
                    raise EditError(
                        f"{ref}: block {name!r} reads input {slot!r} but the node has "
                        f"{len(inputs)} input(s)"
                    )
                ids[inner_node.id] = inputs[slot]
                continue
            wanted = layer_names[rep - 1][inner_node.id]
            if not re.fullmatch(NODE_ID_PATTERN, wanted):
                wanted = f"{node_id}_{rep}_{inner_node.id}"
            new_id = _unique(wanted, taken)
            taken.add(new_id)
            ids[inner_node.id] = new_id
            position = Position(
                x=node.position.x + inner_node.position.x - left,
                y=node.position.y + inner_node.position.y - top + (rep - 1) * height,
            )
            fields = {**inner_node.model_dump(), "id": new_id, "position": position.model_dump()}
            placed.append(_node(**fields))
        added_edges += [
            Edge(source=ids[e.source], target=ids[e.target], slot=e.slot)
            for e in block.edges
            if e.source in ids and e.target in ids
        ]
        inputs = [ids[block.output]]
    result = inputs[0]

    new = _copy(doc)
    at = next(i for i, n in enumerate(new.nodes) if n.id == node_id)
    new.nodes[at : at + 1] = placed
    new.edges = [
        Edge(source=result, target=e.target, slot=e.slot) if e.source == node_id else e
        for e in new.edges
        if e.target != node_id
    ] + added_edges
    still_used = any(n.component == "Block" and n.settings.get("block") == name for n in new.nodes)
    if not still_used:
        del new.blocks[name]
    return new


def inside(doc: GraphDocument, name: str) -> GraphDocument:
    """Block `name`'s nodes and edges as a graph of their own, for the edits above; `with_inside`
    puts the edited graph back."""
    block = doc.blocks.get(name)
    if block is None:
        raise EditError(f"No block named {name!r} in this graph")
    return GraphDocument(meta=Meta(name=name), nodes=block.nodes, edges=block.edges)


def with_inside(doc: GraphDocument, name: str, edited: GraphDocument) -> GraphDocument:
    """A copy of doc whose block `name` holds the nodes and edges of `edited` (see `inside`).
    The Block nodes that use it forget the names and params of nodes no longer in it."""
    new = _copy(doc)
    block = new.blocks[name]
    new.blocks[name] = block.model_copy(update={"nodes": edited.nodes, "edges": edited.edges})
    kept = {node.id for node in edited.nodes}
    for node in new.nodes:
        if node.component == "Block" and node.settings.get("block") == name:
            for setting in ("names", "params"):
                given = node.settings.get(setting)
                if isinstance(given, dict) and given.keys() - kept:
                    node.settings[setting] = {k: v for k, v in given.items() if k in kept}
    return new


# Undo


class History:
    """Undo and redo over documents: the current one, those before it and those undone.

    Edits are pure, so the stack holds whole documents and shares them; pushing the document
    already current is ignored, since a page that reruns may push the same state again.
    """

    def __init__(self, doc: GraphDocument, limit: int = 100):
        if limit < 1:
            raise ValueError(f"Received an invalid value for `limit`, expected >= 1: {limit}")
        self._docs = [doc]
        self._index = 0
        self.limit = limit

    @property
    def doc(self) -> GraphDocument:
        return self._docs[self._index]

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._docs) - 1

    def push(self, doc: GraphDocument) -> None:
        if doc == self.doc:
            return
        del self._docs[self._index + 1 :]
        self._docs.append(doc)
        del self._docs[: max(0, len(self._docs) - self.limit)]
        self._index = len(self._docs) - 1

    def undo(self) -> GraphDocument:
        if not self.can_undo:
            raise EditError("Nothing to undo")
        self._index -= 1
        return self.doc

    def redo(self) -> GraphDocument:
        if not self.can_redo:
            raise EditError("Nothing to redo")
        self._index += 1
        return self.doc


# Palette


def palette(query: str = "") -> dict[str, list[dict[str, str]]]:
    """Components a graph may use, grouped by category, those matching `query` only (a
    case-insensitive piece of the name, category or help)."""
    needle = query.strip().lower()
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for component in CATALOGUE.values():
        if component.name not in TOP_LEVEL:
            continue
        text = f"{component.name}\n{component.category}\n{component.help}".lower()
        if needle in text:
            groups[component.category].append({"name": component.name, "help": component.help})
    return dict(groups)


# Helpers


def _copy(doc: GraphDocument) -> GraphDocument:
    """A deep copy; through the model's dump, which is quicker than copy.deepcopy (3 against
    8 ms on the folded NASNetMobile) and keeps what a JSON setting holds (tuples, NaN)."""
    return GraphDocument.model_validate(doc.model_dump())


def _find(doc: GraphDocument, node_id: str) -> Node:
    for node in doc.nodes:
        if node.id == node_id:
            return node
    raise EditError(f"{node_ref(node_id)}: no such node in the graph")


def _node(**fields: Any) -> Node:
    """A validated Node; a field the schema refuses becomes an EditError."""
    try:
        return Node(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise EditError(f"{node_ref(str(fields.get('id')))}: `{field}`: {first['msg']}") from None


def _replace_node(doc: GraphDocument, node_id: str, **changes: Any) -> GraphDocument:
    old = _find(doc, node_id)
    fields = {**old.model_dump(), **changes}
    if isinstance(fields["position"], Position):
        fields["position"] = fields["position"].model_dump()
    node = _node(**fields)
    # The other nodes, the edges and the blocks are shared with `doc`, not copied (a tenth of
    # the time of an edit on the folded NASNetMobile): an edit that changes them in place
    # works on a copy of its own (`_copy`)
    return doc.model_copy(update={"nodes": [node if n.id == node_id else n for n in doc.nodes]})


def _check_setting(
    doc: GraphDocument, node_id: str, spec: Component, name: str, value: Any
) -> None:
    ref = node_ref(node_id, spec.name)
    setting = spec.setting(name)
    if setting is None:
        takes = ", ".join(s.name for s in spec.settings) or "no settings"
        raise EditError(f"{ref}: unknown setting `{name}`; {spec.name} takes: {takes}")
    try:
        setting.check(value)
    except SettingError as err:
        raise EditError(f"{ref}: {err}") from None
    if spec.name == "Block" and name == "block" and value not in doc.blocks:
        known = ", ".join(doc.blocks) or "none defined"
        raise EditError(f"{ref}: no block named {value!r} in this graph (blocks: {known})")


def _clean_label(label: str | None) -> str | None:
    if label is None:
        return None
    return label.strip() or None


def _position(node_id: str, x: float, y: float) -> Position:
    for axis, value in (("x", x), ("y", y)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise EditError(
                f"{node_ref(node_id)}: expected a finite number for `{axis}`, received {value!r}"
            )
    return Position(x=x, y=y)


def _between(*nodes: Node) -> tuple[float, float]:
    return (
        sum(n.position.x for n in nodes) / len(nodes),
        sum(n.position.y for n in nodes) / len(nodes),
    )


def _reaches(edges: list[Edge], start: str, goal: str) -> bool:
    """Whether a path of edges leads from start to goal."""
    successors: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        successors[edge.source].append(edge.target)
    frontier, seen = [start], {start}
    while frontier:
        current = frontier.pop()
        if current == goal:
            return True
        for succ in successors[current]:
            if succ not in seen:
                seen.add(succ)
                frontier.append(succ)
    return False


def _unique(candidate: str, taken: set[str]) -> str:
    if candidate not in taken:
        return candidate
    number = 2
    while f"{candidate}_{number}" in taken:
        number += 1
    return f"{candidate}_{number}"


def _without(doc: GraphDocument, ids: set[str]) -> GraphDocument:
    return doc.model_copy(update={"nodes": [n for n in doc.nodes if n.id not in ids]})
