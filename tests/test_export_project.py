"""The standalone project of every task LayerFlow trains (tabular classification and
regression, images, text, forecasting windows, segmentation), exported once (module fixture):
run from a copy of its folder in a process where `import app` fails, predict.py gives what
LayerFlow's own Predictor gives on the same raw rows, says a window that does not fit as
LayerFlow does, and the runtime it carries is LayerFlow's, byte for byte."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from app.paths import REPOSITORY
from tests.test_export import without_layerflow, write_report

pytestmark = pytest.mark.slow

# Runs trained here, beside those of tests/trained.py: name -> (sample, template, epochs).
EXTRA_RUNS = {
    "text": ("texts", "text_classification", 1),
    "forecasting": ("timeseries", "time_series_forecasting", 1),
    "anomaly": ("breast_cancer", "anomaly_autoencoder", 1),
}
TASKS = ("classification", "regression", "image", "text", "forecasting", "segmentation", "anomaly")
ROWS = {"segmentation": 3, "forecasting": 40}  # test rows predicted (default 16)
RUNTIME = REPOSITORY / "app" / "runtime"


@dataclass
class Projects:
    root: Path
    runs: dict[str, Path]
    data: dict[str, str]  # run -> dataset name
    folders: dict[str, Path]  # run -> its exported project


@pytest.fixture(scope="module")
def projects(_trained_once, tmp_path_factory):
    """A copy of the trained workspace, with a text and a forecasting run trained too, each run
    passing its tests and exported as a project."""
    from app.export.exporter import export_run
    from tests.trained import copy_trained, make_trained

    base = tmp_path_factory.mktemp("projects")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERFLOW_WORKSPACE", str(base / "workspace"))
        made = copy_trained(_trained_once, base / "workspace")
        extra = make_trained(made.root, EXTRA_RUNS)
        runs = {**made.runs, **{name: made.root / run for name, run in extra.runs.items()}}
        data = {**made.data, **extra.data}
        folders = {}
        for task in TASKS:
            write_report(runs[task])
            folders[task] = export_run(runs[task].name, "project")
        yield Projects(made.root, runs, data, folders)


def predict_script(folder: Path, tmp_path: Path, rows: list[int]) -> subprocess.CompletedProcess:
    """predict.py of a copy of the project on rows of its own data, without LayerFlow."""
    project = shutil.copytree(folder, tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    entry = params["data"].get("table") or params["data"]["arrays"]
    command = [sys.executable, "predict.py", entry, "--json"]
    command += ["--rows", ",".join(str(row) for row in rows)]
    return subprocess.run(
        command,
        cwd=project,
        env=without_layerflow(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_the_scripts_run_where_layerflow_cannot_be_imported(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", "import app"],
        cwd=tmp_path,
        env=without_layerflow(tmp_path),
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "LayerFlow is not needed here" in done.stderr


@pytest.mark.parametrize("task", TASKS)
def test_project_predicts_raw_test_rows_as_layerflows_predictor(projects, task, tmp_path):
    from app.export.exporter import run_predictor
    from app.workspace import Workspace

    dataset = Workspace.current().dataset(projects.data[task])
    rows = sorted(dataset.splits["test"])[: ROWS.get(task, 16)]
    expected = run_predictor(projects.runs[task]).predict_rows(dataset.source(), rows)
    done = predict_script(projects.folders[task], tmp_path, rows)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])["outputs"]
    assert sorted(found) == sorted(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(np.asarray(found[name]), values, rtol=0, atol=1e-5)


@pytest.mark.parametrize("gap", [False, True], ids=["short", "gapped"])
def test_a_window_that_does_not_fit_is_said_alike_by_the_project_and_layerflow(
    projects, gap, tmp_path
):
    from app.export.exporter import run_predictor
    from app.runtime.errors import DataError
    from app.workspace import Workspace

    dataset = Workspace.current().dataset(projects.data["forecasting"])
    test = sorted(dataset.splits["test"])
    # window 24, horizon 1: 20 rows are too few; so are two runs of 20 with a gap between
    rows = test[:20] + test[21:41] if gap else test[:20]
    with pytest.raises(DataError) as raised:
        run_predictor(projects.runs["forecasting"]).predict_rows(dataset.source(), rows)
    done = predict_script(projects.folders["forecasting"], tmp_path, rows)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"predict.py: {raised.value}"
    assert "consecutive rows" in str(raised.value)


def test_the_project_of_an_autoencoder_says_in_one_line_that_it_cannot_retrain_it(
    projects, tmp_path
):
    project = shutil.copytree(projects.folders["anomaly"], tmp_path / "project")
    done = subprocess.run([sys.executable, "train.py"], cwd=project, capture_output=True,
                          text=True, env=without_layerflow(tmp_path), timeout=240)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "train.py: the model is an autoencoder (it reconstructs its input 'features'), which "
        "this project cannot retrain yet; retrain it in LayerFlow with `layerflow train`"
    )


def test_project_runtime_is_layerflows_byte_for_byte(projects):
    for task, folder in projects.folders.items():
        carried = sorted(path.name for path in (folder / "runtime").glob("*.py"))
        assert carried == sorted(path.name for path in RUNTIME.glob("*.py")), task
        for name in carried:
            assert (folder / "runtime" / name).read_bytes() == (RUNTIME / name).read_bytes()
