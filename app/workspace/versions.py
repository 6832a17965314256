"""Versions of data and models, recorded by DVC. The one module that talks to DVC.

A tracked folder (a dataset under data/, a model under models/) gets a `.dvc` file beside it;
each version is the DVC hash of the folder. Every version's `.dvc` content is kept in a
`<folder>.versions.json` index beside it, so any earlier version can be checked out again
from the DVC cache, byte-identical.

A finished training run is also saved as a DVC experiment named after the run, so that
`dvc exp show` in the workspace lists every run with its hyperparameters and final metrics.
An experiment is a git commit on the workspace's current commit (its baseline) that adds
params.yaml, metrics.json and a dvc.yaml declaring them as the top-level `params:` and
`metrics:`, which is where `dvc exp show` reads them; only the experiment's ref
(refs/exps/...) points at it. The commit is written straight into git's object store: unlike
`dvc exp save`, which stashes the working tree, checks out the baseline and commits every
tracked folder again, this leaves the workspace's files, index and HEAD as they are, and takes
a fraction of a second. Experiments hang off the commit that was current when they were saved
(a new workspace gets one first commit, of DVC's own settings, and keeps it); `dvc exp show
-A` lists those saved on earlier commits too.
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

from app.files import atomic_write_text, locked

LOCK_ATTEMPTS = 30  # DVC's repository lock is held by one process at a time; wait this many s
EXPERIMENT_DVC_YAML = (
    "# A LayerFlow training run: its hyperparameters and final metrics, for `dvc exp show`.\n"
    "params:\n  - params.yaml\nmetrics:\n  - metrics.json\n"
)


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


# What DVC leaves out of a run directory's versions: its test results, written after the run is
# recorded (a test must not make the trained run read as modified), and the record, lock and log
# of a model server of a run or export (app.serve); searches (their studies, app.search); and
# the records of the TF.js demos' file servers (app.export.demo).
IGNORED = (
    "/models/*/runs/*/test/", "serving.json", ".serving.lock", "serving.log", "/searches/",
    "*.demo.json", "*.demo.lock",
)  # fmt: skip


def ensure_repository(root: Path) -> None:
    """Make root a git + DVC repository if it is not one yet; one process at a time, so that
    two first uses of a fresh workspace (two `data add` at once) do not both initialise it."""
    root.mkdir(parents=True, exist_ok=True)
    if (root / ".git").exists() and (root / ".dvc").exists():
        _ensure_ignored(root)
        return
    with locked(root / ".layerflow" / "init.lock"):
        if not (root / ".git").exists():
            subprocess.run(["git", "init", "-q", str(root)], check=True)
            atomic_write_text(root / ".gitignore", "/.layerflow/\n")
        if not (root / ".dvc").exists():
            from dvc.repo import Repo

            with _quiet():
                Repo.init(str(root))
                Repo(str(root)).config  # noqa: B018 - reading it validates the new config
            with (root / ".dvc" / "config").open("a") as config:
                config.write("[core]\n    analytics = false\n")
    _ensure_ignored(root)


def _ensure_ignored(root: Path) -> None:
    path = root / ".dvcignore"
    lines = path.read_text().splitlines() if path.exists() else []
    for pattern in IGNORED:
        if pattern not in lines:
            ignore(root, pattern)


def ignore(root: Path, pattern: str) -> None:
    """Add a pattern to the workspace's .dvcignore (once)."""
    path = root / ".dvcignore"
    with locked(root / ".layerflow" / "dvcignore.lock"):
        lines = path.read_text().splitlines() if path.exists() else []
        if pattern not in lines:
            atomic_write_text(path, "\n".join([*lines, pattern]) + "\n")


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
    """Track folder with DVC and record its current content as a version. One process records
    at a time: DVC refuses a second writer of its repository rather than waiting."""
    with locked(root / ".layerflow" / "dvc.lock"):
        with _quiet():
            repo = _repo(root)
            repo.add([str(folder)])
        dvc_text = _dvc_file(folder).read_text()
        out = _parse_dvc(dvc_text)
        version = Version(out["md5"], time.time(), int(out.get("size", 0)),
                          int(out.get("nfiles", 1)), note)  # fmt: skip
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


def forget(root: Path, folder: Path) -> None:
    """Stop tracking folder: remove its `.dvc` file and its line in `.gitignore` (as `dvc
    remove` does, leaving the folder itself) and its versions index. Its versions stay in the
    DVC cache until `dvc gc`. Nothing happens for a folder that is not tracked."""
    from dvc.lock import LockError

    dvc_file = _dvc_file(folder)
    for attempt in range(LOCK_ATTEMPTS):
        if not dvc_file.exists():
            break
        try:
            with _quiet():
                _repo(root).remove(str(dvc_file))
            break
        except LockError:  # a run finishing records itself: wait for its turn to end
            if attempt == LOCK_ATTEMPTS - 1:
                raise
            time.sleep(1.0)
    _index_path(folder).unlink(missing_ok=True)


# Experiments: one per finished run, for `dvc exp show`


def save_experiment(root: Path, name: str, params: Path, metrics: Path) -> str:
    """Save a run's hyperparameters and final metrics as the DVC experiment `name`, so that
    `dvc exp show` in root lists it beside the others; returns the experiment's commit.

    Saving again under the same name replaces the experiment. Experiments are saved one at a
    time (a lock file), so runs finishing together each get theirs.

    Args:
        params: a YAML file of the hyperparameters, kept as the experiment's params.yaml.
        metrics: a JSON file of the final metrics, kept as the experiment's metrics.json.
    """
    from dulwich.objects import Blob, Tree
    from dvc.repo.experiments.refs import ExpRefInfo

    _check_experiment_name(name)
    files = {
        b"dvc.yaml": EXPERIMENT_DVC_YAML.encode(),
        b"params.yaml": Path(params).read_bytes(),
        b"metrics.json": Path(metrics).read_bytes(),
    }
    ensure_repository(root)
    with _experiments_lock(root), _git(root) as git:
        baseline = _baseline(git, root)
        tree = Tree()
        for entry in git[git[baseline].tree].items():
            tree.add(entry.path, entry.mode, entry.sha)
        for path, content in files.items():
            blob = Blob.from_string(content)
            git.object_store.add_object(blob)
            tree.add(path, 0o100644, blob.id)
        git.object_store.add_object(tree)
        commit = _commit(git, tree.id, [baseline], f"LayerFlow run {name}")
        for ref in _experiment_refs(git, name):  # one experiment per run, on any baseline
            git.refs.remove_if_equals(ref, None)
        git.refs[str(ExpRefInfo(baseline.decode(), name)).encode()] = commit
    return commit.decode()


def remove_experiment(root: Path, name: str) -> bool:
    """Remove the DVC experiment `name` (its ref; the commit goes with git's next gc). False
    when there is none."""
    if not (root / ".git").exists():
        return False
    with _experiments_lock(root), _git(root) as git:
        refs = _experiment_refs(git, name)
        for ref in refs:
            git.refs.remove_if_equals(ref, None)
    return bool(refs)


def _check_experiment_name(name: str) -> None:
    from dulwich.refs import check_ref_format

    if not name or "/" in name or not check_ref_format(f"refs/exps/{name}".encode()):
        raise ValueError(
            "Received an invalid value for `name`, expected a name git accepts in a ref "
            f"(no spaces, slashes, '..' or any of ~^:?*[\\). Received: name={name!r}"
        )


def _experiments_lock(root: Path) -> contextlib.AbstractContextManager[None]:
    """Saving experiments from several finishing runs: one at a time."""
    return locked(root / ".dvc" / "tmp" / "layerflow-experiments.lock")


@contextlib.contextmanager
def _git(root: Path):
    from dulwich.repo import Repo as GitRepository

    git = GitRepository(str(root))
    try:
        yield git
    finally:
        git.close()


def _experiment_refs(git, name: str) -> list[bytes]:
    """The refs of the experiment `name` on any baseline: refs/exps/ab/cdef.../name, where
    abcdef... is the baseline commit (DVC keeps its own work refs there too, less deep)."""
    return [
        b"refs/exps/" + ref
        for ref in git.refs.keys(base=b"refs/exps/")
        if ref.count(b"/") == 2 and ref.rsplit(b"/", 1)[-1] == name.encode()
    ]


def _baseline(git, root: Path) -> bytes:
    """The workspace's current commit; a workspace without one first commits DVC's own
    settings (what `dvc init` leaves to commit), which it can then keep as its baseline."""
    try:
        return git.head()
    except KeyError:  # no commit yet
        from dulwich import porcelain

        settings = [root / ".dvc" / "config", root / ".dvc" / ".gitignore", root / ".dvcignore"]
        porcelain.add(git, [str(p) for p in settings if p.exists()])
        return porcelain.commit(
            git, message=b"LayerFlow workspace: DVC settings\n", author=_identity(git),
            committer=_identity(git), no_verify=True,
        )  # fmt: skip


def _commit(git, tree: bytes, parents: list[bytes], message: str) -> bytes:
    from dulwich.objects import Commit

    commit = Commit()
    commit.tree, commit.parents, commit.message = tree, parents, message.encode() + b"\n"
    commit.author = commit.committer = _identity(git)
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = time.localtime().tm_gmtoff
    git.object_store.add_object(commit)
    return commit.id


def _identity(git) -> bytes:
    """The user's git identity where one is set, LayerFlow's otherwise."""
    config = git.get_config_stack()
    try:
        return config.get((b"user",), b"name") + b" <" + config.get((b"user",), b"email") + b">"
    except KeyError:
        return b"LayerFlow <layerflow@localhost>"


def _parse_dvc(text: str) -> dict:
    """The first output of a .dvc file (a small YAML document DVC writes)."""
    from dvc.utils.serialize import parse_yaml

    outs = (parse_yaml(text, "dvc file") or {}).get("outs") or []
    if not outs or "md5" not in outs[0]:
        raise ValueError("the .dvc file records no output hash")
    return outs[0]
