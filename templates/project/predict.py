"""Predict with the trained model from raw data.

    python predict.py INPUT [INPUT ...] [--rows 0-99,120] [--model model] [--json]

INPUT is a table (.csv, .tsv or .parquet) with the feature columns (image paths relative to its
folder), an .npz file of the feature arrays, or image files or folders of them (for a model with
one image input); --rows picks rows of it (from 0; all by default). Prints a CSV with a row per
example (per window of rows, for a time series, numbered by its last row): the predicted class
and the probability of each class, or the predicted values; --json prints {"outputs": {name:
values}, "classes", "labels"}. Masks (segmentation) and other outputs of many values go to
predictions.npz. --model is the folder of model.keras and its preprocessing.json. Data that
cannot be used (a column missing, too few rows for a window) is said
in one line, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from runtime.config import FittedState, PreprocessConfig
from runtime.predictor import Predictor
from runtime.rows import Rows, read_rows
from runtime.transform import window_starts

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
HERE = Path(__file__).resolve().parent


def read_inputs(paths: list[Path], config: PreprocessConfig) -> Rows:
    """The rows to predict: one table or .npz file, or image files and folders."""
    if len(paths) == 1 and paths[0].suffix.lower() in (".csv", ".tsv", ".parquet", ".npz"):
        return read_rows(paths[0])
    images = [spec for spec in config.features if spec.kind == "image"]
    if len(images) != 1 or len(config.features) != 1:
        raise SystemExit("image files can be given only to a model whose one input is an image")
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)
    frame = pd.DataFrame({images[0].column: [str(p.resolve()) for p in files]})
    return Rows("image_folder", Path("/"), frame)


def row_numbers(text: str | None, rows: int) -> np.ndarray:
    """'0-9,15' -> [0, ..., 9, 15]; every row when not given."""
    if text is None:
        return np.arange(rows)
    found: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        found += range(int(first), int(last or first) + 1)
    return np.asarray(found, dtype=np.int64)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    parser.add_argument("--rows", help="the rows to predict, from 0: 0-99,120 (default: all)")
    parser.add_argument(
        "--model", type=Path, default=HERE / "model", help="the folder of model.keras"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a CSV")
    args = parser.parse_args(argv)
    params = yaml.safe_load((HERE / "params.yaml").read_text())
    config = PreprocessConfig.model_validate(params["preprocessing"])
    state = FittedState.model_validate_json((args.model / "preprocessing.json").read_text())
    predictor = Predictor.load(args.model, "keras", config=config, state=state)
    try:
        rows = read_inputs(args.inputs, config)
        index = row_numbers(args.rows, len(rows.frame))
        outputs = predictor.predict_rows(rows, index)
    except ValueError as err:  # DataError: the data cannot be used, in one line
        print(f"predict.py: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    if config.window is not None:
        # A forecast follows the last row of its window.
        index = index[window_starts(config, index) + config.window.size - 1]
    classes = state.classes
    labels = None
    # An autoencoder's output is its input remade, not the classes of the data's labels.
    autoencoder = bool(params["train"].get("reconstructs"))
    if classes and config.target_kind == "classes" and len(outputs) == 1 and not autoencoder:
        values = next(iter(outputs.values()))
        ids = (values[:, 0] > 0.5).astype(int) if values.shape[-1] == 1 else values.argmax(-1)
        labels = [classes[i] for i in ids]
    if args.json:
        found = {name: value.tolist() for name, value in outputs.items()}
        print(json.dumps({"outputs": found, "classes": classes, "labels": labels}))
        return
    if any(value.ndim > 2 for value in outputs.values()):
        np.savez("predictions.npz", **outputs)
        print("wrote predictions.npz", file=sys.stderr)
        return
    table = pd.DataFrame({"row": index + 1})
    if labels is not None:
        table["prediction"] = labels
    for name, value in outputs.items():
        many = value.shape[-1] > 1 or len(outputs) > 1
        for unit in range(value.shape[-1]):
            if autoencoder:
                column = f"{name}_{unit}"
            elif classes and len(classes) == value.shape[-1]:
                column = f"p({classes[unit]})"
            elif classes and value.shape[-1] == 1:
                column = f"p({classes[-1]})"
            else:
                column = f"{name}_{unit}" if many else name
            table[column] = value[:, unit]
    table.to_csv(sys.stdout, index=False)


if __name__ == "__main__":
    main()
