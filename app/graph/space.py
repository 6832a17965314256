"""A search space on the graph (the document's `search`, a SearchSpace): which node settings a
search varies (a Range of numbers or a Choice of values), which nodes a trial may leave out,
and which training settings it varies. A node inside a block definition is searched as
`<block>/<node id>`; its value holds for every use of the block.

`space_problems` checks a space against its graph, one message per problem; `propose` makes a
space from a graph for a beginner's one-button search (widths halved and doubled, dropout
rates, Block repeats, the learning rate); `dimensions` names each searched value
(`node.setting`, `optional.node`, `training.name`) as a search samples it; `trial_graph` is the
graph one trial's values make. Pure Python.
"""

from __future__ import annotations

import math
from typing import Any

from app.graph.components import CATALOGUE
from app.graph.components.base import SettingError
from app.graph.document import Choice, GraphDocument, Node, Range, SearchSpace
from app.graph.problems import Problem

NUMBER_KINDS = ("int", "float")
UNREMOVABLE = ("Input", "Output")
WIDTH_SETTINGS = {"Dense": "units", "Conv1D": "filters", "Conv2D": "filters",
                  "Conv3D": "filters", "SeparableConv2D": "filters", "LSTM": "units",
                  "GRU": "units", "SimpleRNN": "units"}  # fmt: skip
DROPOUT_SETTINGS = {"Dropout": "rate", "SpatialDropout2D": "rate"}
LEARNING_RATE = Range(low=1e-4, high=1e-2, log=True)
MAX_REPEAT = 8


def space_problems(doc: GraphDocument) -> list[Problem]:
    """Each problem of the graph's search space, one message each (none without a space)."""
    space = doc.search
    if space is None:
        return []
    nodes = {node.id: node for node in doc.nodes}
    problems = []

    def problem(message: str, node: str | None = None, setting: str | None = None) -> None:
        problems.append(Problem("error", "search_space", message, node=node, setting=setting))

    for node_id, settings in space.settings.items():
        node = searched_node(doc, node_id)
        if node is None:
            problem(f"search.settings: {_missing(doc, node_id)}")
            continue
        spec = CATALOGUE.get(node.component)
        known = {setting.name: setting for setting in spec.settings} if spec else {}
        for name, dimension in settings.items():
            where = f"search.settings.{node_id}.{name}"
            setting = known.get(name)
            if setting is None:
                problem(f"{where}: {node.component} has no setting {name!r} (its settings: "
                        f"{', '.join(known) or 'none'})", node_id)  # fmt: skip
            elif message := _dimension_problem(dimension, setting):
                problem(f"{where}: {message}", node_id, name)
            elif (users := _users(doc, node_id)) and set(users) == set(
                _overriding(doc, node_id, name)
            ):
                problem(f"{where}: every Block node that uses the block sets it in its params "
                        f"({', '.join(users)}), so a trial would change nothing: remove it "
                        "from their params to search it")  # fmt: skip
    for node_id in space.optional:
        node = nodes.get(node_id)
        if node is None:
            problem(f"search.optional: no node with id {node_id!r}")
        elif node.component in UNREMOVABLE:
            problem(f"search.optional: {node_id} is an {node.component}; a trial cannot leave "
                    "it out", node_id)  # fmt: skip
    for name, dimension in space.training.items():
        if message := _dimension_problem(dimension, None):
            problem(f"search.training.{name}: {message}")
    return problems


def _users(doc: GraphDocument, key: str) -> list[str]:
    """The Block nodes that use the block of a `<block>/<node id>` key (none for another)."""
    block, slash, _ = key.partition("/")
    return [n.id for n in doc.nodes
            if slash and n.component == "Block" and n.settings.get("block") == block]  # fmt: skip


def _overriding(doc: GraphDocument, key: str, setting: str) -> list[str]:
    """The Block nodes whose params set `setting` of the block node a `<block>/<node id>` key
    names: for them, a trial's value of the block's own setting changes nothing."""
    inner = key.partition("/")[2]

    def sets_it(node_id: str) -> bool:
        params = doc.node(node_id).settings.get("params")  # as written: check() judges it
        given = params.get(inner) if isinstance(params, dict) else None
        return isinstance(given, dict) and setting in given

    return [node_id for node_id in _users(doc, key) if sets_it(node_id)]


def searched_node(doc: GraphDocument, key: str) -> Node | None:
    """The node a space's settings key names: a graph node's id, or `<block>/<node id>` for a
    node inside a block definition."""
    block, slash, inner = key.partition("/")
    if not slash:
        nodes, node_id = doc.nodes, key
    else:
        nodes, node_id = (doc.blocks[block].nodes if block in doc.blocks else []), inner
    return next((node for node in nodes if node.id == node_id), None)


def _missing(doc: GraphDocument, key: str) -> str:
    block, slash, inner = key.partition("/")
    if not slash:
        return f"no node with id {key!r}"
    if block not in doc.blocks:
        return f"{key}: no block named {block!r} (blocks: {', '.join(doc.blocks) or 'none'})"
    return f"{key}: block {block} has no node {inner!r}"


def split_dimension(name: str) -> tuple[str, str]:
    """A dimension's name as `dimensions` makes it, split into where and what:
    ('optional', node), ('training', setting), or (node key, setting)."""
    head, _, rest = name.partition(".")
    if head in ("optional", "training"):
        return head, rest
    key, _, setting = name.rpartition(".")  # node ids may hold dots; setting names never do
    return key, setting


def _dimension_problem(dimension: Range | Choice, setting: Any) -> str | None:
    """What is wrong with one searched value, or None. `setting` (a component's Setting, or
    None for a training setting) checks each value the dimension can take."""
    if isinstance(dimension, Range):
        if setting is not None and setting.kind not in NUMBER_KINDS:
            return f"a range needs a number setting; {setting.name} is {setting.kind}: use choices"
        if not (math.isfinite(dimension.low) and math.isfinite(dimension.high)):
            return "low and high must be finite numbers"
        if dimension.low >= dimension.high:
            return f"low ({dimension.low:g}) must be below high ({dimension.high:g})"
        if dimension.log and dimension.low <= 0:
            return f"a log range needs low above 0, received low={dimension.low:g}"
        if dimension.log and dimension.step is not None:
            return "a log range cannot have a step"
        whole_step = dimension.step is None or (
            float(dimension.step).is_integer() and dimension.step >= 1
        )
        if setting is not None and setting.kind == "int" and not whole_step:
            return f"{setting.name} is a whole number: a step must be a whole number >= 1"
        ends = (dimension.low, dimension.high)
        if setting is not None and setting.kind == "int":
            if not all(float(v).is_integer() for v in ends):
                return f"{setting.name} is a whole number: low and high must be too"
            ends = tuple(int(v) for v in ends)
        values: list[Any] = list(ends)
    else:
        values = list(dimension.choices)
        if len({repr(v) for v in values}) < len(values):
            return "the choices repeat a value"
    if setting is None:
        return None
    for value in values:
        try:
            setting.check(value)
        except SettingError as error:
            return str(error)
    return None


def described(dimension: Range | Choice) -> str:
    """A dimension in words: `8 | 16 | 32`, `0 to 0.5`, `0.0001 to 0.01, log`."""
    if isinstance(dimension, Range):
        scale = ", log" if dimension.log else ""
        step = f", step {dimension.step:g}" if dimension.step else ""
        return f"{dimension.low:g} to {dimension.high:g}{scale}{step}"
    return " | ".join(repr(choice) for choice in dimension.choices)


def dimensions(space: SearchSpace) -> dict[str, Range | Choice]:
    """Each searched value by name: `node.setting` (`block/node.setting` inside a block),
    `optional.node` (a Choice of keeping the node or not) and `training.name`."""
    found: dict[str, Range | Choice] = {}
    for node_id, settings in space.settings.items():
        for name, dimension in settings.items():
            found[f"{node_id}.{name}"] = dimension
    for node_id in space.optional:
        found[f"optional.{node_id}"] = Choice(choices=[True, False])
    for name, dimension in space.training.items():
        found[f"training.{name}"] = dimension
    return found


def propose(doc: GraphDocument) -> SearchSpace:
    """A space for a one-button search: each width (Dense units, convolution filters, RNN
    units; in the graph and in the blocks it uses) from half to twice its value, each dropout
    rate from 0 to 0.5, each Block's repeat count from 1 to twice it, and the learning rate
    from 1e-4 to 1e-2 on a log scale."""
    settings: dict[str, dict[str, Range | Choice]] = {}
    used = {n.settings.get("block") for n in doc.nodes if n.component == "Block"}
    inner = [(f"{name}/{n.id}", n) for name in doc.blocks if name in used
             for n in doc.blocks[name].nodes]  # fmt: skip
    for key, node in [*((n.id, n) for n in doc.nodes), *inner]:
        spec = CATALOGUE.get(node.component)
        if spec is None:
            continue
        values = {s.name: node.settings.get(s.name, s.default) for s in spec.settings}
        width = WIDTH_SETTINGS.get(node.component)
        if "/" in key and _overriding(doc, key, width or DROPOUT_SETTINGS.get(node.component, "")):
            continue  # a Block node's params set it: one value for the block would not do
        if width and isinstance(values.get(width), int) and values[width] >= 2:
            settings[key] = {width: Choice(choices=sorted({max(1, values[width] // 2),
                                                           values[width],
                                                           values[width] * 2}))}  # fmt: skip
        elif node.component in DROPOUT_SETTINGS:
            settings[key] = {DROPOUT_SETTINGS[node.component]: Range(low=0.0, high=0.5)}
        elif node.component == "Block" and isinstance(values.get("repeat"), int):
            top = min(MAX_REPEAT, max(2, values["repeat"] * 2))
            settings[key] = {"repeat": Range(low=1, high=top, step=1)}
    return SearchSpace(settings=settings, training={"learning_rate": LEARNING_RATE})


def trial_graph(doc: GraphDocument, values: dict[str, Any]) -> GraphDocument:
    """The graph of one trial: `values` by dimension name (as `dimensions` names them) set on
    its nodes, and each optional node valued False left out (its first input joined to what
    it fed). Training values are not the graph's and are ignored here. The trial's graph has
    no search space of its own."""
    trial = doc.model_copy(deep=True, update={"search": None})
    for name, value in values.items():
        key, setting = split_dimension(name)
        if key not in ("optional", "training"):
            node = searched_node(trial, key)
            if setting == "block" and node.settings.get("block") != value:
                for given in ("names", "params"):  # of the block it used
                    node.settings.pop(given, None)
            node.settings[setting] = value
    for name, keep in values.items():
        if name.startswith("optional.") and keep is False:
            trial = _left_out(trial, name.removeprefix("optional."))
    return trial


def _left_out(doc: GraphDocument, node_id: str) -> GraphDocument:
    """The graph without `node_id`: what it fed takes its first input instead."""
    feeding = sorted((e for e in doc.edges if e.target == node_id), key=lambda e: e.slot)
    edges = []
    for edge in doc.edges:
        if edge.target == node_id:
            continue
        if edge.source == node_id:
            if not feeding:
                continue
            edge = edge.model_copy(update={"source": feeding[0].source})
        edges.append(edge)
    nodes = [node for node in doc.nodes if node.id != node_id]
    return doc.model_copy(update={"nodes": nodes, "edges": edges})
