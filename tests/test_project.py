"""Projects: a graph with its dataset and the settings kept beside it."""

from __future__ import annotations

import pytest

from app.data.samples import make_sample
from app.graph.model_templates import load_template
from app.workspace import Workspace, datasets


def test_a_project_keeps_its_graph_and_reopens(workspace):
    doc = load_template("tabular_regression")
    project = Workspace.current().create_project("house", doc)
    assert Workspace.current().project("house").graph() == doc
    assert Workspace.current().projects() == ["house"]
    with pytest.raises(ValueError, match="exists already"):
        Workspace.current().create_project("house", doc)
    with pytest.raises(ValueError, match=r"No project named 'flat' \(projects: house\)"):
        Workspace.current().project("flat")
    assert project.folder == workspace / "projects" / "house"


def test_the_graph_is_read_anew_when_its_file_changes_and_each_caller_gets_its_own(workspace):
    project = Workspace.current().create_project("house", load_template("tabular_regression"))
    first = project.graph()
    first.node("dense1").label = "changed by one caller"
    assert project.graph().node("dense1").label == "Dense 64"
    # written in place, as another program might, and of the same length: only the text differs
    path = project.folder / "graph.json"
    text = path.read_text()
    assert text.count('"units": 64') == 1
    path.write_text(text.replace('"units": 64', '"units": 65'))
    assert project.graph().node("dense1").settings["units"] == 65


def test_new_preprocessing_is_refitted_into_a_new_dataset_version(workspace, tmp_path):
    Workspace.current().add_dataset(make_sample("diabetes", tmp_path / "src"), "diabetes")
    project = Workspace.current().create_project("sugar", load_template("tabular_regression"))
    project.use_dataset("diabetes")
    config = Workspace.current().dataset("diabetes").meta["preprocessing"]
    numeric = [f for f in config["features"] if f["kind"] == "numeric"]
    first = numeric[0]["column"]
    for feature in numeric:
        feature["method"] = "minmax"
    datasets.refit_project(project, config)

    dataset = Workspace.current().dataset("diabetes")
    assert len(Workspace.current().dataset_versions("diabetes")) == 2
    saved = {f["column"]: f["method"] for f in project.settings("preprocessing")["features"]}
    assert saved[first] == "minmax"
    values = dataset.source().frame[first].iloc[dataset.splits["train"]]
    assert dataset.state["columns"][first]["min"] == pytest.approx(values.min())


def test_impossible_preprocessing_is_refused_and_records_nothing(workspace, tmp_path):
    Workspace.current().add_dataset(make_sample("texts", tmp_path / "src"), "texts")
    project = Workspace.current().create_project("words", load_template("text_classification"))
    project.use_dataset("texts")
    config = Workspace.current().dataset("texts").meta["preprocessing"]
    config["features"] = [{"column": "text", "kind": "numeric", "method": "standardize"}]
    with pytest.raises(ValueError, match="Column 'text' holds text values"):
        datasets.refit_project(project, config)
    assert len(Workspace.current().dataset_versions("texts")) == 1
    assert project.settings("preprocessing") is None


def test_cli_overrides_a_column_type(workspace, tmp_path, capsys):
    from app.cli.main import main

    path = tmp_path / "codes.csv"
    path.write_text("code,size,label\n" + "".join(f"{i % 3},{i},{'ab'[i % 2]}\n"
                                                    for i in range(40)))  # fmt: skip
    assert main(["data", "add", str(path), "--name", "codes", "--type", "code=categorical"]) == 0
    profile = Workspace.current().dataset("codes").meta["profile"]
    columns = {c["name"]: c["type"] for c in profile["columns"]}
    assert columns["code"] == "categorical"
    assert main(["data", "add", str(path), "--name", "codes", "--type", "code"]) == 1
    assert "--type takes COLUMN=TYPE" in capsys.readouterr().err
