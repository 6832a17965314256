"""The graph document: LayerFlow's one source of truth, as a versioned JSON schema.

Shapes, costs, warnings, generated code, the Keras model and the canvas all derive from a
`GraphDocument`. This module defines it, loads it (with one message per problem, naming the
node, edge or setting), checks its structure and saves it atomically.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import heapq
import json
import os
import re
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.files import atomic_write_text
from app.graph.block_layers import (
    block_layer_name_clashes,
    named_layer_problems,
    params_problems,
)
from app.graph.components import CATALOGUE, TOP_LEVEL
from app.graph.problems import GraphError, Problem, node_ref
from app.paths import inside, workspace_root

SCHEMA_VERSION = 1
NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$"
BLOCK_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


class _Strict(BaseModel):
    # NaN and infinities are written as Python's json writes them (a JSON setting may hold one)
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class Position(_Strict):
    x: float = 0.0
    y: float = 0.0


class Node(_Strict):
    id: str = Field(pattern=NODE_ID_PATTERN)
    component: str
    settings: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(default=None, max_length=200)
    code: str | None = Field(default=None, max_length=100_000)
    position: Position = Field(default_factory=Position)

    @property
    def title(self) -> str:
        return self.label or self.id


class Edge(_Strict):
    source: str
    target: str
    slot: int = Field(default=0, ge=0, le=63)


class Meta(_Strict):
    name: str = Field(default="untitled", max_length=200)
    task: str | None = Field(default=None, max_length=100)
    description: str = Field(default="", max_length=5_000)
    expects: str = Field(default="", max_length=2_000)  # the data the graph is made for
    # The LayerFlow sample (`layerflow data samples`) a template is meant for and trained on.
    sample: str | None = Field(default=None, max_length=100)


class BlockDef(_Strict):
    """A reusable cell: BlockInput nodes receive the block's inputs, `output` is its result."""

    description: str = Field(default="", max_length=2_000)
    nodes: list[Node]
    edges: list[Edge] = Field(default_factory=list)
    output: str


class Range(_Strict):
    """A searched number: from `low` to `high` (on a log scale with `log`; whole numbers for an
    int setting; in steps of `step` when given)."""

    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)


class Choice(_Strict):
    """A searched setting that takes one of `choices`."""

    choices: list[Any] = Field(min_length=1, max_length=100)


class SearchSpace(_Strict):
    """What a search may vary (app.graph.space checks it against the graph): node settings by
    node id, nodes a trial may leave out, and training settings by name."""

    settings: dict[str, dict[str, Range | Choice]] = Field(default_factory=dict)
    optional: list[str] = Field(default_factory=list)
    training: dict[str, Range | Choice] = Field(default_factory=dict)


class GraphDocument(_Strict):
    schema_version: int = SCHEMA_VERSION
    meta: Meta = Field(default_factory=Meta)
    nodes: list[Node] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    blocks: dict[str, BlockDef] = Field(default_factory=dict)
    search: SearchSpace | None = None  # a search's space over this graph (app.graph.space)

    def all_nodes(self) -> list[Node]:
        """The graph's nodes, then those inside its block definitions."""
        return [*self.nodes, *(n for b in self.blocks.values() for n in b.nodes)]

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def content_key(self) -> str:
        """A short hash of the graph without its nodes' positions: what the model, its code
        and its profile depend on (moving a node changes none of them)."""
        content = self.model_dump_json(exclude={"nodes": {"__all__": {"position"}}})
        return hashlib.sha1(content.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        """The document as saved; a graph without a search space has no `search` key."""
        unsearched = {"search"} if self.search is None else None
        return self.model_dump_json(indent=2, exclude=unsearched) + "\n"


# Loading


def parse(data: Any, source: str = "graph") -> GraphDocument:
    """Turn decoded JSON into a GraphDocument, or raise GraphError listing every problem."""
    if not isinstance(data, dict):
        raise GraphError(
            [_error("document", f"expected a JSON object, received {type(data).__name__}")], source
        )
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise GraphError(
            [
                _error(
                    "schema_version",
                    f"Unsupported schema_version {version!r}; this LayerFlow "
                    f"reads version {SCHEMA_VERSION}",
                )
            ],
            source,
        )
    try:
        return GraphDocument.model_validate(data)
    except ValidationError as err:
        raise GraphError([_pydantic_problem(data, e) for e in err.errors()], source) from None


def load(path: str | os.PathLike, strict: bool = True) -> GraphDocument:
    """Read a graph document; with strict, structural errors raise GraphError too."""
    path = Path(path)
    return loads(read_text(path), str(path), strict)


def read_text(path: str | os.PathLike) -> str:
    """A graph file's text, or GraphError saying why it cannot be read."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphError([_error("file", f"{path}: no such file")], str(path)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise GraphError([_error("file", f"{path}: cannot read: {err}")], str(path)) from None


def loads(text: str, source: str = "graph", strict: bool = True) -> GraphDocument:
    """`load` of a graph file's text; `source` names the file in errors."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise GraphError(
            [
                _error(
                    "json",
                    f"{source}: not valid JSON at line {err.lineno}, column {err.colno}: "
                    f"{err.msg}",
                )
            ],
            source,
        ) from None
    except RecursionError:
        raise GraphError(
            [_error("json", f"{source}: JSON nested too deeply to be a graph document")], source
        ) from None
    doc = parse(data, source)
    if strict:
        errors = [p for p in check(doc).problems if p.level == "error"]
        if errors:
            raise GraphError(errors, source)
    return doc


def save(doc: GraphDocument, path: str | os.PathLike) -> Path:
    return atomic_write_text(path, doc.to_json())


def _error(code: str, message: str, **where: Any) -> Problem:
    return Problem("error", code, message, **where)


def _pydantic_problem(data: dict, error: dict) -> Problem:
    loc = error["loc"]
    where: dict[str, Any] = {}
    prefix = "Document"
    if len(loc) >= 2 and loc[0] in ("nodes", "edges") and isinstance(loc[1], int):
        items = data.get(loc[0]) or []
        item = items[loc[1]] if loc[1] < len(items) else {}
        if loc[0] == "nodes":
            node_id = item.get("id") if isinstance(item, dict) else None
            prefix = f"Node #{loc[1]}" + (f" '{node_id}'" if isinstance(node_id, str) else "")
            if isinstance(node_id, str):
                where["node"] = node_id
        else:
            prefix = f"Edge #{loc[1]}"
            where["edge"] = loc[1]
        loc = loc[2:]
    field = ".".join(str(part) for part in loc)
    message = error["msg"]
    if error["type"] == "string_pattern_mismatch" and field == "id":
        message = "ids start with a letter or _ and hold only letters, digits, _, . and -"
    elif error["type"] == "extra_forbidden":
        message = "unknown field"
    return _error(
        "schema", f"{prefix}: `{field}`: {message}" if field else f"{prefix}: {message}", **where
    )


# Structure


@dataclass
class Structure:
    """What the structural check learns on the way: settings with defaults, and an order."""

    problems: list[Problem]
    nodes: dict[str, Node]  # the first node of each id
    settings: dict[str, dict[str, Any]]
    inputs: dict[str, list[str]]  # node id -> source ids, by slot
    order: list[str]  # topological; empty when there is a cycle


def check(doc: GraphDocument) -> Structure:
    """Check ids, components, settings, edges, arity, cycles, Input and Output, and blocks."""
    structure = check_nodes(doc.nodes, doc.edges, allowed=TOP_LEVEL, where="")
    problems = structure.problems
    components = [n.component for n in doc.nodes]
    if "Input" not in components:
        problems.append(_error("no_input", "The graph has no Input node"))
    if "Output" not in components:
        problems.append(_error("no_output", "The graph has no Output node"))
    for node in doc.nodes:
        if node.component == "Block":
            name = structure.settings.get(node.id, {}).get("block")
            if name is not None and name not in doc.blocks:
                known = ", ".join(doc.blocks) or "none defined"
                problems.append(
                    _error(
                        "unknown_block",
                        f"{node_ref(node.id, 'Block')}: no block named {name!r} in "
                        f"this graph (blocks: {known})",
                        node=node.id,
                        setting="block",
                    )
                )
    for name, block in doc.blocks.items():
        problems.extend(check_block(name, block))
    problems.extend(block_layer_name_clashes(doc))
    problems.extend(named_layer_problems(doc, structure))
    problems.extend(params_problems(doc, structure))
    return structure


def check_block(name: str, block: BlockDef) -> list[Problem]:
    where = f"Block '{name}': "
    problems = []
    if not re.fullmatch(BLOCK_NAME_PATTERN, name):
        problems.append(_error("block_name", f"{where}block names are Python identifiers"))
    allowed = TOP_LEVEL - {"Input", "Output", "Block"} | {"BlockInput"}
    structure = check_nodes(block.nodes, block.edges, allowed=allowed, where=where)
    problems += structure.problems
    ids = {n.id for n in block.nodes}
    if block.output not in ids:
        problems.append(
            _error("block_output", f"{where}output {block.output!r} is not one of its nodes")
        )
    slots = sorted(
        structure.settings.get(n.id, {}).get("slot", 0)
        for n in block.nodes
        if n.component == "BlockInput"
    )
    if not slots:
        problems.append(_error("block_input", f"{where}has no BlockInput node"))
    elif slots != list(range(len(slots))):
        problems.append(
            _error(
                "block_input",
                f"{where}BlockInput slots must be 0..{len(slots) - 1} once each, received {slots}",
            )
        )
    return problems


def check_nodes(
    nodes: list[Node],
    edges: list[Edge],
    allowed: frozenset[str],
    where: str,
    known: dict[str, bool] | None = None,
) -> Structure:
    """The nodes' problems, resolved settings, inputs and order. `known`: whether each string
    seen names a file outside the workspace, shared by the checks of one analysis (shape
    inference checks a copy of a block for each set of params it is used with)."""
    problems: list[Problem] = []
    settings: dict[str, dict[str, Any]] = {}
    seen: dict[str, Node] = {}
    known = {} if known is None else known  # see _paths_outside_workspace
    for node in nodes:
        if node.id in seen:
            problems.append(
                _error("duplicate_id", f"{where}Duplicate node id '{node.id}'", node=node.id)
            )
            continue
        seen[node.id] = node
        component = CATALOGUE.get(node.component)
        if component is None or node.component not in allowed:
            hint = _closest(node.component, allowed)
            problems.append(
                _error(
                    "unknown_component",
                    f"{where}{node_ref(node.id)}: unknown component "
                    f"{node.component!r}" + (f"; did you mean {hint!r}?" if hint else ""),
                    node=node.id,
                )
            )
            continue
        resolved, errors = component.resolve(node.settings)
        settings[node.id] = resolved
        for message in errors:
            problems.append(
                _error(
                    "setting",
                    f"{where}{node_ref(node.id, node.component)}: {message}",
                    node=node.id,
                    setting=message.split("`")[1],
                )
            )
        if component.name == "Custom" and not (node.code or "").strip():
            problems.append(
                _error(
                    "no_code",
                    f"{where}{node_ref(node.id, 'Custom')}: the node has no code",
                    node=node.id,
                )
            )
        if node.code is not None:
            problems.extend(_check_code(node, where))
        for spec in component.settings:
            if spec.kind not in ("str", "json"):  # no other kind of setting can name a file
                continue
            name = spec.name
            for path in _paths_outside_workspace(resolved.get(name), known):
                problems.append(
                    _error(
                        "path",
                        f"{where}{node_ref(node.id, node.component)}: `{name}` names {path!r}, "
                        "outside the workspace; copy the file into the workspace and name it "
                        "there",
                        node=node.id,
                        setting=name,
                    )
                )

    incoming: dict[str, dict[int, str]] = defaultdict(dict)
    valid_edges = []
    for index, edge in enumerate(edges):
        missing = [end for end in (edge.source, edge.target) if end not in seen]
        if missing:
            problems.append(
                _error(
                    "dangling_edge",
                    f"{where}Edge #{index} ({edge.source} -> {edge.target}): no node "
                    f"named {missing[0]!r}",
                    edge=index,
                )
            )
            continue
        if edge.slot in incoming[edge.target]:
            problems.append(
                _error(
                    "slot_taken",
                    f"{where}Edge #{index} ({edge.source} -> {edge.target}): input slot "
                    f"{edge.slot} of '{edge.target}' is already fed by "
                    f"'{incoming[edge.target][edge.slot]}'",
                    edge=index,
                    node=edge.target,
                )
            )
            continue
        incoming[edge.target][edge.slot] = edge.source
        valid_edges.append(edge)

    inputs: dict[str, list[str]] = {}
    for node in seen.values():
        component = CATALOGUE.get(node.component)
        feeds = incoming.get(node.id, {})
        inputs[node.id] = [feeds[slot] for slot in sorted(feeds)]
        if component is None or node.id not in settings:
            continue
        low, high = component.inputs
        count = len(feeds)
        if count < low or (high is not None and count > high):
            wanted = (
                f"{low}"
                if low == high
                else f"at least {low}"
                if high is None
                else f"{low} to {high}"
            )
            problems.append(
                _error(
                    "arity",
                    f"{where}{node_ref(node.id, node.component)}: expects {wanted} input(s), "
                    f"received {count}",
                    node=node.id,
                )
            )
        elif feeds and sorted(feeds) != list(range(count)):
            problems.append(
                _error(
                    "slots",
                    f"{where}{node_ref(node.id, node.component)}: input slots must be "
                    f"0..{count - 1}, received {sorted(feeds)}",
                    node=node.id,
                )
            )

    order, cyclic = topological_order(list(seen), valid_edges)
    if cyclic:
        problems.append(
            _error(
                "cycle",
                f"{where}The graph has a cycle through nodes "
                + ", ".join(f"'{n}'" for n in cyclic),
                node=cyclic[0],
            )
        )
        order = []
    return Structure(problems, seen, settings, inputs, order)


def _paths_outside_workspace(value: Any, known: dict[str, bool]) -> list[str]:
    """The strings in a setting (a Keras config, say an IntegerLookup vocabulary file) that name
    a file outside the workspace: absolute, `~` or `..` paths that leave it, or relative paths
    of existing files that resolve elsewhere. Such a file would be read by the shape probe and
    end up in checkpoints and exports. `known` holds the answer for each string already seen in
    this check: a graph repeats 'same', 'relu' and Keras' config names hundreds of times."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths_outside_workspace(v, known)]
    if isinstance(value, list | tuple):
        return [p for v in value for p in _paths_outside_workspace(v, known)]
    if not isinstance(value, str) or not value or "\n" in value or len(value) > 4096:
        return []
    if value not in known:
        known[value] = _names_a_file_outside(value)
    return [value] if known[value] else []


def _names_a_file_outside(value: str) -> bool:
    path = Path(value).expanduser()
    looks_like_a_path = value.startswith(("/", "~", "\\")) or ".." in Path(value).parts
    try:
        if not (looks_like_a_path or path.exists()):
            return False
        inside(workspace_root(), str(path if path.is_absolute() else Path.cwd() / path))
    except (ValueError, OSError):
        return True
    return False


def _check_code(node: Node, where: str) -> list[Problem]:
    """Custom code must compile as the body of one function, so it cannot spill out of it."""
    source = "def _custom(inputs):\n" + textwrap.indent(node.code or "", "    ") + "\n"
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        line = (err.lineno or 2) - 1
        return [
            _error(
                "code",
                f"{where}{node_ref(node.id, node.component)}: code line {line}: {err.msg}",
                node=node.id,
                setting="code",
            )
        ]
    if len(tree.body) != 1:
        return [
            _error(
                "code",
                f"{where}{node_ref(node.id, node.component)}: code must be one function body",
                node=node.id,
                setting="code",
            )
        ]
    return []


def topological_order(ids: list[str], edges: list[Edge]) -> tuple[list[str], list[str]]:
    """Kahn's algorithm, stable in document order. Returns (order, nodes left on a cycle)."""
    position = {node_id: i for i, node_id in enumerate(ids)}
    indegree = dict.fromkeys(ids, 0)
    successors: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        if edge.source in position and edge.target in position:
            successors[edge.source].append(edge.target)
            indegree[edge.target] += 1
    ready = [(position[n], n) for n in ids if indegree[n] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, node_id = heapq.heappop(ready)
        order.append(node_id)
        for succ in successors[node_id]:
            indegree[succ] -= 1
            if indegree[succ] == 0:
                heapq.heappush(ready, (position[succ], succ))
    cyclic = [n for n in ids if indegree[n] > 0]
    return order, cyclic


def _closest(name: str, options: frozenset[str]) -> str | None:
    match = difflib.get_close_matches(name, sorted(options), n=1, cutoff=0.6)
    return match[0] if match else None
