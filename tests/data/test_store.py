"""Datasets in a workspace: added whole or not at all, versioned by DVC, restored exactly."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest

from app.data.samples import make_sample
from app.data.sources import DataError
from app.workspace import Workspace


def contents(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def test_adding_a_table_copies_it_with_profile_splits_and_fitted_state(workspace, tmp_path):
    dataset = Workspace.current().add_dataset(make_sample("iris", tmp_path / "src"), "iris")
    assert dataset.folder == workspace / "data" / "iris"
    assert (dataset.folder / "iris.csv").read_bytes() == (
        tmp_path / "src" / "iris.csv"
    ).read_bytes()
    assert dataset.meta["task"] == "multiclass" and dataset.meta["rows"] == 150
    assert {k: len(v) for k, v in dataset.splits.items()} == {
        "train": 105,
        "validation": 30,
        "test": 15,
    }
    assert sorted(sum(dataset.splits.values(), [])) == list(range(150))
    assert dataset.state  # the fitted preprocessing is stored with the data
    assert dataset.version and (workspace / "data" / "iris.dvc").exists()
    assert (workspace / ".git").is_dir() and (workspace / ".dvc").is_dir()


def test_splits_are_stratified(workspace, tmp_path):
    dataset = Workspace.current().add_dataset(make_sample("iris", tmp_path / "src"), "iris")
    labels = dataset.source().frame["target"]
    test_classes = labels.iloc[dataset.splits["test"]].value_counts().to_dict()
    assert test_classes == {"setosa": 5, "versicolor": 5, "virginica": 5}


def test_an_image_folder_is_added_with_its_images(workspace, tmp_path):
    dataset = Workspace.current().add_dataset(make_sample("digits", tmp_path / "src"), "digits")
    assert dataset.meta["kind"] == "image_folder"
    assert len(list(dataset.folder.rglob("*.png"))) == 1797
    assert len(dataset.source().frame) == 1797


def test_a_zip_of_class_folders_is_unpacked_and_added(workspace, tmp_path):
    folder = make_sample("digits", tmp_path / "src")
    archive = shutil.make_archive(str(tmp_path / "digits"), "zip", folder.parent, folder.name)
    dataset = Workspace.current().add_dataset(archive, "zipped")
    assert dataset.meta["kind"] == "image_folder" and dataset.meta["rows"] == 1797
    assert len(list(dataset.folder.rglob("*.png"))) == 1797


def test_a_zip_member_pointing_outside_is_refused_before_anything_is_written(workspace, tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../escaped.txt", "x")
    with pytest.raises(DataError, match=r"evil.zip: member '../escaped.txt' points outside"):
        Workspace.current().add_dataset(archive, "evil")
    assert not (tmp_path / "escaped.txt").exists() and Workspace.current().datasets() == []


def test_list_and_get(workspace, tmp_path):
    Workspace.current().add_dataset(make_sample("diabetes", tmp_path / "src"), "diabetes")
    (row,) = Workspace.current().datasets()
    assert row["name"] == "diabetes" and row["task"] == "regression" and row["rows"] == 442
    with pytest.raises(ValueError, match=r"No dataset named 'nope' \(datasets: diabetes\)"):
        Workspace.current().dataset("nope")


def test_a_new_version_is_recorded_and_the_old_one_restored_byte_identical(workspace, tmp_path):
    first_csv = make_sample("iris", tmp_path / "one")
    first = Workspace.current().add_dataset(first_csv, "flowers")
    first_content = contents(first.folder)
    changed = tmp_path / "two" / "iris.csv"
    changed.parent.mkdir()
    lines = first_csv.read_text().splitlines()
    changed.write_text("\n".join(lines[:-30]) + "\n")
    second = Workspace.current().add_dataset(changed, "flowers")
    assert second.meta["rows"] == 120

    history = Workspace.current().dataset_versions("flowers")
    assert len(history) == 2 and history[0].version != history[1].version
    Workspace.current().restore_dataset("flowers", history[0].version[:8])
    assert contents(workspace / "data" / "flowers") == first_content
    assert Workspace.current().dataset("flowers").meta["rows"] == 150


def test_bad_input_leaves_nothing_behind(workspace, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n")
    with pytest.raises(DataError, match="bad.csv"):
        Workspace.current().add_dataset(bad, "bad")
    assert not (workspace / "data" / "bad").exists()
    assert (
        not list((workspace / "data").glob(".staging-*")) if (workspace / "data").exists() else True
    )


def test_a_failed_replacement_keeps_the_previous_dataset(workspace, tmp_path):
    Workspace.current().add_dataset(make_sample("iris", tmp_path / "src"), "iris")
    before = contents(workspace / "data" / "iris")
    missing_target = tmp_path / "other.csv"
    missing_target.write_text("x,y\n1,2\n3,4\n")
    with pytest.raises(DataError):
        Workspace.current().add_dataset(missing_target, "iris", target="species")
    assert contents(workspace / "data" / "iris") == before


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "9lives", "x" * 65])
def test_dataset_names_are_checked(workspace, tmp_path, name):
    with pytest.raises(ValueError, match="`name`"):
        Workspace.current().add_dataset(make_sample("iris", tmp_path / "src"), name)


def test_cli_data_commands(workspace, capsys):
    from app.cli.main import main

    assert main(["data", "samples", "wine"]) == 0
    assert main(["data", "list", "--json"]) == 0
    out = capsys.readouterr().out
    listed = json.loads(out[out.index("[") :])
    assert [d["name"] for d in listed] == ["wine"]
    assert main(["data", "show", "wine", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["splits"] == {"train": 124, "validation": 36, "test": 18}
    assert shown["task"] == "multiclass" and len(shown["classes"]) == 3
    assert main(["data", "versions", "wine"]) == 0
    assert shown["version"][:10] in capsys.readouterr().out
    assert main(["data", "restore", "wine", "nope"]) == 1
    assert "no version matches 'nope'" in capsys.readouterr().err


def test_a_large_table_is_streamed_not_loaded_whole(workspace, tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = 30_000
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows),
                          "label": rng.choice(["x", "y"], size=rows)})  # fmt: skip
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    whole_reads = []
    read_csv = pd.read_csv

    def watched(*args, **kwargs):
        if "chunksize" not in kwargs and "nrows" not in kwargs:
            whole_reads.append(args)
        return read_csv(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", watched)
    dataset = Workspace.current().add_dataset(path, "big", target="label", large_file_bytes=1000)
    assert whole_reads == []
    assert dataset.meta["rows"] == rows
    assert sum(len(v) for v in dataset.splits.values()) == rows
    train_mean = frame["a"].iloc[dataset.splits["train"]].mean()
    assert dataset.state["rows"] == len(dataset.splits["train"])
    assert abs(dataset.state["columns"]["a"]["mean"] - train_mean) < 1e-9


def test_a_time_series_keeps_its_order_so_windows_can_be_cut(workspace, tmp_path):
    from app.keras.pipeline import make_dataset

    dataset = Workspace.current().add_dataset(make_sample("timeseries", tmp_path / "src"), "series")
    assert dataset.meta["task"] == "forecasting"
    train = dataset.splits["train"]
    assert train == list(range(len(train)))
    config, state = dataset.preprocessing()
    batches = make_dataset(config, state, dataset.source(), train, batch_size=16)
    inputs, target = next(iter(batches))
    ((shape, _),) = dataset.input_spec().values()
    assert tuple(next(iter(inputs.values())).shape[1:]) == tuple(shape)


def test_cli_configures_a_graph_from_a_dataset(workspace, tmp_path, capsys):
    from app.cli.main import main
    from app.graph.document import load

    graph = tmp_path / "graph.json"
    assert main(["data", "samples", "iris"]) == 0
    assert main(["new", "--template", "tabular_classification", "-o", str(graph)]) == 0
    assert main(["data", "configure", str(graph), "iris"]) == 0
    assert "shape: [30] -> [4]" in capsys.readouterr().out
    doc = load(graph)
    assert Workspace.current().dataset("iris").mismatches(doc) == []
    assert main(["data", "configure", str(graph), "iris"]) == 0
    assert "already fits iris" in capsys.readouterr().out


def test_a_zip_bomb_is_refused_before_anything_is_unpacked(workspace, tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("images/a/huge.png", b"\0" * (64 * 2**20))
    with pytest.raises(DataError, match=r"bomb.zip: member 'images/a/huge.png' unpacks"):
        Workspace.current().add_dataset(archive, "bomb")
    assert Workspace.current().datasets() == []


def test_adds_to_one_name_from_processes_started_together_lose_nothing(workspace, tmp_path):
    import subprocess
    import sys

    sources = []
    for i in range(3):
        path = tmp_path / f"part{i}.csv"
        rows = "".join(f"{(j * 7) % 13 + i / 10},{(j * 3) % 5},{'ab'[j % 2]}\n" for j in range(40))
        path.write_text("x,y,label\n" + rows)
        sources.append(path)
    code = "import sys; from app.cli.main import main; sys.exit(main(sys.argv[1:]))"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, "data", "add", str(path), "--name", "same"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        for path in sources
    ]  # a fresh workspace: the first use (git and DVC init) races too
    results = [(p.wait(timeout=600), p.stderr.read()) for p in processes]
    assert [code for code, _ in results] == [0, 0, 0], results
    # every add is a version of the dataset; the last one swapped in is what it holds
    assert len(Workspace.current().dataset_versions("same")) == 3
    held = Workspace.current().dataset("same").source().frame["x"].tolist()
    assert held in [[(j * 7) % 13 + i / 10 for j in range(40)] for i in range(3)]
