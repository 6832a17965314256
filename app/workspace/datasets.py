"""Datasets in the workspace: add, list, show, versions and restore.

Each dataset is a folder `data/<name>/` holding a copy of its files, `layerflow.json` (kind,
entry, target, task, column types, profile), `splits.json` (train/validation/test index
lists; rows without a target are in none) and `state.json` (the preprocessing fitted on the
train split). The folder is tracked by DVC, so the splits and the fitted state are versioned
with the data they belong to.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.data import autoconfig
from app.data.profile import missing_values
from app.data.sources import DataError, Source, read_source
from app.files import ArchiveError, atomic_write_text, check_archive, locked, swap_in
from app.graph.document import GraphDocument
from app.graph.problems import Problem
from app.paths import named
from app.runtime.tables import iter_table_chunks
from app.workspace import runs, versions
from app.workspace.project import Project

META, SPLITS, STATE = "layerflow.json", "splits.json", "state.json"
PREVIEW_ROWS = 10_000
Progress = Callable[[str], None]


@dataclass
class Dataset:
    name: str
    folder: Path

    @cached_property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.folder / META).read_text())

    @cached_property
    def splits(self) -> dict[str, list[int]]:
        return json.loads((self.folder / SPLITS).read_text())

    @cached_property
    def state(self) -> dict[str, Any]:
        return json.loads((self.folder / STATE).read_text())

    def preprocessing(self):
        """The preprocessing settings and the state fitted on the train split."""
        from app.runtime.config import FittedState, PreprocessConfig

        return (
            PreprocessConfig.model_validate(self.meta["preprocessing"]),
            FittedState.model_validate(self.state),
        )

    def input_spec(self) -> dict[str, tuple[list[int], str]]:
        """The model inputs the data provides: name -> (shape without batch, dtype)."""
        from app.runtime.transform import input_spec

        return input_spec(*self.preprocessing())

    def configure(self, doc: GraphDocument) -> tuple[GraphDocument, list[str]]:
        """doc with its Input and Output set from this dataset, and the changes made."""
        return autoconfig.configure(
            doc,
            self.input_spec(),
            self.meta["task"],
            self.meta["target"],
            self.meta["profile"].get("classes"),
        )

    def mismatches(self, doc: GraphDocument) -> list[Problem]:
        """Where doc and this dataset disagree (input shape or type, head, target)."""
        return autoconfig.mismatches(
            doc,
            self.input_spec(),
            self.meta["task"],
            self.meta["target"],
            self.meta["profile"].get("classes"),
        )

    def source(self, max_rows: int | None = None) -> Source:
        return read_source(self.folder / self.meta["entry"], max_rows=max_rows)

    @property
    def version(self) -> str | None:
        return versions.current(self.folder)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.meta["kind"],
            "rows": self.meta["rows"],
            "target": self.meta["target"],
            "task": self.meta["task"],
            "version": self.version,
        }


def data_dir(root: Path) -> Path:
    return root / "data"


def _folder(root: Path, name: str) -> Path:
    return named(data_dir(root), name)


def get(root: Path, name: str) -> Dataset:
    folder = _folder(root, name)
    if not (folder / META).exists():
        known = ", ".join(d["name"] for d in list_datasets(root)) or "none yet"
        raise ValueError(f"No dataset named {name!r} (datasets: {known})")
    return Dataset(name, folder)


def list_datasets(root: Path) -> list[dict[str, Any]]:
    folder = data_dir(root)
    if not folder.is_dir():
        return []
    return [Dataset(p.name, p).summary() for p in sorted(folder.iterdir()) if (p / META).exists()]


def add(
    root: Path,
    path: str | Path,
    name: str,
    target: str | None = None,
    overrides: dict[str, str] | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.2, 0.1),
    seed: int = 0,
    progress: Progress | None = None,
    large_file_bytes: int = 256 * 2**20,
) -> Dataset:
    """Read, check and profile a source, copy it into data/<name>/ with its splits and fitted
    preprocessing, and record a DVC version. Nothing is left half-written on failure."""
    from app.data.preprocess_config import default_config
    from app.data.profile import profile
    from app.data.splits import make_splits
    from app.runtime.fit import fit

    say = progress or (lambda step: None)
    final = _folder(root, name)
    path = Path(path)
    if path.suffix.lower() == ".zip":  # a folder of class folders, packed
        with tempfile.TemporaryDirectory() as folder:
            say(f"unpacking {path.name}")
            return add(root, unpack_archive(path, Path(folder)), name, target, overrides, fractions,
                       seed, progress, large_file_bytes)  # fmt: skip
    say(f"reading {path}")
    large = path.is_file() and path.stat().st_size > large_file_bytes
    # A large table is never loaded whole: profile and fit stream it from disk in chunks.
    source = read_source(path, max_rows=PREVIEW_ROWS if large else None)
    say("profiling" + (" (streaming)" if source.sampled else ""))
    prof = profile(source, target=target, overrides=overrides)
    targets = _targets(source, prof.target)
    labels = list(targets) if prof.task in ("binary", "multiclass") else None
    # Rows without a target are copied with the rest but are in no split.
    keep = ~_missing(targets) if prof.left_out else None
    # A series keeps its order: forecasting windows need runs of consecutive rows.
    splits = make_splits(
        prof.rows,
        labels,
        fractions=fractions,
        seed=seed,
        shuffle=prof.task != "forecasting",
        keep=keep,
    )
    config = default_config(prof)
    say("fitting preprocessing on the train split")
    state = fit(config, source, splits["train"])

    versions.ensure_repository(root)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=final.parent))
    try:
        say(f"copying {len(source.files)} files")
        for file in source.files:
            relative = file.resolve().relative_to(source.root.resolve())
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, destination)
        entry = _entry(Path(path), source)
        meta = {
            "name": name,
            "kind": source.kind,
            "entry": entry,
            "target": prof.target,
            "task": prof.task,
            "rows": prof.rows,
            "overrides": overrides or {},
            "fractions": list(fractions),
            "seed": seed,
            "added": time.time(),
            "profile": prof.to_dict(),
            "preprocessing": config.model_dump(mode="json"),
        }
        atomic_write_text(staging / META, json.dumps(meta, indent=2) + "\n")
        atomic_write_text(staging / SPLITS, json.dumps(splits) + "\n")
        atomic_write_text(staging / STATE, state.model_dump_json(indent=2) + "\n")
        # Two adds to one name at once: one after the other, each swapped in and recorded (the
        # first stays a version of the dataset), never one lost while both say they succeeded.
        with locked(final.parent / f".{name}.lock"):
            swap_in(staging, final)
            say("recording a DVC version")
            versions.record(root, final, note=f"added from {Path(path).name}")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Dataset(name, final)


def unpack_archive(path: Path, folder: Path) -> Path:
    """Unpack a .zip into `folder` and return what it holds: its one top folder, or `folder`.
    A member that would land outside `folder` is refused before anything is written."""
    target = folder.resolve()
    try:
        check_archive(path)  # declared sizes, before anything is unpacked
    except ArchiveError as err:
        raise DataError(str(err)) from None
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not (target / member).resolve().is_relative_to(target):
                    raise DataError(f"{path.name}: member {member!r} points outside the archive")
            archive.extractall(target)
    except zipfile.BadZipFile as err:
        raise DataError(f"{path.name}: not a readable .zip archive ({err})") from None
    entries = [p for p in target.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else target


def refit(root: Path, name: str, config: Any) -> Dataset:
    """Fit new preprocessing settings on the dataset's train split and record the result as a
    new version of the dataset (settings and fitted state travel with the data they fit)."""
    from app.data.preprocess_config import check_against_profile
    from app.data.profile import DatasetProfile
    from app.runtime.config import PreprocessConfig
    from app.runtime.fit import fit

    dataset = get(root, name)
    config = PreprocessConfig.model_validate(config)
    check_against_profile(config, DatasetProfile.from_dict(dataset.meta["profile"]))
    state = fit(config, dataset.source(), dataset.splits["train"])
    meta = {**dataset.meta, "preprocessing": config.model_dump(mode="json")}
    atomic_write_text(dataset.folder / STATE, state.model_dump_json(indent=2) + "\n")
    atomic_write_text(dataset.folder / META, json.dumps(meta, indent=2) + "\n")
    versions.record(root, dataset.folder, note="preprocessing refitted")
    return Dataset(name, dataset.folder)


def of_run(root: Path, run_dir: Path) -> Dataset:
    """The dataset a run was trained on, at the version it was trained on; a DataError naming
    the run and the dataset (and how to restore that version) when the workspace no longer
    has it so."""
    info = runs.read_info(run_dir)
    name, version = info["data"]["name"], str(info["data"]["version"])
    run = f"Run '{info['id']}'"
    try:
        dataset = get(root, name)
    except ValueError:
        raise DataError(
            f"{run} was trained on dataset '{name}', which is no longer in the workspace; add "
            "it again under that name"
        ) from None
    if str(dataset.version) != version:
        raise DataError(
            f"{run} was trained on version {version[:10]} of dataset '{name}', which is now at "
            f"{str(dataset.version)[:10]}; restore it with `layerflow data restore {name} "
            f"{version[:10]}`"
        )
    return dataset


def refit_project(project: Project, config: Any) -> Dataset:
    """Refit the project's dataset with new preprocessing settings (`refit`) and keep those
    settings in the project."""
    if project.dataset is None:
        raise ValueError(f"Project {project.name!r} has no dataset to preprocess")
    dataset = refit(project.root, project.dataset, config)
    project.save_settings("preprocessing", dataset.meta["preprocessing"])
    return dataset


def dataset_versions(root: Path, name: str) -> list[versions.Version]:
    return versions.versions(get(root, name).folder)


def restore(root: Path, name: str, version: str) -> versions.Version:
    return versions.restore(root, get(root, name).folder, version)


def _targets(source: Source, target: str | None) -> pd.Series | np.ndarray | None:
    """Every row's target (an npz array's first value per sample), a sampled table streamed."""
    if target is None:
        return None
    if source.arrays is not None:
        return source.arrays[target].reshape(len(source.arrays[target]), -1)[:, 0]
    if source.sampled and source.path is not None:
        return pd.concat([chunk[target] for chunk in iter_table_chunks(source.path)])
    return source.frame[target]


def _missing(targets: pd.Series | np.ndarray) -> np.ndarray:
    """Which targets are missing, as the profile counts them."""
    if isinstance(targets, np.ndarray):
        return pd.isna(targets)
    return missing_values(targets).to_numpy()


def _entry(path: Path, source: Source) -> str:
    """What read_source is given inside the dataset folder: the table file, or the folder."""
    if path.is_dir():
        return "."
    return path.resolve().relative_to(source.root.resolve()).as_posix()


__all__ = ["DataError", "Dataset", "add", "dataset_versions", "get", "list_datasets", "restore"]
