"""Repeated motifs folded into blocks: what a big imported model is built from, made visible.

Real models repeat a few motifs: ResNet's bottleneck, DenseNet's conv block, MobileNet's
inverted residual, NASNet's cells. `fold_motifs` finds the subgraphs that recur with the same
structure (the same components wired the same way, names and settings aside) and puts a Block
node in place of each use:
  - the uses of one motif share one block definition, made of the first use. What differs in
    another use's settings (filters per stage, strides) is its Block node's `params`. Custom
    code cannot be a param: uses whose code differs get a definition each;
  - a use fed by the previous use of the same definition alone, with the same params, and
    feeding nothing else, joins it: one Block node with a repeat count;
  - every layer keeps its name: a Block node's `names` give each repetition's layers the ids
    of the nodes they replace, so the folded model's weights map to the flat one's by name.

How they are found: the nodes are put in one topological order that keeps a motif together
(each node's deepest input is visited first). A stretch of that order can be a block when only
its last node feeds the rest of the graph. Such a stretch's fingerprint is each node's
component and where its inputs come from: counted back within the stretch, or numbered as the
stretch's own inputs. The fingerprint whose non-overlapping uses save the most nodes is folded,
and the search runs again on what is left, until no fingerprint recurs. Nothing is taken on
trust: `fold_motifs` returns the flat graph unchanged when the folded one would not check, or
would give other output shapes or parameter counts.

Pure Python, and quick: NASNetMobile's 772 nodes fold in under a second, EfficientNetB0's 241
in under two (bench/bench_fold.py, README's Big models).
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field

from app.graph.analysis import analyze
from app.graph.components import CATALOGUE
from app.graph.document import (
    BLOCK_NAME_PATTERN,
    NODE_ID_PATTERN,
    BlockDef,
    Edge,
    GraphDocument,
    Node,
    check,
    topological_order,
)
from app.graph.edit import clashes_with_block_layers, reads_like_block_layer

log = logging.getLogger(__name__)

MAX_SPAN = 160  # the longest stretch of nodes considered as one motif
MAX_INPUTS = 17  # BlockInput slots are 0..16
MAX_REPEAT = 100  # the Block component's limit
# Of the motifs that save nearly as many nodes as the best, the longest is folded: a whole
# bottleneck block (12 uses of 10 nodes) rather than its main path (16 uses of 8 nodes).
NEAR_BEST = 0.8
# A motif shorter than MIN_UNSHARED folds only where two uses share their settings (two Dense
# layers in a row with other units are no block worth opening), and one shorter than MIN_NODES
# where three do (a convolution and its batch normalization used twice stay in view).
MIN_UNSHARED, MIN_NODES = 4, 3
UNFOLDABLE = frozenset({"Input", "Output", "Block", "BlockInput"})


@dataclass
class _Use:
    """One use of a motif: its nodes in order (the last is its output), and the nodes feeding
    it, in the order its BlockInputs number them."""

    members: list[str]
    sources: list[str]
    variant: str = ""  # the block definition it uses
    inner: dict[str, str] = field(default_factory=dict)  # member id -> id inside the block
    params: dict = field(default_factory=dict)  # its settings that differ from the block's


def fold_motifs(doc: GraphDocument) -> GraphDocument:
    """A copy of `doc` with its repeated motifs folded into blocks; `doc` itself when nothing
    repeats or when the folded graph would not be exactly the same model (logged)."""
    uses = _find_uses(doc)
    if not uses:
        return doc
    folded = _rebuild(doc, uses)
    reason = _difference(doc, folded)
    if reason:
        log.warning("Motifs not folded: the folded graph %s", reason)
        return doc
    return folded


# Finding the motifs


def _order(doc: GraphDocument) -> list[str]:
    """A topological order in which a motif's nodes stay together: depth-first from the
    outputs, each node's deepest input (longest path from an input) visited first."""
    inputs = _inputs(doc.edges)
    depth: dict[str, int] = {}
    for node_id in topological_order([n.id for n in doc.nodes], doc.edges)[0]:
        depth[node_id] = 1 + max((depth[s] for s in inputs[node_id] if s in depth), default=-1)
    order: list[str] = []
    done: set[str] = set()
    feeding = {e.source for e in doc.edges}
    sinks = [n.id for n in doc.nodes if n.id not in feeding]
    for sink in sinks:
        stack = [(sink, False)]
        while stack:
            node_id, expanded = stack.pop()
            if node_id in done:
                continue
            if expanded:
                done.add(node_id)
                order.append(node_id)
                continue
            stack.append((node_id, True))
            # pushed shallowest first, so the deepest is popped (visited) first
            for source in sorted(inputs[node_id], key=lambda s: depth.get(s, 0)):
                if source not in done:
                    stack.append((source, False))
    return order


def _inputs(edges: list[Edge]) -> dict[str, list[str]]:
    """Node id -> the nodes feeding it, in slot order."""
    by_target: dict[str, list[Edge]] = defaultdict(list)
    for edge in edges:
        by_target[edge.target].append(edge)
    result: dict[str, list[str]] = defaultdict(list)
    for target, found in by_target.items():
        result[target] = [e.source for e in sorted(found, key=lambda e: e.slot)]
    return result


def _structure(node: Node) -> str:
    """What a motif's node must share with its counterparts: the component (and a generic Keras
    layer's class)."""
    if node.component == "KerasLayer":
        return f"KerasLayer:{node.settings.get('module', '')}.{node.settings.get('class_name')}"
    return node.component


def _find_uses(doc: GraphDocument) -> list[_Use]:
    """The uses of every motif folded: first the repeated stretches between two cuts (a node
    every path passes through, such as a ResNet block's output), each a natural block; then,
    greedily, the fingerprint saving most nodes, until none recurs."""
    nodes = {n.id: n for n in doc.nodes}
    units = _order(doc)  # node ids; a folded use stays in the order as its output's id
    inputs = _inputs(doc.edges)
    folded: dict[str, _Use] = {}  # output id -> the use it stands for

    def fold(spans: list[list[str]]) -> None:
        nonlocal units
        for span in spans:
            folded[span[-1]] = _Use(span, _sources(span, inputs))
            inputs[span[-1]] = folded[span[-1]].sources
        gone = {unit for span in spans for unit in span[:-1]}
        units = [u for u in units if u not in gone]

    fold(_repeated_segments(units, inputs, nodes))
    while (best := _best_motif(units, inputs, nodes, folded)) is not None:
        length, starts = best
        fold([units[start : start + length] for start in starts])
    return list(folded.values())


def _last_uses(units: list[str], inputs: dict[str, list[str]]) -> dict[str, int]:
    """Unit -> the position of its last consumer in `units`."""
    position = {u: i for i, u in enumerate(units)}
    last_use: dict[str, int] = {}
    for i, unit in enumerate(units):
        for source in inputs[unit]:
            if source in position:
                last_use[source] = max(last_use.get(source, -1), i)
    return last_use


def _repeated_segments(
    units: list[str], inputs: dict[str, list[str]], nodes: dict[str, Node]
) -> list[list[str]]:
    """The stretches between consecutive cuts of two nodes or more whose fingerprint recurs. A
    cut is a node that feeds several others and that every path passes through (no edge jumps
    over it): a ResNet or DenseNet block's output, a residual MobileNet block's input."""
    last_use = _last_uses(units, inputs)
    position = {u: i for i, u in enumerate(units)}
    consumers = collections.Counter(source for unit in units for source in inputs[unit])
    cuts, forks, reach = [], [], -1
    for i, unit in enumerate(units):
        if reach <= i:
            cuts.append(i)
            if consumers[unit] != 1:
                forks.append(i)  # a fork all paths pass through: a block's output
        reach = max(reach, last_use.get(unit, len(units)))

    def usable(first: int, last: int) -> bool:
        span = units[first : last + 1]
        return (2 <= len(span) <= MAX_SPAN and len(_sources(span, inputs)) <= MAX_INPUTS
                and not any(nodes[u].component in UNFOLDABLE for u in span))  # fmt: skip

    def fingerprint(first: int, last: int) -> tuple:
        return tuple(_tokens(units, first, last - first + 1, inputs, position, nodes))

    groups: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
    segments = [(before + 1, end) for before, end in itertools.pairwise(forks)]
    for first, last in segments:
        if usable(first, last):
            groups[fingerprint(first, last)].append((first, last))
    # A segment found once may begin or end with a recurring one (ResNet's last block, before
    # the head): a part from a cut on is matched against the recurring segments.
    recurring = {key for key, found in groups.items() if len(found) > 1}
    for first, last in segments:
        if usable(first, last) and len(groups[fingerprint(first, last)]) > 1:
            continue
        inner = [c for c in cuts if first <= c < last]
        parts = [(first, c) for c in inner] + [(c + 1, last) for c in inner]
        for part in parts:
            if usable(*part) and fingerprint(*part) in recurring:
                groups[fingerprint(*part)].append(part)
                break
    spans = [[units[first : last + 1] for first, last in found] for found in groups.values()]
    return [span for found in spans if len(found) > 1 and _worth(found, nodes) for span in found]


def _sources(span: list[str], inputs: dict[str, list[str]]) -> list[str]:
    """The nodes outside a stretch that feed it, in order of first use."""
    inside = set(span)
    found: list[str] = []
    for unit in span:
        for source in inputs[unit]:
            if source not in inside and source not in found:
                found.append(source)
    return found


def _best_motif(
    units: list[str], inputs: dict[str, list[str]], nodes: dict[str, Node], folded: dict
) -> tuple[int, list[int]] | None:
    """(length, starts) of the stretch fingerprint whose non-overlapping uses save the most
    nodes; None when none recurs."""
    position = {u: i for i, u in enumerate(units)}
    last_use = _last_uses(units, inputs)
    foldable = [u not in folded and nodes[u].component not in UNFOLDABLE for u in units]
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for start in range(len(units)):
        outside: dict[str, int] = {}
        reach = -1  # how far the stretch's nodes so far are consumed
        fingerprint = 0
        for end in range(start, min(len(units), start + MAX_SPAN)):
            if not foldable[end]:
                break
            token = _token(units, end, start, inputs, position, nodes, outside)
            if len(outside) > MAX_INPUTS:
                break
            fingerprint = hash((fingerprint, token))
            if end > start and reach <= end:
                groups[end - start + 1, fingerprint].append(start)
            reach = max(reach, last_use.get(units[end], len(units)))
    found: list[tuple[int, int, list[int]]] = []  # (nodes saved, length, starts)
    best_saving = 0
    for (length, _), starts in groups.items():
        if (len(starts) - 1) * (length - 1) < NEAR_BEST * best_saving:
            continue  # cannot come near the best even if every start fits
        first = _tokens(units, starts[0], length, inputs, position, nodes)
        chosen, free_from = [], 0
        for start in starts:  # ascending
            same = (
                start == starts[0]
                or _tokens(units, start, length, inputs, position, nodes) == first
            )
            if start >= free_from and same:  # the hash is checked, token by token
                chosen.append(start)
                free_from = start + length
        saving = (len(chosen) - 1) * (length - 1)
        if len(chosen) > 1 and _worth([units[c : c + length] for c in chosen], nodes):
            found.append((saving, length, chosen))
            best_saving = max(best_saving, saving)
    near = [(length, saving, chosen) for saving, length, chosen in found
            if saving >= NEAR_BEST * best_saving]  # fmt: skip
    if not near:
        return None
    length, _, chosen = max(near, key=lambda item: (item[0], item[1]))
    return length, chosen


def _worth(spans: list[list[str]], nodes: dict[str, Node]) -> bool:
    """Whether the uses of one motif are worth blocks: long enough, or sharing settings."""
    if len(spans[0]) >= MIN_UNSHARED:
        return True
    variants = collections.Counter(_settings(span, nodes) for span in spans)
    most = max(variants.values())
    return most >= 2 if len(spans[0]) >= MIN_NODES else most >= 3


def _settings(members: list[str], nodes: dict[str, Node]) -> str:
    """The members' settings and code, as a key: uses of one motif that share it share a
    block definition."""
    return json.dumps([[nodes[m].settings, nodes[m].code] for m in members], sort_keys=True)


def _codes(members: list[str], nodes: dict[str, Node]) -> str:
    """The members' code, as a key: a Block node's params carry settings, not code."""
    return json.dumps([nodes[m].code for m in members])


def _params(use: _Use, block: BlockDef, inner_ids: list[str], nodes: dict[str, Node]) -> dict:
    """A use's settings that differ from its block's, by the block's node ids: what its Block
    node's `params` say (a setting the use leaves out, the block's node gives, takes its
    default)."""
    own = {n.id: n for n in block.nodes}
    params = {}
    for member, inner in zip(use.members, inner_ids, strict=True):
        settings, base = nodes[member].settings, own[inner].settings
        differ = {k: v for k, v in settings.items() if k not in base or base[k] != v}
        if base.keys() - settings.keys():
            resolved = CATALOGUE[nodes[member].component].resolve(settings)[0]
            differ |= {k: resolved.get(k) for k in base.keys() - settings.keys()}
        if differ:
            params[inner] = differ
    return params


def _token(units, end, start, inputs, position, nodes, outside: dict[str, int]) -> tuple:
    """One node's part of a stretch's fingerprint: its structure and where each input comes
    from (so many places back in the stretch, or the stretch's input number; `outside` numbers
    them in order of first use)."""
    refs = []
    for source in inputs[units[end]]:
        at = position.get(source, -1)
        refs.append(end - at if at >= start else -1 - outside.setdefault(source, len(outside)))
    return _structure(nodes[units[end]]), tuple(refs)


def _tokens(units, start, length, inputs, position, nodes) -> list[tuple]:
    outside: dict[str, int] = {}
    return [
        _token(units, end, start, inputs, position, nodes, outside)
        for end in range(start, start + length)
    ]


# Writing the folded graph


def _rebuild(doc: GraphDocument, uses: list[_Use]) -> GraphDocument:
    nodes = {n.id: n for n in doc.nodes}
    inputs = _inputs(doc.edges)
    consumers: dict[str, set[str]] = defaultdict(set)
    for edge in doc.edges:
        consumers[edge.source].add(edge.target)
    order = {n.id: i for i, n in enumerate(doc.nodes)}
    uses.sort(key=lambda use: order[use.members[0]])
    blocks: dict[str, BlockDef] = dict(doc.blocks)
    variants: dict[tuple, str] = {}  # (the motif, its code) -> block name
    inner_ids: dict[str, list[str]] = {}  # block name -> its nodes' ids, in a use's order
    for use in uses:
        key = (_motif(use, nodes, inputs), _codes(use.members, nodes))
        if key not in variants:
            name = _free_name(_name(use.members), blocks)
            blocks[name] = _definition(use, nodes, inputs)
            variants[key] = name
            inner_ids[name] = [use.inner[m] for m in use.members]
        use.variant = variants[key]
        use.params = _params(use, blocks[use.variant], inner_ids[use.variant], nodes)
    chains = _chains(uses, consumers)
    taken = {n.id for n in doc.nodes} - {m for use in uses for m in use.members}
    replaced: dict[str, str] = {}  # a chain's output node -> its Block node
    first_member: dict[str, Node] = {}
    block_ids = [n.id for n in doc.nodes if n.component == "Block"]
    for chain in chains:
        node_id = _free_id(_name(chain[0].members), taken, block_ids)
        taken.add(node_id)
        block_ids.append(node_id)
        replaced[chain[-1].members[-1]] = node_id
        label = None
        if len(chain) > 1:
            label = f"{_name(chain[0].members)} … {_name(chain[-1].members)}"
        # each layer keeps its name (the flat graph's node id): weights load by name
        names = {
            inner: [use.members[i] for use in chain]
            for i, inner in enumerate(inner_ids[chain[0].variant])
        }
        settings = {"block": chain[0].variant, "repeat": len(chain), "names": names}
        if chain[0].params:
            settings["params"] = chain[0].params
        first_member[chain[0].members[0]] = Node(
            id=node_id, component="Block", label=label[:200] if label else None,
            settings=settings,
        )  # fmt: skip
    members = {m for use in uses for m in use.members}
    new_nodes = [
        first_member.get(n.id, n) for n in doc.nodes if n.id in first_member or n.id not in members
    ]
    edges: list[Edge] = []
    for edge in doc.edges:
        if edge.target in members:
            continue
        source = replaced.get(edge.source, edge.source)
        edges.append(Edge(source=source, target=edge.target, slot=edge.slot))
    for chain in chains:
        block_id = replaced[chain[-1].members[-1]]
        edges += [
            Edge(source=replaced.get(s, s), target=block_id, slot=slot)
            for slot, s in enumerate(chain[0].sources)
        ]
    return doc.model_copy(update={"nodes": new_nodes, "edges": edges, "blocks": blocks})


def _motif(use: _Use, nodes: dict[str, Node], inputs: dict[str, list[str]]) -> tuple:
    """The use's motif: each member's structure, and where its inputs come from (a member
    by its position, or the use's input by its number)."""
    at = {m: i for i, m in enumerate(use.members)}
    return tuple(
        (
            _structure(nodes[m]),
            tuple(at[s] if s in at else -1 - use.sources.index(s) for s in inputs[m]),
        )
        for m in use.members
    )


def _definition(use: _Use, nodes: dict[str, Node], inputs: dict[str, list[str]]) -> BlockDef:
    prefix = _prefix(use.members)
    taken: set[str] = set()
    block_nodes = []
    for slot in range(len(use.sources)):
        block_nodes.append(
            Node(id=f"input_{slot}", component="BlockInput", settings={"slot": slot})
        )
        taken.add(f"input_{slot}")
    for member in use.members:
        inner = _free_id(member[len(prefix) :] or member, taken)
        taken.add(inner)
        use.inner[member] = inner
        node = nodes[member]
        block_nodes.append(node.model_copy(update={"id": inner, "label": None}, deep=True))
    edges = []
    for member in use.members:
        for slot, source in enumerate(inputs[member]):
            origin = use.inner.get(source) or f"input_{use.sources.index(source)}"
            edges.append(Edge(source=origin, target=use.inner[member], slot=slot))
    return BlockDef(
        description=f"Folded on import from {_name(use.members)}'s {len(use.members)} layers.",
        nodes=block_nodes,
        edges=edges,
        output=use.inner[use.members[-1]],
    )


def _chains(uses: list[_Use], consumers: dict[str, set[str]]) -> list[list[_Use]]:
    """Uses grouped into repeats: a use joins the chain whose output alone feeds it, when both
    use the same one-input definition and that output feeds nothing else."""
    chains: list[list[_Use]] = []
    ending: dict[str, list[_Use]] = {}  # a chain's output -> the chain
    for use in uses:
        chain = ending.pop(use.sources[0], None) if len(use.sources) == 1 else None
        if (
            chain is not None
            and chain[-1].variant == use.variant
            and chain[-1].params == use.params
            and consumers[chain[-1].members[-1]] <= set(use.members)
            and len(chain) < MAX_REPEAT
        ):
            chain.append(use)
        else:
            if chain is not None:
                ending[chain[-1].members[-1]] = chain
            chain = [use]
            chains.append(chain)
        ending[use.members[-1]] = chain
    return chains


def _prefix(ids: list[str]) -> str:
    """The common beginning of node ids, up to a separator: `conv2_block2_` for the nodes of
    ResNet's conv2_block2."""
    common = os.path.commonprefix(ids)
    cut = max(common.rfind(c) for c in "_.-")
    return common[: cut + 1] if cut > 0 else ""


def _name(members: list[str]) -> str:
    """What a use is called: its nodes' common prefix when it numbers them (`conv2_block2`),
    else its first node's id (a use across MobileNet's block_2 and block_3 shares `block_`)."""
    common = _prefix(members).strip("_.-")
    return common if re.search(r"\d", common) else members[0]


def _free_id(wanted: str, taken: set[str], blocks: list[str] | None = None) -> str:
    """An unused node id like `wanted`; for a Block node (`blocks`: the Block nodes so far),
    also one that clashes with no Block node's layer names, as `edit.new_node_id` picks."""
    base = re.sub(r"[^A-Za-z0-9_.\-]", "_", wanted.strip("_.-") or "block")[:90]
    if not re.match(NODE_ID_PATTERN, base):
        base = f"n{base}"[:90]
    if blocks and reads_like_block_layer(f"{base}_", blocks):
        # `base` reads like a Block node's layer ('<block>_<n>_...'), and so would every
        # numbered variant: without underscores no variant can.
        base = base.replace("_", "-")

    def clashes(node_id: str) -> bool:
        return node_id in taken or (
            blocks is not None and clashes_with_block_layers(node_id, "Block", taken, blocks)
        )

    node_id, n = base, 2
    while clashes(node_id):
        node_id, n = f"{base}_{n}", n + 1
    return node_id


def _free_name(prefix: str, blocks: dict[str, BlockDef]) -> str:
    base = re.sub(r"\W", "_", prefix.strip("_.-"))[:56] or "motif"
    if not re.match(BLOCK_NAME_PATTERN, base):
        base = f"b_{base}"[:56]
    name, n = base, 2
    while name in blocks:
        name, n = f"{base}_{n}", n + 1
    return name


def _difference(flat: GraphDocument, folded: GraphDocument) -> str:
    """How the folded graph differs from the flat one as a model; empty when it does not."""
    problems = [p for p in check(folded).problems if p.level == "error"]
    if problems:
        return f"does not check: {problems[0].message}"
    before, after = analyze(flat), analyze(folded)
    if after.errors and not before.errors:
        return f"has an error: {after.errors[0].message}"
    for name in ("trainable", "non_trainable"):
        if before.totals()[name] != after.totals()[name]:
            return f"has {after.totals()[name]} {name} parameters, not {before.totals()[name]}"
    outputs = [n.id for n in flat.nodes if n.component == "Output"]
    for output in outputs:
        shape_before = before.infos.get(output) and before.infos[output].shape
        shape_after = after.infos.get(output) and after.infos[output].shape
        if shape_before != shape_after:
            return f"gives {output} the shape {shape_after}, not {shape_before}"
    return ""
