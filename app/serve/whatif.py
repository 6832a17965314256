"""What-if questions about one row of a table, answered by predicting rows made from it (the
What-If Tool's ideas; NumPy only, so the pages can ask them of the warm server):

- `occlusions`: the row with one column at a time left missing (a number then stands for its
  train mean, a category for none); a column's part is how much the prediction moves without it;
- `sweep`: the row with one number column set to each of `points` values over its train range
  (a partial-dependence line for this row);
- `nearest_other`: the test row nearest to it that gets another prediction, and what differs;

and about an image or a text: `drawn_image` (a drawing as the image file a model of
digit-like images takes), `occluded_images` (each cell of a grid painted over with the
image's mean colour: where the prediction drops is what it looks at), `probed_image` (brighter
or darker, rotated, noisier: how robust it is), `without_each_word` (each word's part).

A prediction is scored by `score`: the probability of the class the row itself is given, or the
predicted value.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

Row = dict[str, Any]


def score(described: Mapping[str, Any], label: str | None) -> float:
    """One described prediction (protocol.describe) as a number: the probability of `label`,
    or the first predicted value."""
    if label is not None and "probabilities" in described:
        return float(described["probabilities"][label])
    value = described["values"][0]
    return float("nan") if value is None else float(value)


def occlusions(row: Row, columns: Sequence[str], texts: Sequence[str] = ()) -> list[Row]:
    """`row` with each of `columns` left missing in turn: None for a number, "" for a column of
    `texts` (categories and texts)."""
    return [{**row, column: "" if column in texts else None} for column in columns]


def parts(
    base: float, occluded: Sequence[float], columns: Sequence[str]
) -> list[tuple[str, float]]:
    """Each column's part in the score: the score minus the score without it, largest first."""
    found = [(c, base - s) for c, s in zip(columns, occluded, strict=True)]
    return sorted(found, key=lambda item: -abs(item[1]) if np.isfinite(item[1]) else 0)


def sweep(row: Row, column: str, low: float, high: float, points: int = 25) -> list[Row]:
    """`row` with `column` at `points` evenly spaced values from low to high."""
    return [{**row, column: float(v)} for v in np.linspace(low, high, points)]


def nearest_other(
    row: Row,
    rows: Sequence[Row],
    labels: Sequence[Any],
    label: Any,
    scales: Mapping[str, float],
) -> tuple[int, list[str]] | None:
    """The index of the row of `rows` nearest to `row` whose label (its prediction) is not
    `label`, and the columns in which they differ; None when every row gets `label`.

    Distance: numbers in units of `scales` (the train standard deviation), squared and summed;
    any other column counts 1 where it differs. Missing numbers count as no difference."""
    best, best_distance = None, np.inf
    for index, (other, other_label) in enumerate(zip(rows, labels, strict=True)):
        if other_label == label:
            continue
        distance = sum(_gap(row.get(c), other.get(c), scales.get(c)) for c in row)
        if distance < best_distance:
            best, best_distance = index, distance
    if best is None:
        return None
    differing = [c for c in row if _gap(row.get(c), rows[best].get(c), scales.get(c)) > 0]
    return best, differing


def _gap(a: Any, b: Any, scale: float | None) -> float:
    if isinstance(a, int | float) and isinstance(b, int | float):
        if not (np.isfinite(a) and np.isfinite(b)):
            return 0.0
        return ((a - b) / (scale or 1.0)) ** 2
    if a is None or b is None:
        return 0.0
    return float(a != b)


# Images and texts


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _decoded(data: bytes) -> Image.Image:
    """An image file's pixels; ValueError when it is no image."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot be read as an image ({error})") from None
    return image.convert("RGB") if image.mode not in ("L", "RGB") else image


def pixels_of(data: bytes) -> np.ndarray:
    """An image file's pixels, (height, width) or (height, width, 3) uint8; ValueError when it
    is no image."""
    return np.asarray(_decoded(data))


def occluded_images(data: bytes, grid: int = 8) -> tuple[list[bytes], tuple[int, int]]:
    """The image with each cell of a grid x grid split (fewer for a smaller image) painted in
    its mean colour, row by row, as PNG files; and the grid's (rows, columns)."""
    image = _decoded(data)
    pixels = np.asarray(image)
    rows, columns = min(grid, pixels.shape[0]), min(grid, pixels.shape[1])
    mean = pixels.reshape(-1, *pixels.shape[2:]).mean(axis=0).astype(pixels.dtype)
    ys = np.linspace(0, pixels.shape[0], rows + 1).astype(int)
    xs = np.linspace(0, pixels.shape[1], columns + 1).astype(int)
    files = []
    for row in range(rows):
        for column in range(columns):
            covered = pixels.copy()
            covered[ys[row] : ys[row + 1], xs[column] : xs[column + 1]] = mean
            files.append(_png(Image.fromarray(covered)))
    return files, (rows, columns)


def probed_image(
    data: bytes, brightness: float = 1.0, rotation: float = 0.0, noise: float = 0.0, seed: int = 0
) -> bytes:
    """The image brightened (a factor; 1 leaves it), rotated (degrees, counter-clockwise, the
    corners filled black) and with Gaussian pixel noise (its standard deviation, 0..255), as a
    PNG file."""
    image = _decoded(data)
    if brightness != 1:
        image = ImageEnhance.Brightness(image).enhance(brightness)
    if rotation:
        image = image.rotate(rotation, resample=Image.Resampling.BILINEAR)
    if noise:
        pixels = np.asarray(image, dtype=np.float32)
        pixels = pixels + np.random.default_rng(seed).normal(0, noise, pixels.shape)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return _png(image)


def drawn_image(rgba: np.ndarray, size: tuple[int, int] | None = None) -> bytes | None:
    """A drawing on a canvas (RGBA, light strokes over a transparent or black background) as a
    grayscale PNG file, shrunk to `size` (height, width) by averaging (a thin stroke stays
    visible, as it would not under bilinear resizing); None when nothing is drawn."""
    rgba = np.asarray(rgba, dtype=np.float32)
    gray = rgba[..., :3].max(axis=-1) * (rgba[..., 3] / 255)
    if not gray.any():
        return None
    image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8))  # 2-D: mode L
    if size is not None:
        image = image.resize((size[1], size[0]), Image.Resampling.BOX)
    return _png(image)


def without_each_word(text: str) -> tuple[list[str], list[str]]:
    """The text's words (split on white space) and the text without each of them in turn."""
    words = text.split()
    return words, [" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))]
