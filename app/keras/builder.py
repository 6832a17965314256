"""The engine's model builder: the Keras model of a graph, built from its generated code.

Building through the generated module means the code a user reads is the code that runs.
Also the model of a run's checkpoint (`load_run_model`). Importing this module does not import
TensorFlow; calling build_model does.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from app.graph.analysis import Analysis, analyze
from app.graph.block_layers import layer_owners
from app.graph.codegen import generate_module
from app.graph.document import GraphDocument, load
from app.graph.problems import GraphError, Problem, node_ref
from app.graph.shapes import untrusted_nodes
from app.keras.importer import id_for
from app.workspace import Workspace, runs


def load_module(source: str, name: str = "layerflow_generated") -> dict[str, Any]:
    """Execute generated model code and return its namespace."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Keras maps a functional graph recursively, about four frames per layer of depth: the
    # default limit of 1,000 frames fails on graphs a few hundred layers deep.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    namespace: dict[str, Any] = {"__name__": name}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace


def build_model(doc: GraphDocument | Analysis):
    """The uncompiled keras.Model for a graph; raises GraphError if the graph has errors or
    code this workspace does not trust (app.trust): building runs it."""
    analysis = doc if isinstance(doc, Analysis) else analyze(doc)
    refuse_untrusted(analysis.doc)
    return load_module(generate_module(analysis))["build_model"]()


def refuse_untrusted(doc: GraphDocument) -> None:
    """GraphError naming every node whose code is not trusted yet, and how to trust it."""
    problems = [
        Problem(
            "error",
            "untrusted",
            f"{node_ref(node.id, node.component)}: its code is not trusted in this workspace; "
            "read it, then trust the graph (`layerflow trust GRAPH` or Trust on the Model page)",
            node=node.id,
        )
        for node in untrusted_nodes(doc)
    ]
    if problems:
        raise GraphError(problems, doc.meta.name)


def node_layers(model, doc: GraphDocument, node_id: str) -> list:
    """The Keras layers that implement one node of the graph `model` was built from: the layer
    named with its id, or a Block node's layers (app.graph.block_layers.layer_owners)."""
    owners = layer_owners(doc)
    return [layer for layer in model.layers if owners.get(layer.name) == node_id]


def copy_weights_by_name(source, target) -> int:
    """Give each layer of the Keras model `target` the weights of the layer of `source` with its
    name: an imported model's trained weights, into the model of its graph, folded or not
    (folding keeps each layer's name; a name that is not an id, '1st dense', is the import's
    id for it, '_1st_dense'). The number of layers that took weights; ValueError, with
    nothing changed, naming the first layer of `source` with weights that `target` lacks or
    whose weights do not fit it."""
    pairs = []
    names = {layer.name: layer for layer in target.layers}
    for layer in source.layers:
        if not layer.weights:
            continue
        into = names.get(layer.name) or names.get(id_for(layer.name))  # renamed on import
        if into is None:
            raise ValueError(f"Layer {layer.name!r} has weights, and the graph's model has no "
                             "layer of that name")  # fmt: skip
        theirs = [tuple(w.shape) for w in layer.weights]
        ours = [tuple(w.shape) for w in into.weights]
        if theirs != ours:
            raise ValueError(f"Layer {layer.name!r}: its weights of shapes {theirs} do not fit "
                             f"the graph's, of shapes {ours}")  # fmt: skip
        pairs.append((layer, into))
    for layer, into in pairs:
        into.set_weights(layer.get_weights())
    return len(pairs)


def load_run_model(run: str | os.PathLike, which: str = "best"):
    """The Keras model of a run's best or last checkpoint, built from the run's graph (so that
    Custom nodes need no registration) with the checkpoint's weights; uncompiled."""
    if which not in ("best", "last"):
        raise ValueError(
            f"Received an invalid value for `which`, expected best or last. "
            f"Received: which={which!r}"
        )
    folder = Workspace.current().run(run)
    path = folder / runs.CHECKPOINTS / f"{which}.keras"
    if not path.exists():
        raise runs.RunError([f"Run '{folder.name}' has no {which} checkpoint yet"])
    model = build_model(load(folder / runs.GRAPH))
    model.load_weights(path, skip_mismatch=False)
    return model
