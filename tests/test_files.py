"""Writes that never clobber (app/files.py): whole files or none, and never over anything but a
regular file."""

from __future__ import annotations

import os
import stat

import pytest

from app.cli.main import main
from app.files import TargetError, atomic_write_text, swap_in
from app.graph.model_templates import load_template


def test_an_atomic_write_replaces_a_regular_file_whole(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary file left


def test_a_symbolic_link_is_refused_and_what_it_points_to_is_untouched(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("keep me")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with pytest.raises(TargetError, match="link.txt: is a symbolic link, not a regular file"):
        atomic_write_text(link, "clobbered")
    assert link.is_symlink() and real.read_text() == "keep me"


def test_a_fifo_and_a_folder_are_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(TargetError, match="is a FIFO"):
        atomic_write_text(fifo, "x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(TargetError, match="is a folder"):
        atomic_write_text(tmp_path, "x")


def test_a_folder_swap_refuses_a_link_in_place_of_the_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("keep")
    final = tmp_path / "final"
    final.symlink_to(elsewhere)
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(TargetError, match="is a symbolic link, not a regular folder"):
        swap_in(staging, final)
    assert final.is_symlink() and (elsewhere / "precious").read_text() == "keep"


def test_codegen_to_a_special_file_is_one_line_and_leaves_it_alone(tmp_path, capsys):
    graph = tmp_path / "g.json"
    graph.write_text(load_template("tabular_classification").to_json())
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    assert main(["codegen", str(graph), "-o", str(fifo)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a FIFO, not a regular file" in err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root (CI runs as root)")
def test_codegen_to_a_device_keeps_the_device(tmp_path, capsys):
    graph = tmp_path / "g.json"
    graph.write_text(load_template("tabular_classification").to_json())
    null = tmp_path / "null"  # what /dev/null is: character device 1, 3
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    assert main(["codegen", str(graph), "-o", str(null)]) == 1
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert "is a character device" in capsys.readouterr().err


def _zip(path, members: dict[str, bytes]):
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_an_ordinary_archive_passes_the_checks(tmp_path):
    from app.files import check_archive

    path = _zip(tmp_path / "ok.zip", {"a.csv": b"x,y\n1,2\n" * 1000, "b.png": os.urandom(4096)})
    assert sorted(m.filename for m in check_archive(path)) == ["a.csv", "b.png"]


def test_a_decompression_bomb_is_refused_before_unpacking(tmp_path):
    from app.files import ArchiveError, check_archive

    bomb = _zip(tmp_path / "bomb.zip", {"huge.png": b"\0" * (64 * 2**20)})  # 64 MB -> ~64 KB
    assert bomb.stat().st_size < 2**20
    with pytest.raises(ArchiveError, match=r"bomb.zip: member 'huge.png' unpacks .* times"):
        check_archive(bomb)


def test_the_limits_are_the_users_to_set(tmp_path, monkeypatch):
    from app.files import ArchiveError, check_archive

    path = _zip(tmp_path / "data.zip", {"a.bin": os.urandom(2**20)})
    monkeypatch.setenv("LAYERFLOW_MAX_UNPACKED_BYTES", "1000")
    with pytest.raises(ArchiveError, match="more than the limit of 1,000 .*LAYERFLOW_MAX_UNPACKED"):
        check_archive(path)
    monkeypatch.setenv("LAYERFLOW_MAX_UNPACKED_BYTES", "1e9")
    assert check_archive(path)
    with pytest.raises(ArchiveError, match="not a readable zip archive"):
        check_archive(tmp_path / "missing.zip")


def test_a_keras_file_that_unpacks_to_far_more_than_it_weighs_is_refused(tmp_path, capsys):
    bomb = _zip(tmp_path / "model.keras", {"config.json": b" " * (64 * 2**20),
                                           "metadata.json": b"{}"})  # fmt: skip
    assert main(["import-keras", str(bomb), "-o", str(tmp_path / "g.json")]) == 1
    err = capsys.readouterr().err
    assert "model.keras: member 'config.json' unpacks" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "g.json").exists()


def test_a_folder_swap_replaces_the_old_folder_whole_and_leaves_nothing_behind(tmp_path):
    final, staging = tmp_path / "data", tmp_path / ".staging"
    final.mkdir()
    (final / "old.txt").write_text("old")
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    swap_in(staging, final)
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
