"""Output shape, parameters and FLOPs of every node, in pure Python.

Each component's rule does the work; this module walks the graph in order, expands blocks
and reports a node whose inputs do not fit as an error on that node. Only the generic Keras
layer and custom code need Keras itself: their shapes come from a `Prober`, which
app.keras.probe registers when it is imported. A process without one (the Streamlit server, the
CLI) infers such a graph in a child process (`python -m app.keras.probe`), so it never imports
TensorFlow, and this package never imports app.keras.

Custom code runs only once the workspace trusts it (app.trust): an untrusted node's shape is its
declared `output_shape`, or unknown with a warning, and nothing of it runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Protocol

from app.graph.block_layers import params_key, specialized
from app.graph.components import CATALOGUE, LayerInfo, Shape, ShapeError
from app.graph.document import (
    BlockDef,
    GraphDocument,
    Node,
    Structure,
    check_nodes,
)
from app.graph.problems import Problem, node_ref
from app.trust import digest, trusted_digests


@dataclass
class ShapeResult:
    infos: dict[str, LayerInfo]
    problems: list[Problem]


class Prober(Protocol):
    """Keras' own answer for the nodes without a pure-Python rule (app.keras.probe)."""

    def layer_info(self, settings: dict[str, Any], shapes: list[Shape]) -> LayerInfo: ...

    def custom_info(self, code: str, shapes: list[Shape]) -> LayerInfo: ...


_PROBER: list[Prober] = []  # the registered prober, once app.keras.probe is imported
_CHILD_CACHE: dict[str, ShapeResult] = {}
PROBE_MODULE = "app.keras.probe"


def register_prober(prober: Prober) -> None:
    _PROBER[:] = [prober]


class UntrustedCode(ShapeError):
    """A node whose code the workspace does not trust yet: its shape is unknown, not wrong."""


def untrusted_nodes(doc: GraphDocument) -> list[Node]:
    """The nodes, blocks' included, whose code this workspace has not trusted."""
    nodes = doc.all_nodes()
    coded = [n for n in nodes if n.code is not None]
    if not coded:
        return []
    trusted = trusted_digests()
    return [n for n in coded if digest(n.code or "") not in trusted]


def infer(doc: GraphDocument, structure: Structure) -> ShapeResult:
    untrusted = frozenset(digest(n.code or "") for n in untrusted_nodes(doc))
    if needs_keras(doc, untrusted) and not _PROBER:
        return infer_in_child(doc, untrusted)
    inference = _Inference(doc, _PROBER[0] if _PROBER else None, untrusted)
    return inference.run(structure, where="")


def infer_in_child(doc: GraphDocument, untrusted: frozenset[str] = frozenset()) -> ShapeResult:
    """`infer` in a child process that may import Keras (and that reads the same trust store);
    cached per document and trust."""
    payload = doc.to_json()
    key = hashlib.sha256((payload + "".join(sorted(untrusted))).encode()).hexdigest()
    if key not in _CHILD_CACHE:
        done = subprocess.run(
            [sys.executable, "-m", PROBE_MODULE],
            input=payload,
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            timeout=300,
        )
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"the Keras shape probe failed: {tail}")
        _CHILD_CACHE[key] = result_from_json(json.loads(done.stdout))
    return _CHILD_CACHE[key]


def result_to_json(result: ShapeResult) -> dict[str, Any]:
    return {
        "infos": {
            k: {
                "shape": list(v.shape),
                "trainable": v.trainable,
                "non_trainable": v.non_trainable,
                "flops": v.flops,
            }
            for k, v in result.infos.items()
        },
        "problems": [{k: v for k, v in p.to_dict().items() if k != "fix"} for p in result.problems],
    }


def result_from_json(data: dict[str, Any]) -> ShapeResult:
    infos = {
        k: LayerInfo(tuple(v["shape"]), v["trainable"], v["non_trainable"], v["flops"])
        for k, v in data["infos"].items()
    }
    return ShapeResult(infos, [Problem(**p) for p in data["problems"]])


def block_infos(
    doc: GraphDocument, name: str, inputs: list[Shape], params: dict | None = None
) -> ShapeResult:
    """Shape, parameters and FLOPs of every node inside block `name` fed `inputs` (its first
    repetition) as a Block node with `params` uses it, and the problems found on the way."""
    block = specialized(doc.blocks[name], params)
    structure = check_nodes(block.nodes, block.edges, frozenset(CATALOGUE), "")
    untrusted = frozenset(digest(n.code or "") for n in untrusted_nodes(doc))
    inference = _Inference(doc, _PROBER[0] if _PROBER else None, untrusted)
    return inference.run(structure, "", block_inputs=inputs)


def needs_keras(doc: GraphDocument, untrusted: frozenset[str] = frozenset()) -> bool:
    """Whether some node's shape needs Keras: trusted code, or a generic Keras layer."""
    nodes = doc.all_nodes()
    return any(
        (n.code is not None and digest(n.code) not in untrusted) or _component_needs_keras(n)
        for n in nodes
    )


def _component_needs_keras(node: Node) -> bool:
    component = CATALOGUE.get(node.component)
    return component is not None and component.needs_keras


class _Inference:
    def __init__(self, doc: GraphDocument, prober: Prober | None, untrusted: frozenset[str]):
        self.doc = doc
        self.prober = prober
        self.untrusted = untrusted
        self.block_structures: dict[tuple[str, str], Structure] = {}  # by block and params
        self.known_paths: dict[str, bool] = {}  # for check_nodes, across the block's copies

    def run(
        self, structure: Structure, where: str, block_inputs: list[Shape] | None = None
    ) -> ShapeResult:
        infos: dict[str, LayerInfo] = {}
        problems: list[Problem] = []
        faulty = {p.node for p in structure.problems if p.level == "error"}
        for node_id in structure.order:
            node = structure.nodes[node_id]
            settings = structure.settings.get(node_id)
            sources = structure.inputs.get(node_id, [])
            if settings is None or node_id in faulty or any(s not in infos for s in sources):
                continue  # the node or an input already has an error
            shapes = [infos[s].shape for s in sources]
            try:
                infos[node_id] = self.node_info(node, settings, shapes, block_inputs)
            except ShapeError as err:
                untrusted = isinstance(err, UntrustedCode)
                problems.append(
                    Problem(
                        "warning" if untrusted else "error",
                        "untrusted" if untrusted else "shape",
                        f"{where}{node_ref(node.id, node.component)}: {err}",
                        node=node.id,
                    )
                )
        return ShapeResult(infos, problems)

    def node_info(
        self,
        node: Node,
        settings: dict[str, Any],
        shapes: list[Shape],
        block_inputs: list[Shape] | None,
    ) -> LayerInfo:
        if node.code is not None and digest(node.code) in self.untrusted:
            declared = settings.get("output_shape")
            if declared:
                return LayerInfo((None, *declared))
            raise UntrustedCode(
                "its code is not trusted in this workspace, so it has not run and its shape is "
                "unknown; read it, then trust the graph (`layerflow trust GRAPH` or Trust on the "
                "Model page), or declare its `output_shape`"
            )
        if node.code is not None or _component_needs_keras(node):
            if self.prober is None:
                raise ShapeError("its shape needs Keras, and no Keras shape probe is loaded")
            if node.code is not None:
                return self.prober.custom_info(node.code, shapes)
            return self.prober.layer_info(settings, shapes)
        if node.component == "BlockInput":
            slot = settings["slot"]
            if block_inputs is None or slot >= len(block_inputs):
                raise ShapeError(f"the block has no input number {slot}")
            return LayerInfo(block_inputs[slot])
        if node.component == "Block":
            return self.block_info(settings, shapes)
        return CATALOGUE[node.component].infer(settings, shapes)

    def block_info(self, settings: dict[str, Any], shapes: list[Shape]) -> LayerInfo:
        name = settings["block"]
        block = self.doc.blocks.get(name)
        if block is None:
            raise ShapeError(f"no block named {name!r}")
        if settings["repeat"] > 1 and len(shapes) != 1:
            raise ShapeError("only a block with one input can be repeated")
        block = specialized(block, settings.get("params"))
        total = LayerInfo(shapes[0])
        for rep in range(settings["repeat"]):
            info = self.expand(name, block, shapes, rep, params_key(settings.get("params")))
            total = LayerInfo(
                info.shape,
                total.trainable + info.trainable,
                total.non_trainable + info.non_trainable,
                total.flops + info.flops,
            )
            shapes = [info.shape]
        return total

    def expand(
        self, name: str, block: BlockDef, shapes: list[Shape], rep: int, params: str
    ) -> LayerInfo:
        """One repetition of `block` (as a Block node with the `params` of that key uses it)."""
        structure = self.block_structures.get((name, params))
        if structure is None:
            structure = check_nodes(block.nodes, block.edges, frozenset(CATALOGUE), "",
                                    known=self.known_paths)  # fmt: skip
            self.block_structures[(name, params)] = structure
        result = self.run(structure, where=f"block '{name}' ", block_inputs=shapes)
        if result.problems:
            raise ShapeError(f"repetition {rep + 1}: {result.problems[0].message}")
        if block.output not in result.infos:
            raise ShapeError(f"block {name!r} has no output")
        infos = result.infos.values()
        return LayerInfo(
            result.infos[block.output].shape,
            sum(i.trainable for i in infos),
            sum(i.non_trainable for i in infos),
            sum(i.flops for i in infos),
        )
