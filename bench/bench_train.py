"""Benchmark: training with LayerFlowCallback beside plain `model.fit`, in one run.

Run with `.venv/bin/python bench/bench_train.py` (add `--quick` for one short repeat). The model
is the image_classification template built by LayerFlow, trained on scikit-learn's 1,797 digits
(8x8x1 images, labels 0..9) with the same seed, epochs, batch size and validation split both
ways; the callback runs at the default cadence with a 32-sample batch for gradients,
activations and previews, writing to a temporary folder that is removed afterwards. Repeats
alternate which way goes first; medians are printed. Wall times are whole `fit` calls, Keras'
own tracing of the training step included, as a user waits for them; CPU seconds (all threads of
this process) are shown beside them, as they suffer less from other programs on the machine.

The breakdown is the callback's own accounting (`LayerFlowCallback.timings`): seconds in each
of its parts. Batch metrics run on Keras' callback thread beside training, so part of their
time is hidden; the rest is on the training thread.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from app.graph.model_templates import load_template  # noqa: E402
from app.keras.builder import build_model  # noqa: E402
from app.keras.livestats import LayerFlowCallback  # noqa: E402
from app.workspace.events import read_events  # noqa: E402

SEED = 0
BATCH_SIZE = 32
SAMPLE = 32
TARGET_OVERHEAD = 5.0  # percent


def train(x: np.ndarray, y: np.ndarray, epochs: int, run_dir: Path | None) -> tuple:
    """Wall and CPU seconds of one fit of a fresh model, and the callback's timings (empty
    without it)."""
    keras.utils.set_random_seed(SEED)
    model = build_model(load_template("image_classification"))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = []
    if run_dir is not None:
        callbacks.append(LayerFlowCallback(run_dir, sample=(x[:SAMPLE], y[:SAMPLE])))
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, validation_split=0.2,
              callbacks=callbacks, verbose=0)  # fmt: skip
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return seconds, cpu, callbacks[0].timings if callbacks else {}


def main() -> None:
    quick = "--quick" in sys.argv
    epochs, repeats = (5, 1) if quick else (20, 5)
    digits = load_digits()
    x = digits.images[..., None].astype("float32")
    y = digits.target.astype("int64")
    plain, monitored, parts = [], [], []  # (wall, cpu) pairs; the callback's timings
    layer_events = []  # how many layer-statistics points the time budget let through
    with tempfile.TemporaryDirectory(prefix="layerflow-bench-") as folder:
        for repeat in range(repeats):
            order = ("plain", "callback") if repeat % 2 == 0 else ("callback", "plain")
            for way in order:
                if way == "plain":
                    plain.append(train(x, y, epochs, None)[:2])
                else:
                    seconds, cpu, timings = train(x, y, epochs, Path(folder) / f"run{repeat}")
                    monitored.append((seconds, cpu))
                    parts.append(timings)
                    layer_events.append(len(read_events(Path(folder) / f"run{repeat}",
                                                        {"layers"})[0]))  # fmt: skip
    base, cpu_base = (statistics.median(times) for times in zip(*plain, strict=True))
    with_callback, cpu_callback = (
        statistics.median(times) for times in zip(*monitored, strict=True)
    )
    overhead = 100 * (with_callback - base) / base
    cpu_overhead = 100 * (cpu_callback - cpu_base) / cpu_base
    print(f"digits {x.shape[0]} x 8x8x1, image_classification template, {epochs} epochs, "
          f"batch {BATCH_SIZE}, validation 20%, {repeats} repeats (medians), "
          f"{os.cpu_count()} CPU cores")  # fmt: skip
    print()
    print(f"{'':32}{'wall s':>10}{'CPU s':>10}")
    print(f"{'plain model.fit':32}{base:>10.3f}{cpu_base:>10.3f}")
    print(f"{'fit + LayerFlowCallback':32}{with_callback:>10.3f}{cpu_callback:>10.3f}")
    verdict = "within" if overhead <= TARGET_OVERHEAD else "OVER"
    print(f"{'overhead':32}{overhead:>9.1f}%{cpu_overhead:>9.1f}%   "
          f"(wall: {verdict} the {TARGET_OVERHEAD:.0f}% target)")  # fmt: skip
    print()
    print(f"{'callback part':32}{'seconds':>10}{'% of plain fit':>16}")
    total = 0.0
    for part in parts[0]:
        seconds = statistics.median(timing[part] for timing in parts)
        total += seconds
        print(f"{part:32}{seconds:>10.3f}{100 * seconds / base:>15.1f}%")
    print(f"{'all parts':32}{total:>10.3f}{100 * total / base:>15.1f}%")
    print()
    print(f"layers events written per run: {layer_events} (of {epochs} epochs)")


if __name__ == "__main__":
    main()
