"""Sample data sets, made on request from what scikit-learn ships or from a seeded generator;
nothing is downloaded. Each is written the way a user's own data would be, so that it goes
through the same `read_source` as theirs."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SAMPLES: dict[str, str] = {
    "digits": "1,797 handwritten digits, 8x8 grayscale PNGs in one folder per class "
    "(image classification, 10 classes)",
    "digits_csv": "the same digits as a CSV of image paths and labels (image classification)",
    "iris": "150 iris flowers, 4 measurements, 3 species (tabular, multiclass)",
    "wine": "178 wines, 13 chemical measurements, 3 cultivars (tabular, multiclass)",
    "breast_cancer": "569 tumours, 30 measurements, malignant or benign (tabular, binary)",
    "diabetes": "442 patients, 10 measurements, disease progression (tabular, regression)",
    "timeseries": "1,000 steps of a series with trend, seasonality and noise (forecasting)",
    "shapes": "200 64x64 images of circles and squares with their masks (segmentation)",
    "texts": "600 short positive or negative sentences (text classification)",
}

SEED = 0


def make_sample(name: str, folder: Path) -> Path:
    """Write the sample `name` into `folder`; return the path to give `read_source`.

    The sample is written into a temporary folder beside `folder` and renamed into place, so
    `folder` either holds the whole sample or does not exist. An existing `folder` is refused
    rather than replaced.
    """
    if name not in _WRITERS:
        raise ValueError(
            f"Received an unknown sample name, expected one of {', '.join(SAMPLES)}. "
            f"Received: name={name!r}"
        )
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(f"{folder}: already exists; remove it or choose another folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        entry = _WRITERS[name](staging)
        if folder.exists():
            folder.rmdir()  # empty, checked above; rename cannot replace a folder otherwise
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder / entry


# Images


def _digits(folder: Path) -> str:
    """One PNG per digit in <folder>/<label>/; returns the folder's entry ('.')."""
    _write_digit_images(folder)
    return "."


def _digits_csv(folder: Path) -> str:
    rows = _write_digit_images(folder / "images")
    frame = pd.DataFrame(
        [(f"images/{path}", label) for path, label in rows], columns=["image", "label"]
    )
    frame.to_csv(folder / "digits.csv", index=False)
    return "digits.csv"


def _write_digit_images(folder: Path) -> list[tuple[str, int]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # scikit-learn's digits hold 0..16 per pixel.
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    rows = []
    for index, (image, label) in enumerate(zip(pixels, digits.target, strict=True)):
        relative = f"{label}/{index:04d}.png"
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / relative)
        rows.append((relative, int(label)))
    return rows


def _shapes(folder: Path, count: int = 200, size: int = 64) -> str:
    """Images of one to three circles or squares on a noisy background, and masks whose pixels
    are 0 (background), 1 (circle) or 2 (square)."""
    rng = np.random.default_rng(SEED)
    rows, cols = np.mgrid[0:size, 0:size]
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for index in range(count):
        image = rng.normal(40, 12, (size, size, 3))
        mask = np.zeros((size, size), dtype=np.uint8)
        for _ in range(rng.integers(1, 4)):
            radius = rng.integers(6, 14)
            center_row, center_col = rng.integers(radius, size - radius, 2)
            if rng.random() < 0.5:
                inside = (rows - center_row) ** 2 + (cols - center_col) ** 2 <= radius**2
                mask[inside] = 1
            else:
                inside = (abs(rows - center_row) <= radius) & (abs(cols - center_col) <= radius)
                mask[inside] = 2
            image[inside] = rng.integers(90, 256, 3)
        image = np.clip(image, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / "images" / f"{index:04d}.png")
        Image.fromarray(mask).save(folder / "masks" / f"{index:04d}.png")
    return "."


# Tables


def _sklearn_table(loader_name: str, file: str, **options) -> Callable[[Path], str]:
    def write(folder: Path) -> str:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)(**options)
        frame = pd.DataFrame(bunch.data, columns=[_column_name(n) for n in bunch.feature_names])
        names = getattr(bunch, "target_names", None)
        frame["target"] = bunch.target if names is None else np.asarray(names)[bunch.target]
        frame.to_csv(folder / file, index=False)
        return file

    return write


def _column_name(feature: str) -> str:
    """'sepal length (cm)' -> 'sepal_length_cm': names that code and Keras inputs accept."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", feature).strip("_").lower()


def _timeseries(folder: Path, steps: int = 1000) -> str:
    rng = np.random.default_rng(SEED)
    t = np.arange(steps)
    trend = 10 + 0.02 * t
    seasonality = 3 * np.sin(2 * np.pi * t / 50) + np.sin(2 * np.pi * t / 7)
    value = trend + seasonality + rng.normal(0, 0.5, steps)
    pd.DataFrame({"t": t, "value": value.round(4)}).to_csv(folder / "timeseries.csv", index=False)
    return "timeseries.csv"


_SUBJECTS = [
    "the film",
    "the food",
    "this phone",
    "the hotel",
    "the book",
    "our trip",
    "the service",
    "the game",
    "this song",
    "the class",
    "the show",
    "my new chair",
]
_POSITIVE = [
    "great",
    "wonderful",
    "delightful",
    "excellent",
    "lovely",
    "brilliant",
    "fantastic",
    "charming",
    "superb",
    "pleasant",
]
_NEGATIVE = [
    "awful",
    "terrible",
    "boring",
    "dreadful",
    "disappointing",
    "poor",
    "annoying",
    "horrible",
    "dull",
    "painful",
]
_INTENSIFIERS = ["", "really ", "truly ", "quite ", "very ", "simply "]
_TEMPLATES = [
    "{subject} was {intensifier}{word}.",
    "I found {subject} {intensifier}{word}.",
    "Honestly, {subject} is {intensifier}{word}!",
    "What a {intensifier}{word} experience {subject} turned out to be.",
]


def _texts(folder: Path, count: int = 600) -> str:
    rng = np.random.default_rng(SEED)
    rows = []
    for index in range(count):
        label = "positive" if index % 2 == 0 else "negative"
        words = _POSITIVE if label == "positive" else _NEGATIVE
        sentence = str(rng.choice(_TEMPLATES)).format(
            subject=rng.choice(_SUBJECTS),
            intensifier=rng.choice(_INTENSIFIERS),
            word=rng.choice(words),
        )
        rows.append((sentence[0].upper() + sentence[1:], label))
    order = rng.permutation(count)
    frame = pd.DataFrame(rows, columns=["text", "label"]).iloc[order]
    frame.to_csv(folder / "texts.csv", index=False)
    return "texts.csv"


_WRITERS: dict[str, Callable[[Path], str]] = {
    "digits": _digits,
    "digits_csv": _digits_csv,
    "iris": _sklearn_table("load_iris", "iris.csv"),
    "wine": _sklearn_table("load_wine", "wine.csv"),
    "breast_cancer": _sklearn_table("load_breast_cancer", "breast_cancer.csv"),
    "diabetes": _sklearn_table("load_diabetes", "diabetes.csv", scaled=False),
    "timeseries": _timeseries,
    "shapes": _shapes,
    "texts": _texts,
}
