"""A Block node's layers: the names each repetition's layers take (its `names`), the settings
its `params` give its block's nodes, which node makes each Keras layer of a graph, and the
checks of all three (`app.graph.document.check` runs them). Pure Python."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from app.graph.components import CATALOGUE
from app.graph.problems import Problem, node_ref

if TYPE_CHECKING:  # the document imports this module: these are its types, for annotations
    from app.graph.document import BlockDef, GraphDocument, Node, Structure


def _error(code: str, message: str, **where: Any) -> Problem:
    return Problem("error", code, message, **where)


def block_layer_name_clashes(doc: GraphDocument) -> list[Problem]:
    """A Block node's Keras layers are named '<id>_<repetition>_<inner id>'; no other node's
    id may look like one, or per-layer results could not be mapped back to the canvas."""
    pattern = block_layer_pattern(n.id for n in doc.nodes if n.component == "Block")
    problems = []
    for node in doc.nodes if pattern else ():
        found = pattern.match(node.id)
        if found:
            owner = found.group(1)
            problems.append(
                _error(
                    "layer_name",
                    f"{node_ref(node.id, node.component)}: the id looks like a layer of block "
                    f"node '{owner}' ('{owner}_<repetition>_<node>'); rename it",
                    node=node.id,
                )
            )
    return problems


LAYER_NAME_PATTERN = r"[^/\x00-\x1f]{1,200}"  # what Keras takes as a layer's name


def block_layer_names(node_id: str, settings: dict[str, Any], block: BlockDef) -> list[dict]:
    """Each repetition's Keras layer names of a Block node (its resolved `settings`), by the id
    of the block's node: its `names`, else (a node or a repetition they leave out)
    '<node_id>_<repetition>_<id>'."""
    given = settings.get("names")
    named = {  # what check() takes; anything else is its error, and the usual names here
        key: value
        for key, value in (given.items() if isinstance(given, dict) else ())
        if isinstance(value, list) and all(isinstance(v, str) for v in value)
    }
    return [
        {
            n.id: named[n.id][rep]
            if len(named.get(n.id, ())) > rep
            else f"{node_id}_{rep + 1}_{n.id}"
            for n in block.nodes
            if n.component != "BlockInput"
        }
        for rep in range(settings.get("repeat", 1))
    ]


def specialized(block: BlockDef, params: dict[str, Any] | None) -> BlockDef:
    """The block as a Block node with these `params` uses it: each node they name with their
    settings over its own."""
    if not params:
        return block
    nodes = [
        node.model_copy(update={"settings": {**node.settings, **params[node.id]}})
        if isinstance(params.get(node.id), dict)
        else node
        for node in block.nodes
    ]
    return block.model_copy(update={"nodes": nodes})


def params_key(params: dict[str, Any] | None) -> str:
    """One text per set of a Block node's `params`: uses with the same share it."""
    return json.dumps(params or {}, sort_keys=True)


def _block_nodes_setting(doc: GraphDocument, structure: Structure, setting: str):
    """(Block node, its resolved settings, its `setting`, its block's nodes by id, BlockInputs
    aside) for each Block node of a known block whose `setting` is set."""
    for node in doc.nodes:
        settings = structure.settings.get(node.id, {})
        value, block = settings.get(setting), doc.blocks.get(settings.get("block", ""))
        if node.component == "Block" and value and block is not None:
            inner = {n.id: n for n in block.nodes if n.component != "BlockInput"}
            yield node, settings, value, inner


def params_problems(doc: GraphDocument, structure: Structure) -> list[Problem]:
    """A Block node's `params`: settings of its block's nodes, each valid for its component."""
    problems = []
    for node, settings, params, inner in _block_nodes_setting(doc, structure, "params"):
        where = f"{node_ref(node.id, 'Block')}: `params`"
        for key, value in params.items():
            message = None
            if key not in inner:
                message = f"{where} names {key!r}, not a node of block {settings['block']!r}"
            elif not isinstance(value, dict):
                message = f"{where}[{key!r}] must be an object of settings, received {value!r}"
            else:
                component = CATALOGUE.get(inner[key].component)
                errors = component.resolve({**inner[key].settings, **value})[1] if component else []
                if errors:
                    message = f"{where}[{key!r}]: {errors[0]}"
            if message:
                problems.append(_error("block_params", message[:300], node=node.id,
                                       setting="params"))  # fmt: skip
    return problems


def layer_owners(doc: GraphDocument) -> dict[str, str]:
    """The name of each Keras layer a node makes -> the id of that node, at the top level (a
    Block node owns its block's layers). Layers that Custom code makes are named by Keras, and
    are not here."""
    resolve = CATALOGUE["Block"].resolve
    return {name: node_id for node_id, name in _made_layers(doc, lambda n: resolve(n.settings)[0])}


def _made_layers(doc: GraphDocument, settings_of: Callable[[Node], dict[str, Any]]):
    """(node id, the name of a layer it makes) for every layer the graph's nodes make by name:
    a node its id and its component's `extra_layers`; a Block node its block's layers, with
    their given or usual names (`settings_of`: a Block node's resolved settings)."""
    for node in doc.nodes:
        block = doc.blocks.get(str(node.settings.get("block")))
        if node.component != "Block" or block is None:
            yield from ((node.id, name) for name in _layers_named(node.id, node.component))
            continue
        components = {n.id: n.component for n in block.nodes}
        for names in block_layer_names(node.id, settings_of(node), block):
            for inner, name in names.items():
                yield from ((node.id, made) for made in _layers_named(name, components[inner]))


def _layers_named(name: str, component: str) -> list[str]:
    spec = CATALOGUE.get(component)
    return [name, *(name + suffix for suffix in (spec.extra_layers if spec else ()))]


def named_layer_problems(doc: GraphDocument, structure: Structure) -> list[Problem]:
    """A Block node's `names`: for nodes of its block, a list of layer names, one per
    repetition (a repetition left out takes the usual names); and no layer name, given or
    usual, used twice in the graph (Keras would refuse to build it)."""
    problems = []
    for node, settings, names, inner in _block_nodes_setting(doc, structure, "names"):
        where = f"{node_ref(node.id, 'Block')}: `names`"
        for key, value in names.items():
            ok = isinstance(value, list) and all(
                isinstance(v, str) and re.fullmatch(LAYER_NAME_PATTERN, v) for v in value
            )  # fmt: skip
            if key not in inner:
                problem = f"{where} names {key!r}, not a node of block {settings['block']!r}"
            elif not ok:
                problem = (f"{where}[{key!r}] must be a list of layer names (one per repetition, "
                           "without '/'), received " + repr(value)[:80])  # fmt: skip
            else:
                continue
            problems.append(_error("layer_name", problem, node=node.id, setting="names"))
    if problems:
        return problems
    named = {node.id for node, *_ in _block_nodes_setting(doc, structure, "names")}
    pattern = block_layer_pattern(n.id for n in doc.nodes if n.component == "Block")
    components = {n.id: n.component for n in doc.nodes}
    makers: dict[str, str] = {}  # layer name -> the node that makes it
    for maker, name in _made_layers(doc, lambda node: structure.settings.get(node.id, {})):
        if name not in makers:
            makers[name] = maker
            continue
        first = makers[name]
        blamed = maker if maker in named else first
        if blamed in named:
            other = first if blamed == maker else maker
            also = f" (node {other!r} makes it too)" if other != blamed else ""
            problems.append(_error(
                "layer_name", f"{node_ref(blamed, 'Block')}: `names`: the layer name {name!r} "
                f"is used twice{also}", node=blamed, setting="names"))  # fmt: skip
        elif not any(x == name and pattern and pattern.match(x) for x in (maker, first)):
            # two usual names, neither an id that reads like a Block node's layer (which
            # block_layer_name_clashes names): a LastStep 'x' beside a node 'x_crop', say
            who = f"node {first!r} makes it too" if first != maker else "two of its block's nodes"
            problems.append(_error(
                "layer_name", f"{node_ref(maker, components.get(maker))}: the layer name "
                f"{name!r} is made twice ({who}); rename one", node=maker))  # fmt: skip
    return problems


def block_layer_pattern(block_ids: Iterable[str]) -> re.Pattern[str] | None:
    """What matches an id that reads like a layer of one of these Block nodes
    ('<id>_<repetition>_...'); its group 1 is the Block node's id, the first of them in order
    when it reads like the layers of several. None without Block nodes."""
    ids = list(dict.fromkeys(block_ids))
    return re.compile(f"({'|'.join(map(re.escape, ids))})_\\d+_") if ids else None
