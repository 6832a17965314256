"""Everything derived from a graph document at once: structure, shapes, costs and problems."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from app.graph.components import CATALOGUE, LayerInfo
from app.graph.document import GraphDocument, Meta, Structure, check, check_block, check_nodes
from app.graph.problems import Problem
from app.graph.rules import DataFacts, RuleContext, run_rules
from app.graph.shapes import block_infos, infer
from app.graph.space import space_problems


@dataclass
class Analysis:
    doc: GraphDocument
    structure: Structure
    infos: dict[str, LayerInfo]
    problems: list[Problem]
    checked: list[Problem] = field(default_factory=list)  # the problems before the rules'

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def settings(self) -> dict[str, dict[str, Any]]:
        return self.structure.settings

    def totals(self) -> dict[str, int]:
        infos = self.infos.values()
        return {
            "trainable": sum(i.trainable for i in infos),
            "non_trainable": sum(i.non_trainable for i in infos),
            "params": sum(i.params for i in infos),
            "flops": sum(i.flops for i in infos),
        }

    def inside(self, name: str) -> Analysis:
        """Block `name`'s inside as a graph of its own, for the canvas and the code: its nodes'
        shapes and costs as its first use feeds it (none while no Block node uses it, or while
        that use's inputs have no shape), and the block's own problems. Its own settings: a Block
        node's params aside, as the settings shown beside it are."""
        block = self.doc.blocks[name]
        view = GraphDocument(meta=Meta(name=name), nodes=block.nodes, edges=block.edges)
        structure = check_nodes(block.nodes, block.edges, frozenset(CATALOGUE), "")
        problems = check_block(name, block)
        infos: dict[str, LayerInfo] = {}
        use = next((n.id for n in self.doc.nodes if n.component == "Block"
                    and self.settings.get(n.id, {}).get("block") == name), None)  # fmt: skip
        sources = self.structure.inputs.get(use, []) if use else []
        if use and all(s in self.infos for s in sources):
            found = block_infos(self.doc, name, [self.infos[s].shape for s in sources])
            infos, problems = found.infos, problems + found.problems
        return Analysis(view, structure, infos, problems)

    def rows(self) -> list[dict[str, Any]]:
        """One row per node, in document order, for tables and JSON."""
        rows = []
        for node in self.doc.nodes:
            info = self.infos.get(node.id)
            rows.append(
                {
                    "id": node.id,
                    "label": node.label or "",
                    "component": node.component,
                    "output_shape": list(info.shape) if info else None,
                    "params": info.params if info else None,
                    "trainable": info.trainable if info else None,
                    "non_trainable": info.non_trainable if info else None,
                    "flops": info.flops if info else None,
                }
            )
        return rows


def analyze(doc: GraphDocument, data: DataFacts | None = None) -> Analysis:
    structure = check(doc)
    checked = list(structure.problems)
    infos: dict[str, LayerInfo] = {}
    if structure.order:
        shapes = infer(doc, structure)
        infos = shapes.infos
        checked += shapes.problems
    return with_data(Analysis(doc, structure, infos, [], checked), data)


def with_data(analysis: Analysis, data: DataFacts | None) -> Analysis:
    """`analyze(analysis.doc, data)`, with `analysis`'s checks and shapes (of an `analyze`
    result): the rules are all that the data changes, and they take a millisecond where the
    rest takes 20 (the folded NASNetMobile)."""
    doc, structure, infos = analysis.doc, analysis.structure, analysis.infos
    problems = list(analysis.checked)
    if structure.order:
        problems += run_rules(RuleContext(doc, structure, infos, data))
    # A search space's problems stop a search, not the graph's own model: warnings here.
    problems += [replace(p, level="warning") for p in space_problems(doc)]
    return Analysis(doc, structure, infos, problems, analysis.checked)
