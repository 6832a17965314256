"""Generated Keras code: a readable module with `build_model() -> keras.Model`, and a snippet
per node for the code view.

Every component renders through its own Jinja template in `templates/components/`. Text from
the graph (labels, names, settings) can only reach the output through three filters: `py`
(a Python literal, via repr), `ident` (a checked identifier) and `comment` (one printable
line). The environment refuses any other string, so a template cannot leak raw user text into
code by mistake. Custom code is the one exception: it is the body of its own function.
"""

from __future__ import annotations

import keyword
import pprint
import re
import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from app.graph.analysis import Analysis, analyze
from app.graph.block_layers import block_layer_names, params_key, specialized
from app.graph.components import CATALOGUE
from app.graph.document import (
    BlockDef,
    GraphDocument,
    Node,
    check_nodes,
)
from app.graph.problems import GraphError
from app.graph.shapes import block_infos
from app.paths import inside, workspace_root

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED = {
    "keras",
    "layers",
    "ops",
    "build_model",
    "model",
    "inputs",
    "outputs",
    "prefix",
    "names",
    "range",
    "list",
    "dict",
    "input",
    "id",
    "type",
    "print",
    "len",
    "sum",
    "min",
    "max",
}


class Code(str):
    """Text that is safe to place in generated code as it is."""


class CodegenError(ValueError):
    pass


def py(value: Any) -> Code:
    """A Python literal for a JSON-like value: repr cannot break out of a literal."""
    if isinstance(value, dict) and len(repr(value)) > 80:
        return Code(pprint.pformat(value, indent=4, width=88, sort_dicts=False))
    return Code(repr(value))


def ident(value: Any) -> Code:
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value) or keyword.iskeyword(value):
        raise CodegenError(f"{value!r} is not a valid Python identifier")
    return Code(value)


def comment(value: Any) -> Code:
    text = "".join(c if c.isprintable() else " " for c in str(value))
    return Code(text.strip())


def docstring(value: Any) -> Code:
    """One printable line that cannot end the docstring it sits in."""
    return Code(comment(value).replace("\\", "\\\\").replace('"', '\\"'))


def _finalize(value: Any) -> Any:
    if isinstance(value, Code) or value is None:
        return value or ""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise CodegenError(
        f"template printed {value!r} without a py, ident, comment or docstring filter"
    )


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=False,  # the output is Python; safety comes from the filters and _finalize
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters.update(py=py, ident=ident, comment=comment, docstring=docstring)
    return env


def variable_name(text: str, taken: set[str]) -> str:
    """A readable, unique Python variable name derived from a label or id."""
    base = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "node"
    if base[0].isdigit():
        base = f"n_{base}"
    if keyword.iskeyword(base) or base in RESERVED:
        base = f"{base}_"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


@dataclass
class _Scope:
    """Variables of one function: build_model, or a block's function."""

    names: dict[str, str] = field(default_factory=dict)  # node id -> variable
    taken: set[str] = field(default_factory=lambda: set(RESERVED))
    in_block: bool = False
    named: bool = False  # a block's function whose layers take the `names` given (see Block)


class _Generator:
    def __init__(self, analysis: Analysis, weights_dir: str | None = None):
        self.analysis = analysis
        self.weights_dir = weights_dir
        self.doc = analysis.doc
        self.env = environment()
        self.block_functions: dict[tuple[str, str], str] = {}  # (block, params) -> function
        self.module_names: set[str] = set(RESERVED)
        # blocks whose functions take their layers' names: those a Block node names (an
        # imported model's), so that every use passes them
        self.named = {
            settings["block"]
            for node_id, settings in analysis.settings.items()
            if settings.get("names") and "block" in settings
        }

    def layer_name(self, node: Node, scope: _Scope) -> Code:
        if scope.named:
            return Code(f"names[{node.id!r}]")
        if scope.in_block:
            return Code(f"prefix + {'_' + node.id!r}")
        return py(node.id)

    def block_calls(self, node: Node, settings: dict[str, Any]) -> list[Code]:
        """A Block node's calls of its block's function, one per repetition: the names of the
        repetition's layers, or the prefix that names them."""
        name = settings["block"]
        if name not in self.named:
            prefixes = [f"{node.id}_{rep + 1}" for rep in range(settings["repeat"])]
            return [Code(f"prefix={py(prefix)}") for prefix in prefixes]
        names = block_layer_names(node.id, settings, self.doc.blocks[name])
        return [
            Code("names={\n" + "".join(f"    {py(k)}: {py(v)},\n" for k, v in each.items()) + "}")
            for each in names
        ]

    def statement(
        self,
        node: Node,
        settings: dict[str, Any],
        sources: list[str],
        scope: _Scope,
        input_shapes: list,
    ) -> str:
        out = scope.names[node.id]
        xs = [scope.names[s] for s in sources]
        context = {
            "node": node,
            "s": settings,
            "out": Code(out),
            "x": Code(xs[0]) if xs else None,
            "xs": Code(", ".join(xs)),
            "name": self.layer_name(node, scope),
            "input_shape": tuple(input_shapes[0][1:]) if input_shapes else None,
            "fn": Code(f"{out}_fn"),
            "node_inputs": len(xs),
            "weights": _weights_path(settings.get("weights_file"), self.weights_dir),
            "pooling": None if settings.get("pooling") == "none" else settings.get("pooling"),
        }
        if node.code is not None:
            context["code"] = Code(textwrap.indent(node.code.rstrip() + "\n", "    "))
            template = "custom.py.j2"
        elif node.component == "Block":
            fn = self.block_function(settings["block"], settings.get("params"), input_shapes)
            context["fn"] = Code(fn)
            context["calls"] = self.block_calls(node, settings)
            template = CATALOGUE["Block"].template
        else:
            template = CATALOGUE[node.component].template
        body = self.env.get_template(template).render(context).strip("\n")
        header = (
            f"# {comment(node.label)} ({node.component})" if node.label else (f"# {node.component}")
        )
        return header + "\n" + body

    def function_body(
        self, nodes: list[Node], order: list[str], settings, inputs, scope: _Scope, shapes
    ) -> list[str]:
        by_id = {n.id: n for n in nodes}
        for node_id in order:
            scope.names[node_id] = variable_name(by_id[node_id].label or node_id, scope.taken)
        return [
            self.statement(
                by_id[i],
                settings[i],
                inputs.get(i, []),
                scope,
                [shapes[s] for s in inputs.get(i, []) if s in shapes],
            )
            for i in order
        ]

    def block_function(self, name: str, params: dict | None, input_shapes: list) -> str:
        """The function of block `name` as Block nodes with `params` use it, written once for
        each set of params (their values are the code's literals), fed `input_shapes`."""
        key = (name, params_key(params))
        if key in self.block_functions:
            return self.block_functions[key]
        block: BlockDef = specialized(self.doc.blocks[name], params)
        fn = variable_name(f"{name}_block", self.module_names)
        self.block_functions[key] = fn
        structure = check_nodes(block.nodes, block.edges, frozenset(CATALOGUE), "")
        scope = _Scope(in_block=True, named=name in self.named)
        slots = sorted(
            (structure.settings[n.id]["slot"], n)
            for n in block.nodes
            if n.component == "BlockInput"
        )
        arguments = [variable_name(f"input_{slot}", scope.taken) for slot, _ in slots]
        for (_, node), argument in zip(slots, arguments, strict=True):
            scope.names[node.id] = argument
        order = [i for i in structure.order if i not in scope.names]
        shapes = {
            k: v.shape for k, v in block_infos(self.doc, name, input_shapes, params).infos.items()
        }
        body = self.function_body(
            block.nodes, order, structure.settings, structure.inputs, scope, shapes
        )
        self._blocks_rendered.append(
            Code(
                self.env.get_template("block.py.j2").render(
                    fn=Code(fn),
                    params=Code(", ".join([*arguments, "names" if scope.named else "prefix"])),
                    description=docstring(block.description),
                    name=py(name),
                    body=[Code(textwrap.indent(b, "    ")) for b in body],
                    output=Code(scope.names[block.output]),
                )
            )
        )
        return fn

    def module(self) -> str:
        self._blocks_rendered: list[str] = []
        scope = _Scope()
        scope.taken |= self.module_names
        structure = self.analysis.structure
        shapes = {k: v.shape for k, v in self.analysis.infos.items()}
        body = self.function_body(
            self.doc.nodes, structure.order, structure.settings, structure.inputs, scope, shapes
        )
        inputs = [n.id for n in self.doc.nodes if n.component == "Input"]
        outputs = [n.id for n in self.doc.nodes if n.component == "Output"]
        text = self.env.get_template("model.py.j2").render(
            meta=self.doc.meta,
            name=comment(self.doc.meta.name),
            description=[
                Code(wrapped)
                for line in self.doc.meta.description.splitlines()
                for wrapped in textwrap.wrap(comment(line), 96) or [""]
            ],
            blocks=self._blocks_rendered,
            body=[Code(textwrap.indent(b, "    ")) for b in body],
            inputs=_collection(inputs, scope),
            outputs=_collection(outputs, scope),
            model_name=py(_model_name(self.doc.meta.name)),
        )
        uses_layers = "layers." in text.split("def ", 1)[-1]
        if not uses_layers:
            text = text.replace("from keras import layers\n", "")
        return text


def _weights_path(relative: str | None, weights_dir: str | None = None) -> str | None:
    """Backbone weights live in the workspace; the generated code names the resolved file, or
    with weights_dir, weights_dir/<its path in the workspace>, relative to the current directory."""
    if not relative:
        return None
    if weights_dir is None:
        return str(inside(workspace_root(), relative))
    return f"{weights_dir}/{_normalized(relative)}"


def _normalized(relative: str) -> str:
    """A path in the workspace, checked and without `.` parts: weights/./a.h5 -> weights/a.h5."""
    root = workspace_root().resolve()
    return inside(root, relative).relative_to(root).as_posix()


def _collection(ids: list[str], scope: _Scope) -> Code:
    """One tensor, or a list in the graph's order: a list, since Keras orders a dict's tensors
    by key (the model's outputs would not be in the order the graph gives them)."""
    names = [scope.names[i] for i in ids]
    return Code(names[0] if len(names) == 1 else "[" + ", ".join(names) + "]")


def _model_name(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or "model"


def _require_ok(analysis: Analysis) -> None:
    if not analysis.ok:
        raise GraphError(analysis.errors, analysis.doc.meta.name)


def generate_module(
    doc_or_analysis: GraphDocument | Analysis,
    require_valid: bool = True,
    weights_dir: str | None = None,
) -> str:
    """The whole model as a Python module; raises GraphError if the graph has errors.

    With require_valid=False, shape errors are let through so Keras itself can be asked
    (tests use this to check that Keras refuses what the shape rules refuse). With weights_dir,
    Backbone weights are named weights_dir/<their path in the workspace>, relative to the current
    directory, as in an exported project (see weights_files), not by their path here."""
    analysis = _as_analysis(doc_or_analysis)
    blocking = [p for p in analysis.errors if require_valid or p.code != "shape"]
    if blocking:
        raise GraphError(blocking, analysis.doc.meta.name)
    return _Generator(analysis, weights_dir).module()


def weights_files(doc: GraphDocument) -> list[str]:
    """The weights files the graph's Backbones load (blocks included), by their path in the
    workspace (what generate_module's weights_dir expects under it)."""
    uses = [  # each block as its own, and as each Block node's params make it
        *doc.blocks.values(),
        *(specialized(doc.blocks[n.settings["block"]], n.settings.get("params"))
          for n in doc.nodes if n.component == "Block" and n.settings.get("block") in doc.blocks
          and isinstance(n.settings.get("params"), dict)),
    ]  # fmt: skip
    nodes = [*doc.nodes, *(node for block in uses for node in block.nodes)]
    files = {node.settings.get("weights_file") for node in nodes if node.component == "Backbone"}
    return sorted({_normalized(relative) for relative in files if relative})


def node_snippet(doc_or_analysis: GraphDocument | Analysis, node_id: str) -> str:
    """The code one node contributes, with the variable names the module uses."""
    analysis = _as_analysis(doc_or_analysis)
    _require_ok(analysis)
    generator = _Generator(analysis)
    generator._blocks_rendered = []
    scope = _Scope()
    structure = analysis.structure
    shapes = {k: v.shape for k, v in analysis.infos.items()}
    statements = generator.function_body(
        analysis.doc.nodes, structure.order, structure.settings, structure.inputs, scope, shapes
    )
    return statements[structure.order.index(node_id)] + "\n"


def _as_analysis(value: GraphDocument | Analysis) -> Analysis:
    return value if isinstance(value, Analysis) else analyze(value)
