"""Memory a graph needs to train, per node, from the engine's shapes and parameter counts (no
TensorFlow): weights (parameters x bytes per value), gradients (trainable parameters), the
optimizer's slots (trainable parameters x slots per weight: Adam keeps two) and the activations
kept for the backward pass (the node's output, per sample, times the batch size).
"""

from __future__ import annotations

import math
from typing import Any

from app.graph.analysis import Analysis

BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
# Values an optimizer keeps per trainable weight (Keras 3's defaults: SGD without momentum).
SLOTS = {"sgd": 0, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2, "nadam": 2,
         "adamax": 2, "lion": 1, "ftrl": 2, "adadelta": 2}  # fmt: skip


def node_memory(
    analysis: Analysis, batch_size: int, optimizer: str = "adam", dtype: str = "float32"
) -> dict[str, dict[str, int]]:
    """Node id -> bytes of weights, gradients, optimizer (slots), activations and their total,
    for one training step at `batch_size`. Raises ValueError naming an unknown optimizer or
    dtype."""
    if dtype not in BYTES:
        raise ValueError(
            f"Received an invalid value for `dtype`, expected one of {', '.join(BYTES)}. "
            f"Received: dtype={dtype!r}"
        )
    if optimizer.lower() not in SLOTS:
        raise ValueError(
            f"Received an invalid value for `optimizer`, expected one of {', '.join(SLOTS)}. "
            f"Received: optimizer={optimizer!r}"
        )
    size, slots = BYTES[dtype], SLOTS[optimizer.lower()]
    found = {}
    for node in analysis.doc.nodes:
        info = analysis.infos.get(node.id)
        if info is None:
            continue
        figures = {
            "weights": info.params * size,
            "gradients": info.trainable * size,
            "optimizer": info.trainable * size * slots,
            "activations": _values(info.shape) * batch_size * size,
        }
        found[node.id] = {**figures, "total": sum(figures.values())}
    return found


def _values(shape: Any) -> int:
    """Values per sample of an output shape (its batch axis first); an unknown size counts 1."""
    if not isinstance(shape, tuple):
        return 0
    return math.prod(d if isinstance(d, int) else 1 for d in shape[1:])
