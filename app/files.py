"""Writing files so that a reader, or a crash, never sees half of one, and so that a write never
replaces anything but a regular file: a link, a folder, a FIFO or a device at the target (say
`-o /dev/null`, run as root) is refused, not renamed over."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to path through a temporary file in the same folder and a rename."""
    return atomic_write_bytes(path, text.encode("utf-8"))


class TargetError(ValueError):
    """A write target that is not a regular file or a new path."""


def check_target(path: str | os.PathLike, kind: str = "file") -> None:
    """Refuse, in one line, a target that exists and is not a regular file (or with kind
    "folder", not a real folder): it is never replaced."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    wanted = stat.S_ISDIR(mode) if kind == "folder" else stat.S_ISREG(mode)
    if not wanted:
        what = _kind_of(mode)
        raise TargetError(f"{path}: is {what}, not a regular {kind}; refusing to replace it")


def _kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write data to path through a temporary file in the same folder and a rename; refuses a
    target that is not a regular file (TargetError)."""
    path = Path(path)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def swap_in(staging: Path, final: Path) -> None:
    """Replace the folder `final` with `staging`, so that a reader sees the old folder or the
    new one, whole: the two are exchanged in one step (Linux renameat2), then the old one is
    removed. Where that is not possible the old one is renamed away first, which leaves a
    moment without `final`."""
    check_target(final, kind="folder")
    if final.exists() and _exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)  # now the old folder
        return
    trash = None
    if final.exists():
        trash = final.with_name(f".old-{final.name}-{int(time.time() * 1000)}")
        final.rename(trash)
    staging.rename(final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_cwd, exchange = -100, 2  # AT_FDCWD, RENAME_EXCHANGE
    done = renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), exchange)
    return done == 0


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (made if missing) across processes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Archive limits: generous for real data, settable by the user.
MAX_UNPACKED_BYTES = "LAYERFLOW_MAX_UNPACKED_BYTES"  # default 20 GiB in all
MAX_UNPACK_RATIO = "LAYERFLOW_MAX_UNPACK_RATIO"  # default 200 times a member's packed size
_DEFAULT_BYTES, _DEFAULT_RATIO = 20 * 2**30, 200.0
_RATIO_FROM = 2**20  # members smaller than this unpack to little whatever their ratio


class ArchiveError(ValueError):
    """An archive refused before unpacking: too large unpacked, or packed too tightly."""


def archive_limits() -> tuple[int, float]:
    """The unpacked-size and ratio limits, from the environment or the defaults."""
    try:
        size = int(float(os.environ.get(MAX_UNPACKED_BYTES) or _DEFAULT_BYTES))
        ratio = float(os.environ.get(MAX_UNPACK_RATIO) or _DEFAULT_RATIO)
    except ValueError:
        raise ArchiveError(f"{MAX_UNPACKED_BYTES} and {MAX_UNPACK_RATIO} must be numbers") from None
    return size, ratio


def check_archive(path: str | os.PathLike) -> list[zipfile.ZipInfo]:
    """The members of the zip archive `path` (a .zip, a .keras model), once their declared sizes
    are within the limits; ArchiveError naming the file and the limit otherwise. Nothing is
    unpacked. A decompression bomb (1 MB that unpacks to gigabytes) is refused here."""
    max_bytes, max_ratio = archive_limits()
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise ArchiveError(f"{path}: not a readable zip archive ({err})") from None
    total = sum(m.file_size for m in members)
    if total > max_bytes:
        raise ArchiveError(
            f"{path}: unpacks to {total:,} bytes, more than the limit of {max_bytes:,} "
            f"(set {MAX_UNPACKED_BYTES} to allow more)"
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > _RATIO_FROM and ratio > max_ratio:
            raise ArchiveError(
                f"{path}: member {member.filename!r} unpacks {ratio:,.0f} times its packed size "
                f"({member.file_size:,} bytes), more than the limit of {max_ratio:,.0f} "
                f"(set {MAX_UNPACK_RATIO} to allow more)"
            )
    return members
