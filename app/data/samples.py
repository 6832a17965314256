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
from PIL import Image, ImageDraw

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
    "objects": "1,500 32x32 RGB PNGs of circles, rings, triangles, squares, crosses and stars "
    "in random colours, sizes and places on noisy backgrounds, one folder per shape "
    "(image classification, 6 classes)",
    "texts": '2,000 review sentences, positive or negative, plain, negated ("not good") or '
    'mixed ("great but dull"), with typos (text classification)',
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


OBJECT_KINDS = ("circle", "ring", "triangle", "square", "cross", "star")


def _objects(folder: Path, per_kind: int = 250, size: int = 32) -> str:
    """One RGB PNG per object in <folder>/<kind>/: a shape of one of OBJECT_KINDS in a random
    colour, size, position and rotation, over a noisy, textured background crossed by a few
    random lines. The kind is the class; each kind has `per_kind` images."""
    rng = np.random.default_rng(SEED)
    for kind in OBJECT_KINDS:
        (folder / kind).mkdir(parents=True)
    for index in range(per_kind * len(OBJECT_KINDS)):
        kind = OBJECT_KINDS[index % len(OBJECT_KINDS)]
        image = _object_image(kind, size, rng)
        image.save(folder / kind / f"{index:04d}.png")
    return "."


def _object_image(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    # The background: a random colour, a coarse random texture scaled up, pixel noise.
    base = rng.uniform(0, 255, 3)
    coarse = rng.normal(0, 40, (4, 4, 3))
    texture = np.stack([np.asarray(Image.fromarray(coarse[..., c].astype(np.float32))
                                   .resize((size, size), Image.Resampling.BILINEAR))
                        for c in range(3)], axis=-1)  # fmt: skip
    background = np.clip(base + texture, 0, 255).astype(np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(0, 3)):  # distractors: thin lines of any colour
        ends = [float(v) for v in rng.uniform(0, size, 4)]
        draw.line(ends, fill=_colour(rng), width=1)
    # The object: a colour far from the background's, so that it can be seen.
    colour = _colour(rng)
    while np.abs(np.asarray(colour) - base).sum() < 150:
        colour = _colour(rng)
    radius = float(rng.uniform(size * 0.15, size * 0.35))
    center = rng.uniform(radius, size - radius, 2)
    _draw_object(draw, kind, (float(center[0]), float(center[1])), radius, colour, rng)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 18, (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    red, green, blue = (int(v) for v in rng.integers(0, 256, 3))
    return red, green, blue


def _draw_object(draw, kind, center, radius, colour, rng) -> None:
    x, y = center
    angle = float(rng.uniform(0, 360))
    if kind == "circle":
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    elif kind == "ring":
        width = max(2, round(radius / 3))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=colour,
                     width=width)  # fmt: skip
    elif kind in ("triangle", "square"):
        sides = 3 if kind == "triangle" else 4
        draw.regular_polygon((x, y, radius), sides, rotation=angle, fill=colour)
    elif kind == "cross":
        width = max(2, round(radius / 2.5))
        for turn in (0.0, 90.0):
            theta = np.deg2rad(angle + turn)
            dx, dy = radius * np.cos(theta), radius * np.sin(theta)
            draw.line((x - dx, y - dy, x + dx, y + dy), fill=colour, width=width)
    else:  # a five-pointed star: outer and inner corners alternate
        theta = np.deg2rad(angle) + np.arange(10) * np.pi / 5
        reach = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
        points = list(zip(x + reach * np.cos(theta), y + reach * np.sin(theta), strict=True))
        draw.polygon([(float(a), float(b)) for a, b in points], fill=colour)


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


# Texts. A review's verdict is told four ways: plainly ("the plot was superb"), negated ("the
# plot was not superb": negative), mixed ("the acting was superb but the plot was dull": the
# clause after "but" is the verdict) and mixed the other way round ("the plot was dull, although
# the acting was superb": the clause before "although"). A bag of words sees the same words in
# "superb but dull" as in "dull but superb", and "not" next to either; a model that reads word
# order can tell them apart. Typos and filler words are the noise.
_SUBJECTS = (
    "the film", "the food", "this phone", "the hotel", "the book", "our trip", "the service",
    "the game", "this song", "the class", "the show", "my new chair", "the acting", "the plot",
    "the battery", "the staff", "the music", "the ending", "the screen", "the room",
    "the price", "the soundtrack", "the dialogue", "the camera", "the delivery", "the menu",
)  # fmt: skip
_POSITIVE = (
    "great", "wonderful", "delightful", "excellent", "lovely", "brilliant", "fantastic",
    "charming", "superb", "pleasant", "impressive", "enjoyable", "solid", "gripping",
    "beautiful", "clever", "reliable", "friendly", "memorable", "satisfying",
)  # fmt: skip
_NEGATIVE = (
    "awful", "terrible", "boring", "dreadful", "disappointing", "poor", "annoying",
    "horrible", "dull", "painful", "clumsy", "bland", "sloppy", "tedious", "weak",
    "forgettable", "rude", "broken", "mediocre", "frustrating",
)  # fmt: skip
_INTENSIFIERS = ("", "", "really ", "truly ", "quite ", "very ", "simply ", "rather ")
_FILLERS = ("", "", "", "honestly, ", "well, ", "overall, ", "to be fair, ", "in the end, ")
_PLAIN = ("{s} was {i}{w}", "I found {s} {i}{w}", "{s} is {i}{w}", "{s} turned out {i}{w}")
_NEGATED = ("{s} was not {w}", "{s} was never {w}", "I did not find {s} {w}",
            "{s} is not at all {w}", "{s} was hardly {w}")  # fmt: skip
_TEXT_FORMS = ("plain", "negated", "but", "although")


def _texts(folder: Path, count: int = 2000) -> str:
    """`count` review sentences labelled positive or negative, half each, every form (plain,
    negated, mixed with "but", mixed with "although") a quarter of them."""
    rng = np.random.default_rng(SEED)
    rows = []
    for index in range(count):
        positive = index % 2 == 0
        form = _TEXT_FORMS[(index // 2) % len(_TEXT_FORMS)]
        if form == "plain":
            sentence = _clause(rng, positive, negated=False)
        elif form == "negated":
            sentence = _clause(rng, positive, negated=True)
        else:
            verdict = _clause(rng, positive, negated=bool(rng.random() < 0.25))
            # The other clause means the opposite.
            aside = _clause(rng, not positive, negated=bool(rng.random() < 0.25))
            sentence = (f"{aside} but {verdict}" if form == "but"
                        else f"{verdict}, although {aside}")  # fmt: skip
        sentence = _with_typos(str(rng.choice(_FILLERS)) + sentence, rng)
        rows.append(
            (sentence[0].upper() + sentence[1:] + ".", "positive" if positive else "negative")
        )
    order = rng.permutation(count)
    frame = pd.DataFrame(rows, columns=["text", "label"]).iloc[order]
    frame.to_csv(folder / "texts.csv", index=False)
    return "texts.csv"


def _clause(rng: np.random.Generator, positive: bool, negated: bool) -> str:
    """A clause that means `positive` or not: plain, in words of that sentiment; negated, in
    words of the other."""
    form = str(rng.choice(_NEGATED if negated else _PLAIN))
    word = str(rng.choice(_POSITIVE if positive != negated else _NEGATIVE))
    intensifier = "" if negated else str(rng.choice(_INTENSIFIERS))
    return form.format(s=rng.choice(_SUBJECTS), i=intensifier, w=word)


def _with_typos(sentence: str, rng: np.random.Generator, rate: float = 0.04) -> str:
    """Each word of four letters or more, at `rate`, loses a letter or swaps two."""
    words = sentence.split(" ")
    for k, word in enumerate(words):
        if len(word) >= 4 and word.isalpha() and rng.random() < rate:
            at = int(rng.integers(1, len(word) - 1))
            if rng.random() < 0.5:
                words[k] = word[:at] + word[at + 1 :]
            else:
                words[k] = word[: at - 1] + word[at] + word[at - 1] + word[at + 1 :]
    return " ".join(words)


_WRITERS: dict[str, Callable[[Path], str]] = {
    "digits": _digits,
    "digits_csv": _digits_csv,
    "iris": _sklearn_table("load_iris", "iris.csv"),
    "wine": _sklearn_table("load_wine", "wine.csv"),
    "breast_cancer": _sklearn_table("load_breast_cancer", "breast_cancer.csv"),
    "diabetes": _sklearn_table("load_diabetes", "diabetes.csv", scaled=False),
    "timeseries": _timeseries,
    "shapes": _shapes,
    "objects": _objects,
    "texts": _texts,
}
