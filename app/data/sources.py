"""Reading a data set from disk into a `Source`.

A source is a table (CSV, TSV or Parquet) whose columns hold numbers, categories, text or paths to
images and masks relative to the table's folder; a folder of images with one sub-folder per
class; a folder holding `images/` and `masks/` with the same file names (segmentation); or a NumPy
`.npz` file of arrays by name.

Everything read is checked on the way in. A fault raises `DataError`, one line naming the file
and, where known, the row and column. Rows count from 1 and do not include the header.
"""

from __future__ import annotations

import codecs
import zipfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd
from PIL import Image

from app.runtime.errors import DataError  # noqa: F401  (raised here; the runtime owns it)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
SOURCE_KINDS = ("table", "image_folder", "segmentation", "npz")

# Files that operating systems drop into folders of images; they are not part of the data.
_SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini"})


@dataclass
class Source:
    """A data set as read from disk.

    `frame` holds one row per sample: a table's columns; for an image folder the columns
    `image` (path relative to `root`) and `label`; for segmentation `image` and `mask`; for an
    npz file only an index, the samples being the first axis of `arrays`.
    """

    kind: str
    root: Path
    frame: pd.DataFrame
    arrays: dict[str, np.ndarray] | None = None
    files: list[Path] = field(default_factory=list)
    sampled: bool = False
    path: Path | None = None  # the file or folder given to read_source, for re-reading it whole


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


def iter_table_chunks(path: Path, chunksize: int = 100_000) -> Iterator[pd.DataFrame]:
    """Stream a CSV, TSV or Parquet table in chunks of at most `chunksize` rows, checking each.

    A column holds numbers or words, never both: the first chunk in which a column has values
    decides which, and a later value of the other sort is reported with its row. Infinite
    numbers are refused; missing values are kept (as NaN) for the profile to count.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() == ".parquet":
        return _parquet_chunks(path, chunksize)
    return _csv_chunks(path, chunksize)


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


def resolve_inside(root: Path, relative: str, where: str) -> Path:
    """root/relative, refusing absolute paths and paths that leave root (through .. or links)."""
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).anchor:
        raise DataError(
            f"{where}: '{relative}' is an absolute path; paths must be relative to {root}"
        )
    full = (root / relative.replace("\\", "/")).resolve()
    if not full.is_relative_to(root.resolve()):
        raise DataError(f"{where}: '{relative}' points outside the dataset folder {root}")
    return full


# Tables


def _read_table(path: Path, max_rows: int | None) -> Source:
    # One row past max_rows tells whether the table goes on, i.e. whether this is a sample.
    chunksize = 100_000 if max_rows is None else min(100_000, max_rows + 1)
    chunks: list[pd.DataFrame] = []
    count = 0
    with closing(iter_table_chunks(path, chunksize)) as chunk_reader:
        for chunk in chunk_reader:
            chunks.append(chunk)
            count += len(chunk)
            if max_rows is not None and count > max_rows:
                break
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    sampled = max_rows is not None and count > max_rows
    frame = frame.iloc[:max_rows].reset_index(drop=True)
    root = path.resolve().parent
    files = [path.resolve()]
    for column in frame.columns:
        if looks_like_image_paths(frame[column]):
            files.extend(_check_image_column(frame, column, root, path))
    files = list(dict.fromkeys(files))  # an image used by several rows is copied once
    return Source("table", root, frame, files=files, sampled=sampled, path=path)


def _csv_chunks(path: Path, chunksize: int) -> Iterator[pd.DataFrame]:
    options = {
        "sep": "\t" if path.suffix.lower() == ".tsv" else ",",
        "chunksize": chunksize,
        "encoding": "utf-8",
    }
    kinds: dict[str, str | None] = {}
    with _reading(path), pd.read_csv(path, **options) as reader:
        head = next(reader, None)
    if head is None or head.empty:
        raise DataError(f"{path}: the file has a header but no rows")
    _check_chunk(head, kinds, path, offset=0)
    # Read again with the word columns pinned to strings, so that a later chunk of a word column
    # that happens to hold only digits keeps them as written.
    text = {column: "str" for column, kind in kinds.items() if kind == "text"}
    offset = 0
    with _reading(path), pd.read_csv(path, dtype=text, **options) as reader:
        for chunk in reader:
            yield _check_chunk(chunk, kinds, path, offset)
            offset += len(chunk)


def _parquet_chunks(path: Path, chunksize: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error})") from error
    if parquet.metadata.num_rows == 0:
        raise DataError(f"{path}: the table has columns but no rows")
    kinds: dict[str, str | None] = {}
    offset = 0
    with closing(parquet):
        for batch in parquet.iter_batches(batch_size=chunksize):
            chunk = batch.to_pandas()
            yield _check_chunk(chunk, kinds, path, offset)
            offset += len(chunk)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn pandas' reading errors into DataErrors naming the file."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise DataError(_not_utf8_message(path, error)) from error
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{path}: the file is empty") from error
    except pd.errors.ParserError as error:
        raise DataError(f"{path}: {error}") from error


def _not_utf8_message(path: Path, error: UnicodeDecodeError) -> str:
    # pandas reports the position inside its own buffer; find the real one in the file.
    found = _first_invalid_utf8(path)
    if found is None:
        return f"{path}: not UTF-8 text ({error}); save the file as UTF-8"
    offset, line, byte = found
    return (
        f"{path}: not UTF-8 text: byte 0x{byte:02x} at byte offset {offset} (line {line}) "
        "cannot be decoded; save the file as UTF-8"
    )


def _first_invalid_utf8(path: Path) -> tuple[int, int, int] | None:
    """(byte offset, line, byte) of the first byte that is not valid UTF-8, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    newlines = 0
    with path.open("rb") as handle:
        while True:
            block = handle.read(1 << 20)
            pending = decoder.getstate()[0]  # an unfinished character from the last block
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                start = max(0, error.start - len(pending))
                data = pending + block
                line = newlines + block[:start].count(b"\n") + 1
                return offset - len(pending) + error.start, line, data[error.start]
            if not block:
                return None
            offset += len(block)
            newlines += block.count(b"\n")


def _check_chunk(
    chunk: pd.DataFrame, kinds: dict[str, str | None], path: Path, offset: int
) -> pd.DataFrame:
    """Check a chunk's columns against what earlier chunks held; return it with numbers parsed."""
    for column in chunk.columns:
        values = chunk[column]
        kind = kinds.get(column)
        if kind is None:
            kind = kinds[column] = _column_kind(values)
        if kind == "number":
            chunk[column] = _numbers(values, path, column, offset)
    return chunk


def _column_kind(values: pd.Series) -> str | None:
    """ "number" or "text" for a column's first values, None while it has none."""
    present = values.dropna()
    if present.empty:
        return None
    if pd.api.types.is_numeric_dtype(values):
        return "number"
    if not pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values):
        return "text"  # dates, categories and the like: neither numbers nor free words
    share = pd.to_numeric(present, errors="coerce").notna().mean()
    # A column that is mostly numbers is a numeric column with a few bad values; one that is
    # mostly words may well mention a number now and then.
    return "number" if share > 0.5 else "text"


def as_numbers(values: pd.Series, present: pd.Series | None = None) -> tuple[pd.Series, int | None]:
    """values as numbers, and the position of the first present value that is not a number
    (None when all are). present: which values count (default: those that are not NaN)."""
    if pd.api.types.is_numeric_dtype(values):
        return values, None
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & (values.notna() if present is None else present)).to_numpy()
    return numbers, int(bad.argmax()) if bad.any() else None


def _numbers(values: pd.Series, path: Path, column: str, offset: int) -> pd.Series:
    if not pd.api.types.is_numeric_dtype(values):
        numbers, position = as_numbers(values)
        if position is not None:
            raise DataError(
                f"{path}, row {offset + position + 1}, column '{column}': "
                f"'{values.iloc[position]}' is not a number, but the column's other values are; "
                "a column holds numbers or words, not both"
            )
        values = numbers
    if pd.api.types.is_float_dtype(values):
        infinite = np.isinf(values.to_numpy(dtype=float))
        if infinite.any():
            position = int(infinite.argmax())
            raise DataError(
                f"{path}, row {offset + position + 1}, column '{column}': infinite value "
                f"({values.iloc[position]}); use a finite number, or leave the cell empty"
            )
    return values


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
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a NumPy .npz archive")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for name in archive.files:
                try:
                    arrays[name] = archive[name]
                except ValueError as error:  # object arrays can only be loaded by unpickling
                    raise DataError(
                        f"{path}, array '{name}': holds Python objects, which would need pickle; "
                        "save numbers or strings"
                    ) from error
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: not a readable .npz archive ({error})") from error
    if not arrays:
        raise DataError(f"{path}: holds no arrays")
    for name, array in arrays.items():
        if array.ndim == 0:
            raise DataError(
                f"{path}, array '{name}': a single value; every array needs one entry per sample "
                "along its first axis"
            )
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        counts = ", ".join(f"'{name}' has {length}" for name, length in lengths.items())
        raise DataError(f"{path}: arrays differ in their number of samples: {counts}")
    samples = next(iter(lengths.values()))
    if samples == 0:
        raise DataError(f"{path}: the arrays hold no samples")
    for name, array in arrays.items():
        if np.issubdtype(array.dtype, np.floating):
            infinite = np.isinf(array.reshape(samples, -1)).any(axis=1)
            if infinite.any():
                raise DataError(
                    f"{path}, array '{name}', index {int(infinite.argmax())}: infinite value; "
                    "use finite numbers (NaN marks a missing value)"
                )
    frame = pd.DataFrame(index=pd.RangeIndex(samples))
    return Source(
        "npz", path.resolve().parent, frame, arrays=arrays, files=[path.resolve()], path=path
    )
