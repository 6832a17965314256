"""Reading a data set from disk into a `Source`.

A source is a table (CSV, TSV or Parquet) whose columns hold numbers, categories, text or paths to
images and masks relative to the table's folder; a folder of images with one sub-folder per
class; a folder holding `images/` and `masks/` with the same file names (segmentation); or a NumPy
`.npz` file of arrays by name.

Everything read is checked on the way in. A fault raises `DataError`, one line naming the file
and, where known, the row and column. Rows count from 1 and do not include the header. Tables
and archives are read as exported projects read them (app.runtime.tables); this module adds
folders of images, the checks of every image a table names, and notes of what reading decided
(the encoding of a table that is not UTF-8, the names given to columns whose header repeats).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image

from app.runtime.errors import DataError
from app.runtime.rows import Rows, read_rows, resolve_inside
from app.runtime.tables import TABLE_SUFFIXES, csv_header, read_table, table_encoding

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SOURCE_KINDS = ("table", "image_folder", "segmentation", "npz")

# Files that operating systems drop into folders of images; they are not part of the data.
_SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini"})


@dataclass
class Source(Rows):
    """A data set as read from disk: the rows preprocessing reads, and the files it is made of.

    `frame` holds one row per sample: a table's columns; for an image folder the columns
    `image` (path relative to `root`) and `label`; for segmentation `image` and `mask`; for an
    npz file only an index, the samples being the first axis of `arrays`. `path` is the file or
    folder given to read_source, for re-reading it whole; `files` are what a copy of the data
    set copies; `encoding` is a CSV's or TSV's text encoding, and `notes` say in sentences what
    reading decided.
    """

    files: list[Path] = field(default_factory=list)
    encoding: str | None = None
    notes: list[str] = field(default_factory=list)


def read_source(path: str | Path, max_rows: int | None = None) -> Source:
    """Read and check the data set at `path`, finding its kind from what the path is.

    Args:
        path: a `.csv`, `.tsv`, `.parquet` or `.npz` file, or a folder holding one sub-folder of
            images per class, or the folders `images/` and `masks/`.
        max_rows: for tables, read only the first `max_rows` rows (the source is then marked
            `sampled` if the table has more). Folders and npz files are always read whole.
    """
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
        raise ValueError(
            "Received an invalid value for `max_rows`, expected a positive integer or None. "
            f"Received: max_rows={max_rows!r}"
        )
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_folder(path)
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return _read_table(path, max_rows)
    if suffix == ".npz":
        return _read_npz(path)
    raise DataError(
        f"{path}: unsupported file type '{suffix}'; expected a folder or a "
        f"{', '.join(TABLE_SUFFIXES)} or .npz file"
    )


def looks_like_image_paths(values: pd.Series) -> bool:
    """Whether most of a column's values are file names ending with an image suffix."""
    present = values.dropna()
    if present.empty or pd.api.types.is_numeric_dtype(values):
        return False
    sample = present.iloc[:1000].astype(str).str.lower()
    return bool(sample.str.endswith(IMAGE_SUFFIXES).mean() > 0.5)


def check_image_column(source: Source, column: str) -> list[Path]:
    """Check that every path in `column` is an image inside the source's folder; return them."""
    return _check_image_column(source.frame, column, source.root, source.path or source.root)


# Tables


def _read_table(path: Path, max_rows: int | None) -> Source:
    frame, sampled = read_table(path, max_rows)
    root = path.resolve().parent
    files = [path.resolve()]
    for column in frame.columns:
        if looks_like_image_paths(frame[column]):
            files.extend(_check_image_column(frame, column, root, path))
    files = list(dict.fromkeys(files))  # an image used by several rows is copied once
    encoding = table_encoding(path)
    notes = []
    if encoding not in (None, "utf-8"):
        notes.append(f"{path.name} is not UTF-8: read as {encoding} text (detected).")
    if encoding is not None:
        notes += _repeated_names(csv_header(path), [str(c) for c in frame.columns])
    return Source("table", root, frame, files=files, sampled=sampled, path=path,
                  encoding=encoding, notes=notes)  # fmt: skip


def _repeated_names(header: list[str], columns: list[str]) -> list[str]:
    """A note per name the header repeats, saying what pandas named the columns (a, a.1)."""
    notes = []
    for name, count in Counter(header).items():
        if count > 1:
            named = [new for old, new in zip(header, columns, strict=False) if old == name]
            notes.append(
                f"The header repeats the column name '{name}' ({count} times): the columns "
                f"are named {', '.join(repr(n) for n in named)}."
            )
    return notes


def _check_image_column(frame: pd.DataFrame, column: str, root: Path, file: Path) -> list[Path]:
    checked: dict[str, Path] = {}
    for position, value in enumerate(frame[column].tolist()):
        if _is_missing(value):
            continue
        where = f"{file}, row {position + 1}, column '{column}'"
        if not isinstance(value, str):
            raise DataError(f"{where}: expected a path to an image, found {value!r}")
        if value not in checked:
            image = resolve_inside(root, value, where)
            if not image.is_file():
                raise DataError(f"{where}: image '{value}' not found (looked for {image})")
            _check_image(image, where)
            checked[value] = image
    return list(checked.values())


def _check_image(image: Path, where: str) -> None:
    try:
        with Image.open(image) as opened:
            opened.verify()
    # PIL reports broken files with many exception types (OSError, SyntaxError, struct.error...).
    except Exception as error:
        raise DataError(f"{where}: {image} is not a readable image ({error})") from error


def _is_missing(value: object) -> bool:
    if isinstance(value, str):
        return value == ""
    return bool(pd.isna(value))


# Folders of images


def _read_folder(root: Path) -> Source:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if {"images", "masks"} <= {p.name for p in folders}:
        return _read_segmentation(root)
    if not folders:
        raise DataError(
            f"{root}: expected one sub-folder of images per class, or the folders images/ and "
            "masks/; found no sub-folders"
        )
    for stray in root.iterdir():
        if stray.is_file() and stray.suffix.lower() in IMAGE_SUFFIXES:
            raise DataError(f"{stray}: image outside the class sub-folders of {root}")
    rows = []
    files = []
    for folder in folders:
        images = _images_in(folder, root)
        if not images:
            raise DataError(f"{folder}: class folder holds no images")
        rows.extend((image.relative_to(root).as_posix(), folder.name) for image in images)
        files.extend(images)
    for image in files:
        _check_image(image, str(image))
    frame = pd.DataFrame(rows, columns=["image", "label"])
    return Source("image_folder", root.resolve(), frame, files=_resolved(files), path=root)


def _read_segmentation(root: Path) -> Source:
    images_folder, masks_folder = root / "images", root / "masks"
    images = _images_in(images_folder, root)
    masks = _images_in(masks_folder, root)
    if not images:
        raise DataError(f"{images_folder}: holds no images")
    # Masks are matched by file name; failing that by name without suffix (a .jpg photo with a
    # .png mask).
    by_name = {mask.relative_to(masks_folder): mask for mask in masks}
    by_stem = {name.with_suffix(""): mask for name, mask in by_name.items()}
    rows = []
    paired = set()
    for image in images:
        name = image.relative_to(images_folder)
        mask = by_name.get(name) or by_stem.get(name.with_suffix(""))
        if mask is None:
            raise DataError(f"{image}: no mask with the same name in {masks_folder}")
        paired.add(mask)
        rows.append((image.relative_to(root).as_posix(), mask.relative_to(root).as_posix()))
    for mask in masks:
        if mask not in paired:
            raise DataError(f"{mask}: no image with the same name in {images_folder}")
    for file in images + masks:
        _check_image(file, str(file))
    frame = pd.DataFrame(rows, columns=["image", "mask"])
    return Source("segmentation", root.resolve(), frame, files=_resolved(images + masks), path=root)


def _images_in(folder: Path, root: Path) -> list[Path]:
    """The image files under folder, sorted; any other file is an error."""
    images = []
    for file in sorted(folder.rglob("*")):
        relative = file.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or file.is_dir():
            continue
        if file.name.lower() in _SYSTEM_FILES:
            continue
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{file}: not an image; expected one of {', '.join(IMAGE_SUFFIXES)}")
        if not file.resolve().is_relative_to(root.resolve()):
            raise DataError(f"{file}: links outside the dataset folder {root}")
        images.append(file)
    return images


def _resolved(files: list[Path]) -> list[Path]:
    return [file.resolve() for file in files]


# NumPy archives


def _read_npz(path: Path) -> Source:
    rows = read_rows(path)
    return Source(
        "npz", rows.root, rows.frame, arrays=rows.arrays, files=[path.resolve()], path=path
    )
