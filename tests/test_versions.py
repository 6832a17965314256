"""Versions recorded by DVC: record, list, restore an older one byte-identical, and forget a
folder; experiments that `dvc exp show` lists, saved and removed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.workspace import versions

DVC = str(Path(sys.executable).parent / "dvc")


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def test_a_new_workspace_becomes_a_git_and_dvc_repository(tmp_path):
    versions.ensure_repository(tmp_path / "ws")
    assert (tmp_path / "ws" / ".git").is_dir()
    assert "analytics = false" in (tmp_path / "ws" / ".dvc" / "config").read_text()


def test_recording_twice_gives_two_versions_and_restores_the_first(tmp_path):
    folder = tmp_path / "data" / "iris"
    folder.mkdir(parents=True)
    (folder / "table.csv").write_text("a,b\n1,2\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "img.bin").write_bytes(bytes(range(256)))
    first_content = snapshot(folder)
    first = versions.record(tmp_path, folder, note="first")

    (folder / "table.csv").write_text("a,b\n1,2\n3,4\n")
    (folder / "extra.txt").write_text("new file")
    second = versions.record(tmp_path, folder)

    assert [v.version for v in versions.versions(folder)] == [first.version, second.version]
    assert first.version != second.version and first.version.endswith(".dir")
    assert versions.current(folder) == second.version

    versions.restore(tmp_path, folder, first.short)
    assert snapshot(folder) == first_content
    assert versions.current(folder) == first.version


def test_restoring_an_unknown_version_names_the_known_ones(tmp_path):
    folder = tmp_path / "data" / "d"
    folder.mkdir(parents=True)
    (folder / "x").write_text("1")
    version = versions.record(tmp_path, folder)
    with pytest.raises(ValueError, match=f"no version matches 'zzz' .versions: {version.short}"):
        versions.restore(tmp_path, folder, "zzz")


def test_forgetting_a_folder_removes_its_dvc_file_gitignore_line_and_index(tmp_path):
    folder = tmp_path / "models" / "m" / "runs" / "r1"
    folder.mkdir(parents=True)
    (folder / "w.bin").write_bytes(b"weights")
    versions.record(tmp_path, folder)
    kept = tmp_path / "models" / "m" / "runs" / "r2"
    kept.mkdir()
    (kept / "w.bin").write_bytes(b"other weights")
    versions.record(tmp_path, kept)

    versions.forget(tmp_path, folder)
    assert not (folder.parent / "r1.dvc").exists()
    assert not (folder.parent / "r1.versions.json").exists()
    assert (folder / "w.bin").read_bytes() == b"weights"  # the folder itself is left
    assert (folder.parent / ".gitignore").read_text().split() == ["/r2"]
    assert versions.current(kept) is not None
    versions.forget(tmp_path, folder)  # nothing left to forget: nothing happens


# Experiments


def dvc_exp_show(root: Path) -> dict[str, dict]:
    """`dvc exp show --json` in root: {experiment name: {"params": ..., "metrics": ...}}."""
    shown = subprocess.run([DVC, "exp", "show", "--json"], cwd=root, capture_output=True,
                           text=True, check=True)  # fmt: skip
    found = {}
    for baseline in json.loads(shown.stdout):
        for experiment in baseline.get("experiments") or []:
            data = experiment["revs"][0]["data"]
            found[experiment["name"]] = {
                "params": data["params"]["params.yaml"]["data"],
                "metrics": data["metrics"]["metrics.json"]["data"],
            }
    return found


def run_files(folder: Path, learning_rate: float, loss: float) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    params = folder / "params.yaml"
    params.write_text(yaml.safe_dump({"learning_rate": learning_rate, "epochs": 3,
                                      "data": {"name": "tiny", "version": "abc.dir"}}))  # fmt: skip
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps({"loss": loss, "val_loss": loss + 0.1}))
    return params, metrics


def working_tree(root: Path) -> dict[str, bytes]:
    """The files outside git's and DVC's own scratch folders."""
    files = {p.relative_to(root): p for p in root.rglob("*") if p.is_file()}
    return {name.as_posix(): path.read_bytes() for name, path in files.items()
            if name.parts[0] != ".git" and name.parts[:2] != (".dvc", "tmp")}  # fmt: skip


def git_status(root: Path) -> list[str]:
    return subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                          text=True, check=True).stdout.splitlines()  # fmt: skip


def test_dvc_exp_show_lists_each_saved_experiment_with_its_params_and_metrics(tmp_path):
    versions.ensure_repository(tmp_path)
    first = run_files(tmp_path / "runs" / "first", 0.01, 0.5)
    second = run_files(tmp_path / "runs" / "second", 0.001, 0.25)
    files = working_tree(tmp_path)
    assert ".dvc/config" in files and "runs/first/params.yaml" in files
    versions.save_experiment(tmp_path, "first", *first)
    versions.save_experiment(tmp_path, "second", *second)
    # The working tree is as it was; only DVC's own settings got a first commit, as a baseline.
    assert working_tree(tmp_path) == files
    assert all(line.startswith("?? ") for line in git_status(tmp_path))

    shown = dvc_exp_show(tmp_path)
    assert set(shown) == {"first", "second"}
    assert shown["first"]["params"] == yaml.safe_load(first[0].read_text())
    assert shown["second"]["params"]["learning_rate"] == 0.001
    assert shown["second"]["metrics"] == {"loss": 0.25, "val_loss": 0.35}


def test_saving_an_experiment_again_replaces_it_and_removing_it_leaves_the_others(tmp_path):
    versions.ensure_repository(tmp_path)
    versions.save_experiment(tmp_path, "run", *run_files(tmp_path / "a", 0.01, 0.5))
    versions.save_experiment(tmp_path, "run", *run_files(tmp_path / "b", 0.02, 0.4))
    versions.save_experiment(tmp_path, "other", *run_files(tmp_path / "c", 0.03, 0.3))
    assert versions.remove_experiment(tmp_path, "other") is True
    assert versions.remove_experiment(tmp_path, "other") is False
    shown = dvc_exp_show(tmp_path)
    assert list(shown) == ["run"] and shown["run"]["params"]["learning_rate"] == 0.02


SAVE = """
import sys
from pathlib import Path
from app.workspace import versions
root = Path(sys.argv[1])
for name in sys.argv[2:]:
    versions.save_experiment(root, name, root / "params.yaml", root / "metrics.json")
"""


def test_experiments_saved_by_several_processes_at_once_are_all_kept(tmp_path):
    versions.ensure_repository(tmp_path)  # the baseline commit is made by the first to save
    run_files(tmp_path, 0.01, 0.5)
    names = [[f"p{process}-{i}" for i in range(3)] for process in range(3)]
    processes = [subprocess.Popen([sys.executable, "-c", SAVE, str(tmp_path), *group],
                                  cwd=Path(versions.__file__).parent.parent)
                 for group in names]  # fmt: skip
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0]
    assert set(dvc_exp_show(tmp_path)) == {name for group in names for name in group}
    assert all(line.startswith("?? ") for line in git_status(tmp_path))


def test_an_experiment_name_git_cannot_take_is_refused(tmp_path):
    params, metrics = run_files(tmp_path / "r", 0.01, 0.5)
    with pytest.raises(ValueError, match="invalid value for `name`.*Received: name='a b'"):
        versions.save_experiment(tmp_path, "a b", params, metrics)
