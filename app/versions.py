"""Versions of data and models, recorded by DVC. The one module that talks to DVC.

A tracked folder (a dataset under data/, a model under models/) gets a `.dvc` file beside it;
each version is the DVC hash of the folder. Every version's `.dvc` content is kept in a
`<folder>.versions.json` index beside it, so any earlier version can be checked out again
from the DVC cache, byte-identical.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from app.files import atomic_write_text


@dataclass(frozen=True)
class Version:
    version: str  # the DVC hash of the folder, e.g. "3f2a...b1.dir"
    created: float
    size: int
    files: int
    note: str = ""

    @property
    def short(self) -> str:
        return self.version.removesuffix(".dir")[:10]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """DVC prints hints for its own command line; ours has its own messages."""
    logger = logging.getLogger("dvc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def ensure_repository(root: Path) -> None:
    """Make root a git + DVC repository if it is not one yet."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / ".git").exists():
        subprocess.run(["git", "init", "-q", str(root)], check=True)
    if not (root / ".dvc").exists():
        from dvc.repo import Repo

        with _quiet():
            Repo.init(str(root))
            Repo(str(root)).config  # noqa: B018 - reading it validates the new config
        with (root / ".dvc" / "config").open("a") as config:
            config.write("[core]\n    analytics = false\n")


def _repo(root: Path):
    from dvc.repo import Repo

    ensure_repository(root)
    return Repo(str(root))


def _index_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".versions.json")


def _dvc_file(folder: Path) -> Path:
    return folder.with_name(folder.name + ".dvc")


def _read_index(folder: Path) -> list[dict]:
    path = _index_path(folder)
    return json.loads(path.read_text()) if path.exists() else []


def record(root: Path, folder: Path, note: str = "") -> Version:
    """Track folder with DVC and record its current content as a version."""
    with _quiet():
        repo = _repo(root)
        repo.add([str(folder)])
    dvc_text = _dvc_file(folder).read_text()
    out = _parse_dvc(dvc_text)
    version = Version(out["md5"], time.time(), int(out.get("size", 0)), int(out.get("nfiles", 1)),
                      note)  # fmt: skip
    index = [v for v in _read_index(folder) if v["version"] != version.version]
    index.append({**asdict(version), "dvc": dvc_text})
    atomic_write_text(_index_path(folder), json.dumps(index, indent=2) + "\n")
    return version


def versions(folder: Path) -> list[Version]:
    """Recorded versions of folder, oldest first."""
    return [
        Version(v["version"], v["created"], v["size"], v["files"], v.get("note", ""))
        for v in _read_index(folder)
    ]


def current(folder: Path) -> str | None:
    """The version the folder's .dvc file points at, if it is tracked."""
    dvc_file = _dvc_file(folder)
    return _parse_dvc(dvc_file.read_text())["md5"] if dvc_file.exists() else None


def restore(root: Path, folder: Path, version: str) -> Version:
    """Check out an earlier version of folder from the DVC cache (a unique prefix is enough)."""
    matches = [v for v in _read_index(folder) if v["version"].startswith(version)]
    if len(matches) != 1:
        known = ", ".join(v["version"][:10] for v in _read_index(folder)) or "none"
        reason = "no version" if not matches else "more than one version"
        raise ValueError(f"{folder.name}: {reason} matches {version!r} (versions: {known})")
    entry = matches[0]
    atomic_write_text(_dvc_file(folder), entry["dvc"])
    with _quiet():
        _repo(root).checkout(targets=[str(_dvc_file(folder))], force=True)
    return Version(entry["version"], entry["created"], entry["size"], entry["files"],
                   entry.get("note", ""))  # fmt: skip


def _parse_dvc(text: str) -> dict:
    """The first output of a .dvc file (a small YAML document DVC writes)."""
    from dvc.utils.serialize import parse_yaml

    outs = (parse_yaml(text, "dvc file") or {}).get("outs") or []
    if not outs or "md5" not in outs[0]:
        raise ValueError("the .dvc file records no output hash")
    return outs[0]
