"""Keras models as graph documents: from a .keras, .h5 or JSON file, or a keras.Model.

Every Keras layer becomes one node named after it, every model input an Input node and every
model output an Output node that adds nothing (no Dense head, a linear activation), so the
imported graph builds the same model. Models used as layers are flattened into the outer
graph; operations written in functional code (`x + 3.0`, `keras.ops.mean(x, axis=1)`) become
Custom nodes calling the same keras.ops function. Inputs and outputs keep the model's order.
Only the architecture is imported: weights stay in the file.

A layer becomes a first-class component when that is exact, decided the same way for every
component: its settings are read from the layer's config by name, the component's own
template builds a layer from them, and that layer's config must equal the original one
(name and trainable aside); the component's shape rule must also agree with Keras on the
layer's output shape and parameter counts. Any other layer that Keras itself serializes and
deserializes again (keras.layers, keras.applications' LayerScale, keras_hub) keeps its
serialized module, class, registered name and whole config in a generic KerasLayer node; a
class of the user's own, which no other process can rebuild, is refused naming the layer.
Importing this module does not import TensorFlow; importing a model does.
"""

from __future__ import annotations

import ast
import itertools
import json
import logging
import math
import os
import re
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import one_line
from app.files import check_archive
from app.graph.components import CATALOGUE, Component, ShapeError
from app.graph.components.core import DTYPES
from app.graph.document import GraphDocument, parse
from app.graph.fold import fold_motifs
from app.graph.layout import layered_layout
from app.keras import probe
from app.workspace import Workspace

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

SUFFIXES = (".keras", ".h5", ".hdf5", ".json")
IGNORED_CONFIG = ("name", "trainable")  # not part of what a layer computes
MAX_INPUTS = 64  # edge slots are 0..63
PROBE_ID = "probe"
KERAS_PACKAGES = ("keras", "keras_hub", "keras_cv", "keras_nlp")  # what Keras imports to rebuild
NOT_REBUILT = ("a class of your own that Keras cannot rebuild from its config in another "
               "process; rewrite it with keras.layers and keras.ops (or as a Custom node) "
               "and import the model again")  # fmt: skip

COMPONENTS_BY_CLASS: dict[str, list[Component]] = defaultdict(list)
for _component in CATALOGUE.values():
    if _component.keras_class and _component.keras_class != "InputLayer":
        COMPONENTS_BY_CLASS[_component.keras_class].append(_component)


def import_keras(source: str | os.PathLike | keras.Model, flat: bool = False) -> GraphDocument:
    """The graph document of a Keras model, laid out for the canvas, its repeated motifs
    folded into blocks (app.graph.fold).

    Args:
        source: a path to a `.keras`, `.h5` (`.hdf5`) or `model.to_json()` file, or a built
            keras.Model (functional or Sequential, possibly with models nested as layers).
        flat: one node per layer, no blocks.

    Raises:
        ValueError: the file is missing, unreadable or of another type; or the model uses
            something a graph cannot hold (a layer called more than once, a layer with
            several outputs, tensors passed as keyword arguments, a layer class Keras cannot
            rebuild from its config, an operation outside keras.ops, an unsupported input).
    """
    if isinstance(source, str | os.PathLike):
        model, origin = read_keras_model(source), str(source)
    else:
        model, origin = source, "a keras.Model"
    doc = _Importer().run(model, origin)
    # The Custom nodes an import makes are LayerFlow's own code (keras.ops calls with literal
    # arguments), written here for the user's model: trusted like code written in the app, and
    # before folding, whose check needs their shapes.
    Workspace.current().trust(n.code for n in doc.nodes if n.code is not None)
    return layered_layout(doc if flat else fold_motifs(doc))


def import_keras_file(path: str | os.PathLike, flat: bool = False) -> GraphDocument:
    """`import_keras` for a path."""
    return import_keras(Path(path), flat)


def read_keras_model(path: str | os.PathLike) -> keras.Model:
    """Load the model of a .keras, .h5 or JSON file, uncompiled; ValueError naming the file."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix not in SUFFIXES:
        kind = "a directory" if path.is_dir() else f"a {suffix or 'suffix-less'} file"
        raise ValueError(f"{path}: cannot import {kind}; expected a Keras model in a "
                         f"{', '.join(SUFFIXES[:-1])} or {SUFFIXES[-1]} file")  # fmt: skip
    if suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a .keras file (those are zip archives)")
    if suffix == ".keras":
        check_archive(path)  # a config that unpacks to gigabytes is refused before Keras reads it
    keras = _keras()
    try:
        if suffix == ".json":
            model = keras.models.model_from_json(_read_json_text(path))
        else:
            model = keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras, h5py and the OS raise many kinds; name the file
        reason = _unknown_class(err) or one_line(err, plain=Exception)
        raise ValueError(f"{path}: cannot read a Keras model from it: {reason}") from None
    if not isinstance(model, keras.Model):  # model_from_json returns other JSON as it is
        raise ValueError(f"{path}: cannot read a Keras model from it: it holds a "
                         f"{type(model).__name__}, not a model config")  # fmt: skip
    return model


def _unknown_class(err: Exception) -> str:
    """For Keras' "Could not locate class" error: the layer and class it names, and what to do;
    empty for any other error."""
    text = str(err)
    found = re.search(r"Could not locate class '([^']+)'", text)
    if found is None:
        return ""
    try:  # Keras ends the message with the layer's whole config, as a Python literal
        name = ast.literal_eval(text.split("Full object config: ", 1)[1])["config"]["name"]
    except (IndexError, KeyError, TypeError, ValueError, SyntaxError):
        name = "?"
    return f"layer '{name}' is a {found[1]}, {NOT_REBUILT}"


def _read_json_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON at line {err.lineno}, column {err.colno}") from None
    return text


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


def id_for(name: str) -> str:
    """The node id a Keras layer name becomes on import (the name itself when it fits the id
    pattern), before a suffix that keeps it apart from an id taken already."""
    base = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
    if not re.match(r"[A-Za-z_]", base):
        base = "_" + base
    return base[:100]


class _Importer:
    """One import: the nodes and edges found so far, and the layers already seen."""

    def __init__(self):
        self.keras = _keras()
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        self.taken: set[str] = set()
        self.seen: set[int] = set()  # id() of every layer placed, to refuse shared layers
        self.matcher = _Matcher()

    def run(self, model: keras.Model, origin: str) -> GraphDocument:
        if not isinstance(model, self.keras.Model):
            raise ValueError(f"Expected a keras.Model or a path, received {type(model).__name__}")
        graph = self.graph_of(model)
        outputs = self.walk(model, sources=None)
        for tensor, producer in zip(graph.outputs, outputs, strict=True):
            target = tensor._keras_history.operation.name
            node_id = self.new_id(f"{target}_output")
            self.nodes.append({"id": node_id, "component": "Output", "settings": {
                "target": target, "loss": "mean_squared_error", "units": None,
                "activation": "linear"}})  # fmt: skip
            self.edges.append({"source": producer, "target": node_id, "slot": 0})
        meta = {"name": model.name[:200],
                "description": f"Imported from {origin}: the architecture only, without "
                               "weights."}  # fmt: skip
        return parse({"meta": meta, "nodes": self.nodes, "edges": self.edges}, origin)

    def graph_of(self, model: keras.Model):
        """The functional graph of a model: its own, or the one a Sequential model keeps."""
        graph = model._functional if isinstance(model, self.keras.Sequential) else model
        if graph is None:
            raise ValueError(f"Model '{model.name}' is not built: give it a keras.Input (or "
                             "call build) before importing it")  # fmt: skip
        if not hasattr(graph, "_nodes_by_depth"):
            raise ValueError(f"Model '{model.name}' is a subclassed {type(model).__name__} "
                             "with no layer graph to read; only functional and Sequential "
                             "models can be imported")  # fmt: skip
        return graph

    def walk(self, model: keras.Model, sources: list[str] | None) -> list[str]:
        """Add the nodes of a model's graph; returns the node producing each of its outputs.

        sources: for a nested model, the nodes feeding its inputs; None for the outer model,
        whose inputs become Input nodes.
        """
        graph = self.graph_of(model)
        produced: dict[int, str] = {}  # id() of a KerasTensor -> node id
        if sources is not None:
            if len(sources) != len(graph.inputs):
                raise ValueError(f"Model '{model.name}' takes {len(graph.inputs)} input(s) but "
                                 f"is called on {len(sources)} tensor(s)")  # fmt: skip
            produced.update((id(t), s) for t, s in zip(graph.inputs, sources, strict=True))
        else:  # the outer model's inputs, in its order
            produced.update((id(t), self.add_input(t._keras_history.operation, t))
                            for t in graph.inputs)  # fmt: skip
        calls = self.calls_in_order(graph)
        for call in calls:
            layer = call.operation
            if call.is_input:
                continue
            self.claim(layer)
            inputs = [produced[id(t)] for t in calls[call]]
            if isinstance(layer, self.keras.Model):
                outputs = self.walk(layer, inputs)
                produced.update((id(t), o) for t, o in zip(call.outputs, outputs, strict=True))
                continue
            if len(call.outputs) != 1:
                raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) returns "
                                 f"{len(call.outputs)} tensors; a node has one output")  # fmt: skip
            if len(inputs) > MAX_INPUTS:
                raise ValueError(f"Layer '{layer.name}' takes {len(inputs)} inputs; a node "
                                 f"takes at most {MAX_INPUTS}")  # fmt: skip
            if isinstance(layer, self.keras.layers.Layer):
                positional = sum(isinstance(a, self.keras.KerasTensor) for a in call.arguments.args)
                node_id = self.add_layer(
                    layer, calls[call], call.outputs[0], inputs, positional > 1
                )
            else:  # an operation such as `x + 3.0` or keras.ops.mean(x) in functional code
                node_id = self.add_operation(layer, call, calls[call], inputs)
            produced[id(call.outputs[0])] = node_id
        return [produced[id(t)] for t in graph.outputs]

    def calls_in_order(self, graph) -> dict[Any, list]:
        """The layer calls the outputs depend on, sources first, each with its input tensors.

        Masks are left out: Keras computes them again when the graph is built (a layer such as
        Embedding(mask_zero=True) passes its mask on), and so are the operations that only
        compute them.
        """
        by_depth = graph._nodes_by_depth  # depth 0 holds the outputs; a call's inputs are deeper
        wanted = {id(t) for t in graph.outputs}
        needed: dict[Any, list] = {}
        for depth in sorted(by_depth):
            for call in by_depth[depth]:
                if call.is_input or any(id(t) in wanted for t in call.outputs):
                    tensors = self.data_inputs(call)
                    needed[call] = tensors
                    wanted.update(id(t) for t in tensors)
        return dict(reversed(needed.items()))

    def data_inputs(self, call) -> list:
        """The tensors a call passes positionally; refuses other tensor keyword arguments."""
        flatten, tensor_type = self.keras.tree.flatten, self.keras.KerasTensor
        tensors = [t for t in flatten(call.arguments.args) if isinstance(t, tensor_type)]
        keywords = {key: [t for t in flatten(value) if isinstance(t, tensor_type)]
                    for key, value in call.arguments.kwargs.items()}  # fmt: skip
        implied = {id(getattr(t, "_keras_mask", None)) for t in tensors}
        keywords["mask"] = [t for t in keywords.get("mask", []) if id(t) not in implied]
        extra = [key for key, value in keywords.items() if value]
        if extra:
            raise ValueError(
                f"Layer '{call.operation.name}' is called with tensors as keyword arguments ("
                + ", ".join(f"`{key}`" for key in extra) + "); the inputs of a node are "
                "positional only")  # fmt: skip
        return tensors

    def claim(self, layer) -> None:
        if id(layer) in self.seen:
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) is called more than once: shared "
                "layers are not supported, since a LayerFlow node is one call of one layer"
            )
        self.seen.add(id(layer))

    def new_id(self, name: str) -> str:
        """A node id for a Keras name: the name itself when it fits the id pattern."""
        base = id_for(name)
        node_id, n = base, 2
        while node_id in self.taken:
            suffix = f"_{n}"
            node_id, n = base[: 100 - len(suffix)] + suffix, n + 1
        self.taken.add(node_id)
        return node_id

    def add_node(self, name: str, component: str, settings: dict[str, Any],
                 sources: Sequence[str] = (), code: str | None = None) -> str:  # fmt: skip
        """Add a node named after a Keras name, fed by sources in slot order."""
        node_id = self.new_id(name)
        node = {"id": node_id, "component": component, "settings": settings, "code": code}
        if node_id != name:
            node["label"] = name[:200]  # keep the Keras name in view
        self.nodes.append(node)
        self.edges += [{"source": s, "target": node_id, "slot": slot}
                       for slot, s in enumerate(sources)]  # fmt: skip
        return node_id

    def add_input(self, layer, tensor) -> str:
        shape = list(tensor.shape[1:])
        if tensor.dtype not in DTYPES:
            raise ValueError(f"Input '{layer.name}' has dtype {tensor.dtype}; Input nodes take "
                             + ", ".join(DTYPES))  # fmt: skip
        if not shape:
            raise ValueError(f"Input '{layer.name}' takes one number per sample (shape "
                             f"{tuple(tensor.shape)}); Input nodes need at least one axis "
                             "besides the batch")  # fmt: skip
        self.claim(layer)
        return self.add_node(layer.name, "Input", {"shape": shape, "dtype": tensor.dtype})

    def add_layer(
        self, layer, tensors: list, output, inputs: list[str], positional: bool = False
    ) -> str:
        """Add the node of one layer call: tensors in, output out, fed by the nodes inputs.
        positional: the layer took its tensors as separate arguments, as attention does."""
        class_name = type(layer).__name__
        try:
            config = _plain(layer.get_config())
        except (TypeError, ValueError, NotImplementedError) as err:
            raise ValueError(f"Layer '{layer.name}' ({class_name}): cannot read its config: "
                             f"{one_line(err, plain=Exception)}") from None  # fmt: skip
        found = None
        if getattr(self.keras.layers, class_name, None) is type(layer):
            found = self.matcher.match(layer, tensors, output, config)
        if found is not None:
            return self.add_node(layer.name, *found, inputs)
        settings = self.generic_settings(layer, config)
        if positional:
            settings["call"] = "positional"
        return self.add_node(layer.name, "KerasLayer", settings, inputs)

    def generic_settings(self, layer, config: dict[str, Any]) -> dict[str, Any]:
        """A KerasLayer's settings: the layer as Keras serializes it, once Keras is seen to
        rebuild the same class from that alone, as another process will have to."""
        serialized = self.keras.saving.serialize_keras_object(layer)
        module = serialized["module"] or ""
        where = f"Layer '{layer.name}' is a {type(layer).__module__}.{type(layer).__name__}"
        if module.split(".")[0] not in KERAS_PACKAGES:
            raise ValueError(f"{where}, {NOT_REBUILT}")
        try:
            rebuilt = self.keras.saving.deserialize_keras_object(serialized, safe_mode=True)
        except Exception as err:  # Keras raises many kinds (a Lambda's code is refused)
            raise ValueError(f"{where}, which Keras does not rebuild from its config (rewrite "
                             f"it as a Custom node): {one_line(err, plain=Exception)}"
                             ) from None  # fmt: skip
        if type(rebuilt) is not type(layer):
            raise ValueError(f"{where}, {NOT_REBUILT}")
        config = {key: value for key, value in config.items() if key != "name"}
        settings = {"class_name": serialized["class_name"], "config": config}
        if module != "keras.layers":
            settings |= {"module": module, "registered_name": serialized["registered_name"]}
        return settings

    def add_operation(self, operation, call, tensors: list, inputs: list[str]) -> str:
        """Add a Custom node whose code calls the keras.ops function of an operation."""
        class_name = type(operation).__name__
        function = _snake_case(class_name)
        where = f"Operation '{operation.name}' ({type(operation).__module__}.{class_name})"
        if not callable(getattr(self.keras.ops, function, None)):
            raise ValueError(f"{where} is neither a keras.layers layer nor a keras.ops "
                             "operation; rewrite it as a Custom node")  # fmt: skip
        code = _operation_code(operation, call, function, where)
        shapes = [tuple(t.shape) for t in tensors]
        try:
            shape = probe.custom_info(code, shapes).shape
        except ShapeError as err:
            raise ValueError(f"{where} cannot be rebuilt as keras.ops.{function}: {err}") from None
        if tuple(shape) != tuple(call.outputs[0].shape):
            raise ValueError(f"{where} rebuilt as keras.ops.{function} gives shape {shape}, not "
                             f"{tuple(call.outputs[0].shape)}")  # fmt: skip
        return self.add_node(operation.name, "Custom", {}, inputs, code)


def _operation_code(operation, call, function: str, where: str) -> str:
    """`return keras.ops.<function>(...)`: the call's arguments, with its tensors read from
    `inputs` in order, and the operation's constructor arguments as keywords."""
    import keras

    count = itertools.count()

    def literal(value: Any) -> str:
        if isinstance(value, keras.KerasTensor):
            return f"inputs[{next(count)}]"
        if isinstance(value, list):
            return "[" + ", ".join(literal(v) for v in value) + "]"
        if isinstance(value, tuple):
            items = [literal(v) for v in value]
            return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
        if isinstance(value, dict):  # flattened by sorted key, as keras.tree does
            return "{" + ", ".join(f"{k!r}: {literal(value[k])}" for k in sorted(value)) + "}"
        if isinstance(value, slice):  # x[:, 0] is get_item(x, (slice(None, None, None), 0))
            return f"slice({literal(value.start)}, {literal(value.stop)}, {literal(value.step)})"
        if value is None or value is Ellipsis or isinstance(value, bool | int | float | str):
            return repr(value)
        raise ValueError(f"{where}: cannot write its argument {value!r} as Python")

    parts = [literal(arg) for arg in call.arguments.args]
    parts += [f"{key}={literal(value)}" for key, value in call.arguments.kwargs.items()]
    try:
        config = operation.get_config()
    except NotImplementedError:
        raise ValueError(f"{where} does not say how it was constructed (no config)") from None
    parts += [f"{key}={literal(value)}" for key, value in config.items() if key != "name"]
    return f"return keras.ops.{function}({', '.join(parts)})\n"


class _Matcher:
    """Finds, layer by layer, the first-class component that rebuilds a keras.layers layer
    exactly."""

    def __init__(self):
        self.rendered: dict[str, dict[str, Any] | None] = {}  # component + settings -> config

    def match(self, layer, tensors: list, output,
              config: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:  # fmt: skip
        """The first component that rebuilds the layer exactly, and its settings; None if none
        does."""
        rank = len(tensors[0].shape) if tensors else 0
        for component in COMPONENTS_BY_CLASS.get(type(layer).__name__, ()):
            low, high = component.inputs
            if not low <= len(tensors) <= (high or MAX_INPUTS):
                continue  # e.g. MultiHeadAttention called with a separate key
            resolved = _settings_for(component, config)
            if resolved is None:
                continue
            settings = _plain(resolved)
            rendered = self.rendered_config(component, settings, tensors)
            if rendered is None or _comparable(rendered, rank) != _comparable(config, rank):
                continue
            disagreement = _rule_disagreement(component, resolved, layer, tensors, output)
            if disagreement:
                # The settings are exact, so the component's shape rule is wrong: say so, and
                # keep the layer generic so the imported graph stays faithful.
                log.warning("%s '%s': the %s shape rule disagrees with Keras (%s); imported as "
                            "KerasLayer", type(layer).__name__, layer.name, component.name,
                            disagreement)  # fmt: skip
                continue
            return component.name, settings
        return None

    def rendered_config(self, component: Component, settings: dict[str, Any], tensors: list):
        """The config of the layer the component's template builds from settings, or None if
        Keras refuses them. A layer's config does not depend on its input shapes, so it is
        cached by component and settings."""
        key = component.name + json.dumps(settings, sort_keys=True)
        if key not in self.rendered:
            self.rendered[key] = _render(component, settings, tensors)
        return self.rendered[key]


def _settings_for(component: Component, config: dict[str, Any]) -> dict[str, Any] | None:
    """The component's settings named in the config, checked; None if a value does not fit.

    A wrapper's config holds the wrapped layer serialized (Bidirectional's `layer`): that
    setting takes the layer's class name, and the layer's own config fills the settings the
    wrapper's config lacks (`units`). The config comparison afterwards decides if it fits.
    """
    values = dict(config)
    for key, value in config.items():
        if _is_serialized_layer(value):
            values[key] = value["class_name"]
            for inner_key, inner_value in value["config"].items():
                values.setdefault(inner_key, inner_value)
    raw = {spec.name: _setting_value(spec.kind, spec.name, values[spec.name])
           for spec in component.settings if spec.name in values}  # fmt: skip
    resolved, errors = component.resolve(raw)
    return None if errors else resolved


def _setting_value(kind: str, name: str, value: Any) -> Any:
    if name == "activation" and value is None:
        return "linear"
    if name.endswith("_initializer") and isinstance(value, dict) and "class_name" in value:
        # {"class_name": "HeNormal", "config": {"seed": None}} is he_normal; the configs are
        # compared afterwards, so a seeded or scaled one stays a KerasLayer
        return _snake_case(str(value["class_name"]))
    if kind == "float" and isinstance(value, list) and len(value) == 2 and value[0] == -value[1]:
        return value[1]  # a symmetric range (-0.2, 0.2) is the factor 0.2
    return value


def _snake_case(class_name: str) -> str:
    """A Keras class name in function style: TrueDivide -> true_divide, HeNormal -> he_normal."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


def _is_serialized_layer(value: Any) -> bool:
    return (isinstance(value, dict) and value.get("module") == "keras.layers"
            and isinstance(value.get("config"), dict))  # fmt: skip


def _render(component: Component, settings: dict[str, Any],
            tensors: list) -> dict[str, Any] | None:  # fmt: skip
    """The config of the layer that the component's template builds on such input tensors."""
    from app.graph.codegen import generate_module
    from app.keras.builder import load_module

    nodes = []
    for i, tensor in enumerate(tensors):
        dtype = tensor.dtype if tensor.dtype in DTYPES else "float32"
        nodes.append({"id": f"in{i}", "component": "Input",
                      "settings": {"shape": list(tensor.shape[1:]), "dtype": dtype}})  # fmt: skip
    nodes.append({"id": PROBE_ID, "component": component.name, "settings": settings})
    nodes.append({"id": "out", "component": "Output", "settings": {
        "units": None, "activation": "linear", "loss": "mean_squared_error"}})  # fmt: skip
    edges = [{"source": f"in{i}", "target": PROBE_ID, "slot": i} for i in range(len(nodes) - 2)]
    edges.append({"source": PROBE_ID, "target": "out"})
    try:
        doc = parse({"meta": {"name": "probe"}, "nodes": nodes, "edges": edges})
        # Shape errors are let through: Keras itself says whether it takes these inputs.
        model = load_module(generate_module(doc, require_valid=False))["build_model"]()
        return _plain(model.get_layer(PROBE_ID).get_config())
    except Exception as err:  # anything Keras or the template refuses means "not this way"
        reason = one_line(err, plain=Exception)
        log.debug("%s with %s does not build: %s", component.name, settings, reason)
        return None


def _rule_disagreement(component: Component, settings: dict[str, Any], layer, tensors: list,
                       output) -> str:  # fmt: skip
    """How the component's shape rule differs from the built Keras layer; empty if it agrees."""
    shapes = [tuple(t.shape) for t in tensors]
    try:
        info = component.infer(settings, shapes)
    except ShapeError as err:
        return f"the rule refuses inputs {shapes}: {err}"
    expected = (
        tuple(output.shape),
        sum(math.prod(w.shape) for w in layer.weights if w.trainable),
        sum(math.prod(w.shape) for w in layer.weights if not w.trainable),
    )
    found = (tuple(info.shape), info.trainable, info.non_trainable)
    if found != expected:
        return (f"rule gives shape, trainable, non-trainable {found}; Keras gives {expected} "
                f"for inputs {shapes}")  # fmt: skip
    return ""


def _comparable(config: dict[str, Any], rank: int) -> dict[str, Any]:
    """The config minus what does not change the computation, with axes counted from 0, since
    axis=3 and axis=-1 are the same axis of a rank-4 input (Keras applications use both)."""
    result = _without_names(config)
    axis = result.get("axis")
    if isinstance(axis, int) and not isinstance(axis, bool):
        result["axis"] = _from_zero(axis, rank)
    elif isinstance(axis, list) and all(isinstance(a, int) for a in axis):
        result["axis"] = [_from_zero(a, rank) for a in axis]
    return result


def _without_names(config: dict[str, Any]) -> dict[str, Any]:
    """A layer config without names and trainable flags, down into the layers it wraps (whose
    names Keras numbers anew in every build)."""
    return {key: {**value, "config": _without_names(value["config"])}
            if _is_serialized_layer(value) else value
            for key, value in config.items() if key not in IGNORED_CONFIG}  # fmt: skip


def _from_zero(axis: int, rank: int) -> int:
    return axis + rank if -rank <= axis < 0 else axis


def _plain(value: Any) -> Any:
    """A JSON value (tuples become lists), as a graph document stores it."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy scalars and arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
