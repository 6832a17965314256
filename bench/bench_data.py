"""Benchmark: LayerFlow's input pipelines beside the plain Keras and pandas ways, in one run.

Run with `.venv/bin/python bench/bench_data.py` (add `--quick` for fewer repeats). Everything is
made in a temporary folder and removed afterwards:
  - images: scikit-learn's 1,797 digits as 8x8 grayscale PNGs in one folder per class. One full
    pass of `make_dataset(training=True)` (shuffled, decoded, scaled) beside
    `keras.utils.image_dataset_from_directory` on the same folder (shuffled, same batch size
    and image size). LayerFlow's time is given without and with `read_source` (which opens and
    checks every image, once per run of the app, not once per epoch), and for a second epoch
    of the same dataset (decoded images are held in memory; Keras decodes them again).
  - table: a generated CSV of 1,000,000 rows (4 numeric columns and a label). One full pass of
    `read_source` + `make_dataset` (standardized features, class ids), and of the streaming
    path (the CSV parsed by tf.data, as for a table larger than memory), beside
    `pandas.read_csv` + `tf.data.Dataset.from_tensor_slices` (no preprocessing at all).
A pass is consumed inside TensorFlow (`Dataset.reduce`), as a training loop consumes it, so that
Python's per-batch overhead does not hide the pipelines' own cost. Repeats of the cases are
interleaved; medians are printed, and ratios above 1 mean LayerFlow is faster.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from app.data.sources import read_source  # noqa: E402
from app.keras.pipeline import make_dataset  # noqa: E402
from app.runtime.config import FeatureSpec, PreprocessConfig  # noqa: E402
from app.runtime.fit import fit  # noqa: E402

TABLE_ROWS = 1_000_000
IMAGE_BATCH = 32
TABLE_BATCHES = (32, 1024)


def digits_folder(folder: Path) -> Path:
    """The digits as PNGs in <folder>/<label>/, through the sample maker if it is there."""
    try:
        from app.data.samples import make_sample
    except ImportError:
        make_sample = None
    if make_sample is not None:
        return make_sample("digits", folder)
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        pixels = np.round(image * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels).save(folder / str(label) / f"{index:04d}.png")
    return folder


def table_file(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(i, 1 + i, TABLE_ROWS).round(6) for i in range(4)})
    frame["label"] = rng.integers(0, 3, TABLE_ROWS)
    path = folder / "table.csv"
    frame.to_csv(path, index=False)
    return path


def count_rows(dataset) -> int:
    """One full pass inside TensorFlow; the number of samples seen."""
    import tensorflow as tf

    def add(total, batch):
        targets = batch[-1]
        return total + tf.cast(tf.shape(targets)[0], tf.int64)

    return int(dataset.reduce(tf.constant(0, tf.int64), add))


def medians(cases: dict[str, Callable[[], int]], repeats: int) -> dict[str, float]:
    """Seconds per case (median), the cases' repeats interleaved; each once untimed first."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for case in cases.values():
        case()
    for _ in range(repeats):
        for name, case in cases.items():
            gc.collect()  # so that no case pays for another's garbage
            start = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(found) for name, found in times.items()}


def image_cases(folder: Path) -> tuple[int, dict[str, Callable[[], int]]]:
    import keras

    source = read_source(folder)
    rows = len(source.frame)
    spec = FeatureSpec(column="image", kind="image", height=8, width=8, grayscale=True)
    config = PreprocessConfig(features=[spec], target="label", target_kind="classes")
    state = fit(config, source, range(rows))

    def layerflow() -> int:
        return count_rows(make_dataset(config, state, source, range(rows), IMAGE_BATCH, True))

    def layerflow_with_reading() -> int:
        again = read_source(folder)
        return count_rows(make_dataset(config, state, again, range(rows), IMAGE_BATCH, True))

    held = make_dataset(config, state, source, range(rows), IMAGE_BATCH, True)
    count_rows(held)  # the first epoch

    def keras_folder() -> int:
        dataset = keras.utils.image_dataset_from_directory(
            folder,
            image_size=(8, 8),
            color_mode="grayscale",
            batch_size=IMAGE_BATCH,
            shuffle=True,
            seed=0,
            verbose=False,
        )
        return count_rows(dataset)

    keras_second = keras.utils.image_dataset_from_directory(
        folder, image_size=(8, 8), color_mode="grayscale", batch_size=IMAGE_BATCH, verbose=False
    )
    count_rows(keras_second)

    return rows, {
        "LayerFlow make_dataset + pass": layerflow,
        "LayerFlow read_source + make_dataset + pass": layerflow_with_reading,
        "Keras image_dataset_from_directory + pass": keras_folder,
        "LayerFlow, a later epoch": lambda: count_rows(held),
        "Keras, a later epoch": lambda: count_rows(keras_second),
    }


def table_cases(path: Path, batch_size: int) -> dict[str, Callable[[], int]]:
    import tensorflow as tf

    features = [FeatureSpec(column=f"x{i}", kind="numeric") for i in range(4)]
    config = PreprocessConfig(features=features, target="label", target_kind="classes")
    sample = read_source(path, max_rows=1000)  # a sampled source streams the rest from disk
    state = fit(config, sample, range(TABLE_ROWS))
    everything = range(TABLE_ROWS)

    def layerflow() -> int:
        source = read_source(path)
        return count_rows(make_dataset(config, state, source, everything, batch_size))

    def layerflow_streaming() -> int:
        return count_rows(make_dataset(config, state, sample, everything, batch_size))

    def pandas_tf() -> int:
        frame = pd.read_csv(path)
        x = frame[[f"x{i}" for i in range(4)]].to_numpy(np.float32)
        y = frame["label"].to_numpy()
        return count_rows(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size))

    return {
        "LayerFlow read_source + make_dataset + pass": layerflow,
        "LayerFlow streamed from disk (tf.data CSV) + pass": layerflow_streaming,
        "pandas.read_csv + from_tensor_slices + pass": pandas_tf,
    }


def print_table(title: str, unit: str, rows: int, results: dict[str, float], baseline: str):
    print(f"\n{title}")
    print(f"{'case':<52}{'median':>10}{unit + '/s':>14}{'vs ' + 'baseline':>14}")
    for name, seconds in results.items():
        ratio = results[baseline] / seconds
        print(f"{name:<52}{seconds * 1000:>8.0f}ms{rows / seconds:>14,.0f}{ratio:>13.2f}x")


def main() -> None:
    quick = "--quick" in sys.argv
    folder = Path(tempfile.mkdtemp(prefix="layerflow-bench-"))
    try:
        digits = digits_folder(folder / "digits")
        rows, cases = image_cases(digits)
        results = medians(cases, repeats=3 if quick else 9)
        first = {name: results[name] for name in list(cases)[:3]}
        later = {name: results[name] for name in list(cases)[3:]}
        print(f"Images: digits, {rows:,} 8x8 PNGs, batch {IMAGE_BATCH}, one shuffled pass")
        print_table(
            "first pass", "images", rows, first, "Keras image_dataset_from_directory + pass"
        )
        print_table(
            "a later epoch of the same dataset", "images", rows, later, "Keras, a later epoch"
        )

        path = table_file(folder)
        print(f"\nTable: {TABLE_ROWS:,} rows x 5 columns, {path.stat().st_size / 2**20:.0f} MB CSV")
        for batch_size in TABLE_BATCHES:
            results = medians(table_cases(path, batch_size), repeats=1 if quick else 3)
            print_table(
                f"batch {batch_size}, one pass in file order",
                "rows",
                TABLE_ROWS,
                results,
                "pandas.read_csv + from_tensor_slices + pass",
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
