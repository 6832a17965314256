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
