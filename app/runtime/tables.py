"""Reading the files a data set is kept in: tables (CSV, TSV, Parquet) and NumPy archives.

A table is read in chunks, each checked on the way in: a column holds numbers or words, never
both; infinite numbers are refused; missing values are kept (as NaN). A CSV or TSV is read in
the encoding `table_encoding` finds: UTF-8, or what charset-normalizer detects (a spreadsheet's
cp1252, say); a file no encoding decodes is refused. An `.npz` archive holds
arrays of the same length, one sample per first index. A fault raises `DataError`, one line
naming the file and, where known, the row and column. Rows count from 1 and do not include the
header.
"""

from __future__ import annotations

import codecs
import csv
import functools
import zipfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
CHUNK_ROWS = 100_000
ENCODING_SAMPLE_BYTES = 1 << 20  # what charset-normalizer is shown of a file that is not UTF-8
# cp1252 (what spreadsheets write) is taken when it reads a file nearly as well as the best
# guess: on a short sample, charset-normalizer cannot tell the Western code pages apart.
CP1252_TOLERANCE = 0.25  # "Café ü€" reads 0.17 more chaotic in cp1252 than in cp775


def iter_table_chunks(path: Path, chunksize: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
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


def read_table(path: Path, max_rows: int | None = None) -> tuple[pd.DataFrame, bool]:
    """A table's rows (the first `max_rows` only, if given) and whether it has more."""
    # One row past max_rows tells whether the table goes on, i.e. whether this is a sample.
    chunksize = CHUNK_ROWS if max_rows is None else min(CHUNK_ROWS, max_rows + 1)
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
    return frame.iloc[:max_rows].reset_index(drop=True), sampled


def table_encoding(path: Path) -> str | None:
    """The text encoding of a CSV or TSV (None for Parquet): "utf-8" when every byte decodes as
    UTF-8, else the one charset-normalizer detects, cp1252 whenever that reads the file about
    as well. A DataError names a file that no encoding decodes."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return None
    stat = path.stat()
    encoding, invalid = _encoding(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if encoding is None:
        offset, line, byte = invalid
        raise DataError(
            f"{path}: not text in any encoding LayerFlow can detect (byte 0x{byte:02x} at byte "
            f"offset {offset}, line {line}); save it as UTF-8 text"
        )
    return encoding


def csv_header(path: Path) -> list[str]:
    """A CSV's or TSV's header as written (pandas renames a repeated name: a, a.1)."""
    path = Path(path)
    encoding = table_encoding(path)
    with path.open(newline="", encoding="utf-8-sig" if encoding == "utf-8" else encoding) as file:
        return next(csv.reader(file, delimiter=_delimiter(path)), [])


def as_numbers(values: pd.Series, present: pd.Series | None = None) -> tuple[pd.Series, int | None]:
    """values as numbers, and the position of the first present value that is not a number
    (None when all are). present: which values count (default: those that are not NaN)."""
    if pd.api.types.is_numeric_dtype(values):
        return values, None
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & (values.notna() if present is None else present)).to_numpy()
    return numbers, int(bad.argmax()) if bad.any() else None


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


@functools.lru_cache(maxsize=64)
def _encoding(path: str, size: int, mtime: int) -> tuple[str | None, tuple[int, int, int] | None]:
    """(encoding, None), or (None, the first byte that is not UTF-8) when none is found. Kept
    per file, size and modification time: a table is read several times while it is added."""
    file = Path(path)
    invalid = _first_invalid_utf8(file)
    if invalid is None:
        return "utf-8", None
    with file.open("rb") as handle:
        sample = handle.read(ENCODING_SAMPLE_BYTES)
        if invalid[0] >= len(sample):  # show the detector the first byte that is not UTF-8
            handle.seek(max(0, invalid[0] - ENCODING_SAMPLE_BYTES // 2))
            sample += b"\n" + handle.read(ENCODING_SAMPLE_BYTES)
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        return None, invalid
    western = from_bytes(sample, cp_isolation=["cp1252"]).best()
    if western is not None and western.chaos <= best.chaos + CP1252_TOLERANCE:
        return "cp1252", None
    return best.encoding, None


def _csv_chunks(path: Path, chunksize: int) -> Iterator[pd.DataFrame]:
    encoding = table_encoding(path)
    options = {"sep": _delimiter(path), "chunksize": chunksize, "encoding": encoding}
    kinds: dict[str, str | None] = {}
    with _reading(path, encoding), pd.read_csv(path, **options) as reader:
        head = next(reader, None)
    if head is None or head.empty:
        raise DataError(f"{path}: the file has a header but no rows")
    _check_chunk(head, kinds, path, offset=0)
    # Read again with the word columns pinned to strings, so that a later chunk of a word column
    # that happens to hold only digits keeps them as written.
    text = {column: "str" for column, kind in kinds.items() if kind == "text"}
    offset = 0
    with _reading(path, encoding), pd.read_csv(path, dtype=text, **options) as reader:
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
def _reading(path: Path, encoding: str | None) -> Iterator[None]:
    """Turn pandas' reading errors into DataErrors naming the file."""
    try:
        yield
    except UnicodeDecodeError as error:
        # The encoding was found before reading: only a file changed since gets here.
        raise DataError(f"{path}: not {encoding} text throughout ({error})") from error
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{path}: the file is empty") from error
    except pd.errors.ParserError as error:
        raise DataError(f"{path}: {error}") from error


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


# NumPy archives


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive by name, checked: no pickled objects, one sample per first
    index and as many in each, no infinite numbers (NaN marks a missing value)."""
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
    return arrays
