"""Benchmark: motif folding on import (app.graph.fold) of five keras.applications models.

Run with `.venv/bin/python bench/bench_fold.py`. Each model is built with random weights (nothing
is downloaded), imported flat and folded, and for each the table gives the top-level nodes
before and after, how many times fewer, the block definitions, the Block nodes that repeat
their block, those that carry `params` (settings that differ from their block's), and the
seconds folding took. The folded model is then built and given the original's weights by
layer name, and its outputs are compared with the original's.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from app.graph.fold import fold_motifs  # noqa: E402
from app.keras.builder import build_model, copy_weights_by_name  # noqa: E402
from app.keras.importer import import_keras  # noqa: E402

MODELS = [  # as the tests import them
    ("ResNet50", (64, 64, 3)),
    ("DenseNet121", (64, 64, 3)),
    ("MobileNetV2", (96, 96, 3)),
    ("EfficientNetB0", (64, 64, 3)),
    ("NASNetMobile", (96, 96, 3)),
]


def same_outputs_by_name(model: keras.Model, folded) -> float:
    """The largest difference between the original's outputs and the folded model's, given
    the original's weights layer by layer, by name."""
    rebuilt = build_model(folded)
    copy_weights_by_name(model, rebuilt)
    x = np.random.default_rng(0).random((2, *model.input_shape[1:]), dtype="float32")
    return float(np.abs(np.asarray(rebuilt(x)) - np.asarray(model(x))).max())


def main() -> None:
    print("| model | flat nodes | folded nodes | fewer | block definitions | repeated Block "
          "nodes | Block nodes with params | seconds | largest output difference |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, shape in MODELS:
        model = getattr(keras.applications, name)(weights=None, input_shape=shape)
        flat = import_keras(model, flat=True)
        start = time.perf_counter()
        folded = fold_motifs(flat)
        seconds = time.perf_counter() - start
        blocks = [n.settings for n in folded.nodes if n.component == "Block"]
        print(
            f"| {name} | {len(flat.nodes)} | {len(folded.nodes)} | "
            f"{len(flat.nodes) / len(folded.nodes):.1f}x | {len(folded.blocks)} | "
            f"{sum(s.get('repeat', 1) > 1 for s in blocks)} | "
            f"{sum(bool(s.get('params')) for s in blocks)} | {seconds:.1f} | "
            f"{same_outputs_by_name(model, folded):.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
