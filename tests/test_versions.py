"""Versions recorded by DVC: record, list, and restore an older one byte-identical."""

from __future__ import annotations

import pytest

from app import versions


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
