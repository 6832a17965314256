"""Benchmark: load + validate + shapes, and codegen, beside building the same model in Keras.

Run with `make bench` (or `.venv/bin/python bench/bench_graph.py`). Graphs of 50, 200 and
1,000 nodes are generated (a residual MLP: Dense, BatchNormalization, Dropout, Add), plus
NASNetMobile imported from keras.applications (weights=None). For each, in one run:
  - load: JSON text -> GraphDocument -> analysis (structure, shapes, costs, rules)
  - codegen: analysis -> Python module
  - keras: executing that module's build_model(), i.e. building the model symbolically in Keras
Medians over repeats; the ratios say how many times faster the engine is than the Keras build.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.graph.analysis import analyze  # noqa: E402
from app.graph.codegen import generate_module  # noqa: E402
from app.graph.document import parse  # noqa: E402
from app.keras.builder import load_module  # noqa: E402


def residual_mlp(nodes: int) -> dict:
    """Input, then repeated [Dense, BatchNormalization, Dropout, Add(skip)], then Output."""
    doc_nodes = [{"id": "x", "component": "Input", "settings": {"shape": [64]}}]
    edges = []
    previous, i = "x", 0
    while len(doc_nodes) < nodes - 1:
        ids = [f"dense_{i}", f"bn_{i}", f"drop_{i}", f"add_{i}"]
        doc_nodes += [
            {"id": ids[0], "component": "Dense", "settings": {"units": 64}},
            {"id": ids[1], "component": "BatchNormalization"},
            {"id": ids[2], "component": "Dropout", "settings": {"rate": 0.1}},
            {"id": ids[3], "component": "Add"},
        ]
        edges += [
            {"source": previous, "target": ids[0]},
            {"source": ids[0], "target": ids[1]},
            {"source": ids[1], "target": ids[2]},
            {"source": ids[2], "target": ids[3], "slot": 0},
            {"source": previous, "target": ids[3], "slot": 1},
        ]
        previous, i = ids[3], i + 1
    doc_nodes.append({"id": "y", "component": "Output", "settings": {"units": 10}})
    edges.append({"source": previous, "target": "y"})
    return {
        "schema_version": 1,
        "meta": {"name": f"mlp{nodes}"},
        "nodes": doc_nodes,
        "edges": edges,
    }


def nasnet() -> dict:
    import keras

    from app.keras.importer import import_keras

    model = keras.applications.NASNetMobile(weights=None, input_shape=(224, 224, 3))
    return json.loads(import_keras(model).to_json())


def median_ms(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(name: str, data: dict, repeats: int) -> dict:
    import keras

    text = json.dumps(data)
    load_ms = median_ms(lambda: analyze(parse(json.loads(text))), repeats)
    analysis = analyze(parse(json.loads(text)))
    assert analysis.ok, analysis.errors[:3]
    codegen_ms = median_ms(lambda: generate_module(analysis), repeats)
    build = load_module(generate_module(analysis))["build_model"]

    def keras_build():
        keras.backend.clear_session()
        build()

    keras_ms = median_ms(keras_build, max(3, repeats // 4))
    return {
        "graph": name,
        "nodes": len(data["nodes"]),
        "load_validate_shapes_ms": load_ms,
        "codegen_ms": codegen_ms,
        "keras_build_ms": keras_ms,
        "keras_vs_load": keras_ms / load_ms,
        "keras_vs_codegen": keras_ms / codegen_ms,
    }


def main() -> None:
    results = [measure(f"residual MLP {n}", residual_mlp(n), 21) for n in (50, 200, 1000)]
    results.append(measure("NASNetMobile (imported)", nasnet(), 7))
    header = (
        f"{'graph':<26}{'nodes':>6}{'load+validate+shapes':>22}{'codegen':>10}"
        f"{'Keras build':>13}{'Keras/load':>12}{'Keras/codegen':>15}"
    )
    print(header)
    for r in results:
        print(
            f"{r['graph']:<26}{r['nodes']:>6}{r['load_validate_shapes_ms']:>19.1f} ms"
            f"{r['codegen_ms']:>7.1f} ms{r['keras_build_ms']:>10.1f} ms"
            f"{r['keras_vs_load']:>11.1f}x{r['keras_vs_codegen']:>14.1f}x"
        )
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
