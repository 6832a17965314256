"""An autoencoder's parts, for looking inside it: what it is given to reconstruct, its
reconstruction and its code (the bottleneck's output), from raw inputs; and the decoder, which
turns a code back into a reconstruction (to walk between two inputs' codes).

The bottleneck is the node with the smallest output through which everything between the
Input and the Output passes (Keras refuses a decoder from a node that a skip connection goes
around). A graph without one still has its reconstructions, with no code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.data.anomaly import reconstructs
from app.graph.analysis import analyze
from app.graph.document import GraphDocument
from app.runtime.config import FittedState, PreprocessConfig
from app.runtime.serving import arranged, raw_model_inputs

INPUT, RECONSTRUCTION, CODE = "input", "reconstruction", "code"


@dataclass
class Parts:
    """`explain`: a Keras model of raw inputs giving INPUT (what the model is given, after
    preprocessing), RECONSTRUCTION and, with a bottleneck, CODE; `decoder`: the bottleneck's
    output -> the reconstruction, or None; `bottleneck`: its node id, or None."""

    explain: Any
    decoder: Any | None
    bottleneck: str | None


def bottleneck(trained: Any, doc: GraphDocument) -> tuple[str, Any] | None:
    """(node id, decoder) of the graph's bottleneck, or None: of the nodes between Input and
    Output, smallest output first, the first from which Keras can build the rest of the model."""
    import keras

    infos = analyze(doc).infos
    inner = [n.id for n in doc.nodes if n.component not in ("Input", "Output")]
    sized = [(_size(infos[node].shape if node in infos else None), i, node)
             for i, node in enumerate(inner)]  # fmt: skip
    layers = {layer.name: layer for layer in trained.layers}
    for _, _, node in sorted(s for s in sized if s[0] is not None):
        if node not in layers:  # a Block: its layers are named for the nodes inside it
            continue
        try:  # a layer called more than once has no one output; a skip connection goes around
            return node, keras.Model(layers[node].output, trained.output, name="decoder")
        except (AttributeError, ValueError):
            continue
    return None


def parts(trained: Any, doc: GraphDocument, config: PreprocessConfig, state: FittedState) -> Parts:
    """The autoencoder's parts; ValueError when the graph does not reconstruct an Input."""
    import keras

    target = reconstructs(doc)
    if target is None:
        raise ValueError(f"{doc.meta.name}: not an autoencoder (its Output reconstructs no Input)")
    inputs = [n.id for n in doc.nodes if n.component == "Input"]
    raw, features = raw_model_inputs(config, state)
    given = arranged(features, inputs)
    outputs = {INPUT: features[target], RECONSTRUCTION: trained(given)}
    found = bottleneck(trained, doc)
    decoder = None
    if found is not None:
        node, decoder = found
        encoder = keras.Model(trained.inputs, trained.get_layer(node).output, name="encoder")
        outputs[CODE] = encoder(given)
    named = {name: keras.layers.Identity(name=name)(value) for name, value in outputs.items()}
    explain = keras.Model(inputs=raw, outputs=named, name="autoencoder_parts")
    return Parts(explain, decoder, None if found is None else found[0])


def _size(shape: Any) -> int | None:
    """Values per sample of a node's output shape (its batch axis first), or None when a
    dimension is unknown or the node has several outputs."""
    if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape[1:]):
        return None
    return math.prod(shape[1:])
