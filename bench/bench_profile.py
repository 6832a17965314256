"""Benchmark: what profiling costs, and how well its batch-size what-if predicts, in one run.

Run with `.venv/bin/python bench/bench_profile.py` (a few minutes on two cores). Two graphs:
  - the image-classification template (8x8x1 digits);
  - ResNet50 from keras.applications (weights=None, 64x64x3 inputs to keep it CPU-sized),
    imported with `import_keras` (178 nodes).

For each: the seconds `profile_graph` takes at four batch sizes (TFLite latency included), and
the what-if's error: the line fitted to those four sizes predicts the training step at a fifth
size, which is then measured (`profile_times`), and the two are compared. It also prints the
gap between the nodes' forward times and the whole forward at the largest size. Prints a
Markdown table.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")  # as profiling processes run (launch)
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.graph.analysis import analyze  # noqa: E402
from app.graph.model_templates import load_template  # noqa: E402
from app.profile import fit  # noqa: E402
from app.profile.measure import profile_times  # noqa: E402
from app.profile.profiler import profile_graph  # noqa: E402

CASES = {
    # name: (graph maker, the four batch sizes profiled, the size predicted then measured)
    "image_classification": (lambda: load_template("image_classification"), [8, 32, 64, 128], 96),
    "ResNet50 64x64": (None, [1, 2, 4, 8], 6),
}


def resnet50():
    import keras

    from app.keras.importer import import_keras

    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    return import_keras(model)


def main() -> None:
    rows = []
    for name, (make, sizes, unmeasured) in CASES.items():
        doc = make() if make else resnet50()
        started = time.perf_counter()
        report = profile_graph(doc, sizes)
        seconds = time.perf_counter() - started
        line = fit.line(sizes, [w["step_ms"] for w in report["whole"]])
        predicted = fit.predict(line, unmeasured)
        (measured,) = profile_times(analyze(doc), [unmeasured])["whole"]
        error = predicted / measured["step_ms"] - 1
        last = report["whole"][-1]
        rows.append((name, len(doc.nodes), sizes, seconds, unmeasured, predicted,
                     measured["step_ms"], error, last["gap"]))  # fmt: skip
        print(f"{name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    print(
        "| graph | nodes | batch sizes | seconds to profile | predicted at | predicted step ms "
        "| measured step ms | what-if error | nodes vs whole forward (largest batch) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, nodes, sizes, seconds, size, predicted, measured, error, gap in rows:
        print(
            f"| {name} | {nodes} | {','.join(map(str, sizes))} | {seconds:.1f} | {size} | "
            f"{predicted:.2f} | {measured:.2f} | {error:+.1%} | {gap:+.1%} |"
        )


if __name__ == "__main__":
    main()
