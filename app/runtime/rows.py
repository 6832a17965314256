"""The rows preprocessing reads: a data set's table or arrays (`Rows`), and some of its rows
(`Part`) as fitting and transforming take them, a chunk at a time for a table too large to hold.

LayerFlow's sources (app.data.sources.Source) are `Rows`; an exported project reads its data
with `read_rows`. Row numbers count from 0 in code and from 1 in messages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd

from .errors import DataError
from .tables import CHUNK_ROWS, TABLE_SUFFIXES, iter_table_chunks, read_npz, read_table


@dataclass
class Rows:
    """A data set's rows: a table's columns (`frame`), or an npz file's arrays (`arrays`, one
    sample per first index, `frame` then holding only an index).

    Args:
        kind: "table", "npz", or for a folder of images "image_folder" or "segmentation" (whose
            `frame` lists the images' paths).
        root: the folder that paths in the table (images, masks) are relative to.
        sampled: `frame` holds only the table's first rows; fitting and transforming stream
            the whole table from `path`.
        path: the file or folder read, for messages and for reading it again.
    """

    kind: str
    root: Path
    frame: pd.DataFrame
    arrays: dict[str, np.ndarray] | None = None
    sampled: bool = False
    path: Path | None = None


def read_rows(path: str | Path) -> Rows:
    """A CSV, TSV or Parquet table, or an .npz archive of arrays, read whole and checked (see
    app.runtime.tables); paths in a table are relative to the table's folder."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        frame, _ = read_table(path)
        return Rows("table", path.resolve().parent, frame, path=path)
    if suffix == ".npz":
        arrays = read_npz(path)
        frame = pd.DataFrame(index=pd.RangeIndex(len(next(iter(arrays.values())))))
        return Rows("npz", path.resolve().parent, frame, arrays=arrays, path=path)
    raise DataError(
        f"{path}: unsupported file type '{suffix}'; expected a "
        f"{', '.join(TABLE_SUFFIXES)} or .npz file"
    )


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


@dataclass
class Part:
    """Some rows of a data set: their table columns, their npz arrays and their row numbers."""

    frame: pd.DataFrame
    arrays: dict[str, np.ndarray]
    positions: np.ndarray  # row numbers in the data set, from 0
    where: str  # the file or folder, for messages
    known: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.positions)

    def values(self, column: str) -> pd.Series | np.ndarray:
        if column in self.arrays:
            return self.arrays[column]
        if column in self.frame.columns:
            return self.frame[column]
        raise DataError(
            f"{self.where}: column '{column}' of the preprocessing settings is not in the data; "
            f"columns: {', '.join(map(str, self.known))}"
        )

    def row(self, position: int) -> str:
        return f"{self.where}, row {int(self.positions[position]) + 1}"


def parts(rows: Rows, index: Sequence[int], chunksize: int = CHUNK_ROWS) -> Iterator[Part]:
    """The rows `index` of a data set, in that order; in several parts for a sampled table
    (which is streamed from disk, in file order)."""
    where = str(rows.path or rows.root)
    known = list(rows.arrays or rows.frame.columns)
    positions = np.asarray(index, dtype=np.int64).reshape(-1)
    if rows.kind == "table" and rows.sampled and rows.path is not None:
        wanted = np.unique(positions)
        offset = 0
        for chunk in iter_table_chunks(rows.path, chunksize):
            inside = wanted[(wanted >= offset) & (wanted < offset + len(chunk))]
            if len(inside):
                frame = chunk.iloc[inside - offset].reset_index(drop=True)
                yield Part(frame, {}, inside, where, known)
            offset += len(chunk)
        if len(wanted) and wanted[-1] >= offset:
            raise ValueError(_out_of_range(int(wanted[-1]), offset))
        return
    total = len(rows.frame)
    if len(positions) and (positions.min() < 0 or positions.max() >= total):
        bad = positions[(positions < 0) | (positions >= total)][0]
        raise ValueError(_out_of_range(int(bad), total))
    frame = rows.frame.iloc[positions].reset_index(drop=True)
    arrays = {name: array[positions] for name, array in (rows.arrays or {}).items()}
    yield Part(frame, arrays, positions, where, known)


def _out_of_range(position: int, total: int) -> str:
    return (
        f"Received an invalid value for `index`: row {position} is out of range for a source "
        f"of {total} rows (rows count from 0)"
    )
