"""The Workspace object: everything it hands out lives under its own root, whatever the
environment says; Workspace.current() is the one place that reads LAYERFLOW_WORKSPACE."""

from __future__ import annotations

import pytest

from app.data.samples import make_sample
from app.graph.document import BlockDef
from app.graph.model_templates import load_template
from app.workspace import Workspace
from tests.test_blocks import residual_cell


def test_two_workspaces_keep_their_things_apart_from_each_other_and_the_current_one(
    tmp_path, monkeypatch
):
    current = tmp_path / "current"
    current.mkdir()
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(current))
    first, second = Workspace(tmp_path / "first"), Workspace(tmp_path / "second")

    first.add_dataset(make_sample("iris", tmp_path / "src"), "iris")
    project = first.create_project("flowers", load_template("tabular_classification"))
    project.use_dataset("iris")
    first.save_block("cell", BlockDef.model_validate(residual_cell()))

    assert [d["name"] for d in first.datasets()] == ["iris"]
    assert first.projects() == ["flowers"] and first.blocks() == ["cell"]
    assert first.project("flowers").dataset == "iris"
    assert first.project("flowers").root == first.root
    assert first.dataset("iris").folder == first.root / "data" / "iris"
    assert len(first.dataset_versions("iris")) == 1
    for other in (second, Workspace.current()):
        assert other.datasets() == [] and other.projects() == [] and other.blocks() == []
        assert other.runs() == []
        with pytest.raises(ValueError, match="No dataset named 'iris'"):
            other.dataset("iris")
    assert not any(current.iterdir())  # nothing was written where the environment points


def test_the_current_workspace_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(tmp_path / "a"))
    assert Workspace.current() == Workspace(tmp_path / "a")
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(tmp_path / "b"))
    assert Workspace.current().root == (tmp_path / "b").resolve()


@pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "data/../../outside"])
def test_paths_handed_out_stay_inside_the_workspace(tmp_path, path):
    with pytest.raises(ValueError, match="leaves the workspace"):
        Workspace(tmp_path).path(path)


def test_names_that_would_leave_the_workspace_are_refused(tmp_path):
    workspace = Workspace(tmp_path)
    for make in (workspace.project, workspace.dataset, workspace.block):
        with pytest.raises(ValueError, match="[Ii]nvalid"):
            make("../escape")
