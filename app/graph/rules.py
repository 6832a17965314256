"""Warnings and tips: one small rule per check, each tied to node ids, with a fix where one exists.

A rule is a function of the analysis context that yields Problems. Register it with @rule; the
analysis runs every registered rule once shapes are known.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.graph.components import LayerInfo
from app.graph.document import GraphDocument, Node, Structure
from app.graph.problems import Fix, Problem, node_ref


@dataclass(frozen=True)
class DataFacts:
    """What the data tells the rules, when data is attached: per target, the class count."""

    samples: int | None = None
    classes: dict[str, int] = field(default_factory=dict)  # target column -> number of classes


@dataclass
class RuleContext:
    doc: GraphDocument
    structure: Structure
    infos: dict[str, LayerInfo]
    data: DataFacts | None

    def nodes(self, *components: str) -> Iterator[tuple[Node, dict[str, Any]]]:
        for node in self.doc.nodes:
            # a node without inferred info has errors already; rules speak of sound nodes only
            if node.component in components and node.id in self.infos:
                yield node, self.structure.settings[node.id]

    def __post_init__(self) -> None:
        # Neighbours in document order, found once: a lookup per node would make rules
        # quadratic in the graph (seconds for a 10,000-branch fan-out).
        position = {n.id: i for i, n in enumerate(self.doc.nodes)}
        by_id = {n.id: n for n in self.doc.nodes}
        targets: dict[str, set[str]] = {}
        for edge in self.doc.edges:
            targets.setdefault(edge.source, set()).add(edge.target)
        self._successors = {
            source: [by_id[t] for t in sorted(ids & by_id.keys(), key=position.__getitem__)]
            for source, ids in targets.items()
        }
        self._position, self._by_id = position, by_id

    def successors(self, node_id: str) -> list[Node]:
        return self._successors.get(node_id, [])

    def sources(self, node_id: str) -> list[Node]:
        ids = set(self.structure.inputs.get(node_id, [])) & self._by_id.keys()
        return [self._by_id[i] for i in sorted(ids, key=self._position.__getitem__)]


Rule = Callable[[RuleContext], Iterator[Problem]]
RULES: list[Rule] = []


def rule(function: Rule) -> Rule:
    RULES.append(function)
    return function


def run_rules(ctx: RuleContext) -> list[Problem]:
    return [problem for check in RULES for problem in check(ctx)]


def _warn(code: str, node: Node, text: str, fix: Fix | None = None, level="warning") -> Problem:
    return Problem(
        level, code, f"{node_ref(node.id, node.component)}: {text}", node=node.id, fix=fix
    )


@rule
def dense_on_feature_maps(ctx: RuleContext) -> Iterator[Problem]:
    for node, _ in ctx.nodes("Dense"):
        sources = ctx.structure.inputs.get(node.id, [])
        shape = ctx.infos[sources[0]].shape if sources and sources[0] in ctx.infos else None
        if shape is not None and len(shape) == 4:
            yield _warn(
                "dense_rank4",
                node,
                f"Dense on a rank-4 tensor {shape} acts on each pixel separately; "
                "flatten or pool first",
                Fix(
                    "Insert GlobalAveragePooling2D before it",
                    node.id,
                    insert="GlobalAveragePooling2D",
                ),
            )


def output_activation(ctx: RuleContext, node: Node, s: dict[str, Any]) -> str | None:
    """The activation that produces the Output's values. An Output without a head passes its
    input through, so that input's own activation counts; None when it cannot be told."""
    if s["units"] is not None or s["activation"] != "linear":
        return s["activation"]
    sources = ctx.sources(node.id)
    settings = ctx.structure.settings.get(sources[0].id, {}) if sources else {}
    return settings.get("activation")


def output_width(ctx: RuleContext, node: Node) -> int | None:
    return ctx.infos[node.id].shape[-1]


@rule
def softmax_with_binary_loss(ctx: RuleContext) -> Iterator[Problem]:
    for node, s in ctx.nodes("Output"):
        if output_activation(ctx, node, s) == "softmax" and s["loss"] == "binary_crossentropy":
            yield _warn(
                "softmax_binary",
                node,
                "softmax output with binary_crossentropy: use sigmoid for binary targets",
                Fix("Use a sigmoid with 1 unit", node.id, {"activation": "sigmoid", "units": 1}),
            )


@rule
def crossentropy_needs_probabilities(ctx: RuleContext) -> Iterator[Problem]:
    for node, s in ctx.nodes("Output"):
        activation = output_activation(ctx, node, s)
        if "crossentropy" in s["loss"] and activation not in ("softmax", "sigmoid", None):
            wanted = "sigmoid" if s["loss"] == "binary_crossentropy" else "softmax"
            yield _warn(
                "logits_loss",
                node,
                f"{s['loss']} expects probabilities but the activation is {activation!r}",
                Fix(f"Use {wanted}", node.id, {"activation": wanted}),
            )


@rule
def output_units_match_classes(ctx: RuleContext) -> Iterator[Problem]:
    for node, s in ctx.nodes("Output"):
        width = output_width(ctx, node)
        classes = ctx.data.classes.get(s["target"]) if ctx.data else None
        if s["loss"] in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
            if classes is not None and width != classes:
                yield _warn(
                    "units_vs_classes",
                    node,
                    f"{width} outputs but the target {s['target']!r} has {classes} classes",
                    Fix(f"Use {classes} units", node.id, {"units": classes}),
                    level="error",
                )
            elif width == 1:
                yield _warn(
                    "one_class", node, f"{s['loss']} with 1 output can only predict one class"
                )
        elif s["loss"] == "binary_crossentropy" and width != 1 and classes == 2:
            yield _warn(
                "units_vs_classes",
                node,
                f"binary target {s['target']!r} needs 1 output",
                Fix("Use 1 unit", node.id, {"units": 1}),
            )


@rule
def heavy_dropout(ctx: RuleContext) -> Iterator[Problem]:
    for node, s in ctx.nodes("Dropout", "SpatialDropout2D"):
        if s["rate"] >= 0.5:
            yield _warn(
                "heavy_dropout",
                node,
                f"dropout rate {s['rate']} drops half the signal or more and slows learning",
                Fix("Use a rate of 0.3", node.id, {"rate": 0.3}),
            )


@rule
def random_frozen_backbone(ctx: RuleContext) -> Iterator[Problem]:
    for node, s in ctx.nodes("Backbone"):
        if not s["weights_file"] and not s["trainable"]:
            yield _warn(
                "random_backbone",
                node,
                f"frozen with no weights_file, {s['architecture']} computes random features "
                "that the layers after it learn little from; point weights_file at local "
                "ImageNet weights (nothing is downloaded)",
            )


@rule
def stacked_linear_dense(ctx: RuleContext) -> Iterator[Problem]:
    for node, s in ctx.nodes("Dense"):
        if s["activation"] != "linear":
            continue
        for succ in ctx.successors(node.id):
            adds_a_linear_map = succ.component == "Dense" or (
                succ.component == "Output" and ctx.structure.settings[succ.id]["units"] is not None
            )
            if adds_a_linear_map:
                yield _warn(
                    "linear_stack",
                    node,
                    f"Dense without activation feeds '{succ.id}': two linear maps in a "
                    "row are one linear map",
                    Fix("Use relu", node.id, {"activation": "relu"}),
                )
                break


@rule
def params_beyond_data(ctx: RuleContext) -> Iterator[Problem]:
    if not ctx.data or not ctx.data.samples:
        return
    total = sum(i.params for i in ctx.infos.values())
    if total > 1000 * ctx.data.samples:
        inputs = [n for n, _ in ctx.nodes("Input")]
        if inputs:
            yield _warn(
                "too_many_params",
                inputs[0],
                f"{total:,} parameters for {ctx.data.samples:,} samples: expect "
                "overfitting; shrink the model or add regularization",
            )


BYTES_PER_VALUE = 4  # float32
TRAINING_COPIES = 4  # a weight, its gradient and two optimizer slots (Adam)


def machine_memory() -> int:
    import psutil

    return psutil.virtual_memory().total


@rule
def beyond_memory(ctx: RuleContext) -> Iterator[Problem]:
    """An Input shape that is a typo (1e9 x 1e9) validates; it must not do so silently."""
    inputs = [n for n, _ in ctx.nodes("Input")]
    if not inputs:
        return
    activations = sum(math.prod(d or 1 for d in i.shape) for i in ctx.infos.values())
    params = sum(i.params for i in ctx.infos.values())
    needed = BYTES_PER_VALUE * (activations + TRAINING_COPIES * params)
    memory = machine_memory()
    if needed > memory:
        yield _warn(
            "beyond_memory",
            inputs[0],
            f"training needs about {needed / 2**30:,.1f} GiB for one sample "
            f"({activations:,} activation values, {params:,} parameters), more than this "
            f"machine's {memory / 2**30:,.1f} GiB of memory; check the Input shape",
        )


NORMALIZERS = {
    "Rescaling",
    "Normalization",
    "BatchNormalization",
    "LayerNormalization",
    "Embedding",
    "Backbone",
}
PASS_THROUGH = {
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "Resizing",
    "Reshape",
    "Permute",
    "Flatten",
    "Dropout",
    "LastStep",
    "Subtract",  # a window's change from its last value is normalized after it
}


@rule
def input_not_normalized(ctx: RuleContext) -> Iterator[Problem]:
    for node, s in ctx.nodes("Input"):
        if s["dtype"] != "float32":
            continue
        frontier, seen = ctx.successors(node.id), set()
        normalized = False
        while frontier:
            succ = frontier.pop()
            if succ.id in seen:
                continue
            seen.add(succ.id)
            if succ.component in NORMALIZERS:
                normalized = True
            elif succ.component in PASS_THROUGH:
                frontier.extend(ctx.successors(succ.id))
        if not normalized:
            image = len(s["shape"]) == 3
            component = "Rescaling" if image else "Normalization"
            yield _warn(
                "no_normalization",
                node,
                "inputs reach the model unnormalized; "
                + ("scale pixels to [0, 1]" if image else "standardize the features"),
                Fix(
                    f"Insert {component} after the input", node.id, insert=component, where="after"
                ),
                level="tip",
            )
