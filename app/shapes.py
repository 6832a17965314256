"""Output shape, parameters and FLOPs of every node, in pure Python.

Each component's rule does the work; this module walks the graph in order, expands blocks
and reports a node whose inputs do not fit as an error on that node. Only the generic Keras
layer and custom code need Keras itself: such a graph is inferred in a child process
(app.probe), so a process that has not imported TensorFlow never does.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from app.components import CATALOGUE, LayerInfo, Shape, ShapeError
from app.graph import BlockDef, GraphDocument, Node, Structure, check_nodes
from app.problems import Problem, node_ref


@dataclass
class ShapeResult:
    infos: dict[str, LayerInfo]
    problems: list[Problem]


def infer(doc: GraphDocument, structure: Structure) -> ShapeResult:
    if needs_keras(doc) and "keras" not in sys.modules:
        from app import probe

        return probe.infer_in_child(doc)
    return _Inference(doc).run(structure, where="")


def needs_keras(doc: GraphDocument) -> bool:
    nodes = [*doc.nodes, *(n for b in doc.blocks.values() for n in b.nodes)]
    return any(n.code is not None or _component_needs_keras(n) for n in nodes)


def _component_needs_keras(node: Node) -> bool:
    component = CATALOGUE.get(node.component)
    return component is not None and component.needs_keras


class _Inference:
    def __init__(self, doc: GraphDocument):
        self.doc = doc
        self.block_structures: dict[str, Structure] = {}

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
                problems.append(
                    Problem(
                        "error",
                        "shape",
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
        if node.code is not None:
            from app import probe

            return probe.custom_info(node.code, shapes)
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
        total = LayerInfo(shapes[0])
        for rep in range(settings["repeat"]):
            info = self.expand(name, block, shapes, rep)
            total = LayerInfo(
                info.shape,
                total.trainable + info.trainable,
                total.non_trainable + info.non_trainable,
                total.flops + info.flops,
            )
            shapes = [info.shape]
        return total

    def expand(self, name: str, block: BlockDef, shapes: list[Shape], rep: int) -> LayerInfo:
        structure = self.block_structures.get(name)
        if structure is None:
            structure = check_nodes(block.nodes, block.edges, frozenset(CATALOGUE), "")
            self.block_structures[name] = structure
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
