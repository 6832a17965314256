"""Exports: every format written from a trained run once (module fixture), loaded and used to
predict raw test rows in a fresh process and compared with LayerFlow's predictions (transform,
then the trained model); the test-report gate and --force; parity; the metadata and the DVC
records; conversions of a two-input model; the standalone project, run without LayerFlow."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from app.paths import REPOSITORY

pytestmark = pytest.mark.slow

# What an export may differ from the model by, on probabilities in [0, 1].
TOLERANCE = {None: 1e-4, "dynamic": 5e-2, "float16": 1e-2, "int8": 0.15}
# name: (trained run, format, quantize)
EXPORTS = {
    "keras": ("classification", "keras", None),
    "savedmodel": ("classification", "savedmodel", None),
    "tflite": ("classification", "tflite", None),
    "tflite-dynamic": ("classification", "tflite", "dynamic"),
    "tflite-float16": ("classification", "tflite", "float16"),
    "tflite-int8": ("classification", "tflite", "int8"),
    "onnx": ("classification", "onnx", None),
    "project": ("classification", "project", None),
    "image-tflite": ("image", "tflite", None),
    "image-onnx": ("image", "onnx", None),
}
FRESH_PREDICTIONS = """
import json, sys
import numpy as np
from app.runtime.predictor import Predictor
for folder, inputs, output in json.loads(sys.argv[1]):
    with np.load(inputs, allow_pickle=False) as raw:
        found = Predictor.of_export(folder).predict({name: raw[name] for name in raw.files})
        np.save(output, found)
"""


@dataclass
class Exported:
    root: Path
    runs: dict[str, Path]
    folders: dict[str, Path]  # export name -> its folder
    raw: dict[str, dict[str, np.ndarray]]  # run -> raw test rows, read without LayerFlow
    expected: dict[str, np.ndarray]  # run -> LayerFlow's predictions for them
    fresh: dict[str, np.ndarray]  # export name -> its predictions, made in a fresh process


def write_report(run_dir: Path, passed: bool = True) -> dict:
    """A test report as `layerflow test` writes it: passing, or failing one gate and one check."""
    report = {
        "passed": passed,
        "summary": {"accuracy": 0.93 if passed else 0.41, "loss": 0.2},
        "gates": {
            "passed": passed,
            "results": [
                {
                    "metric": "accuracy",
                    "op": ">=",
                    "value": 0.9,
                    "actual": 0.93 if passed else 0.41,
                    "passed": passed,
                    "detail": "accuracy >= 0.9",
                }
            ],
        },
        "checks": [
            {"name": "no_nan", "passed": True, "value": None, "detail": ""},
            {"name": "calibration", "passed": passed, "value": 0.3, "detail": ""},
        ],
        "run": run_dir.name,
        "data": {},
        "created": time.time(),
    }
    (run_dir / "test").mkdir(exist_ok=True)
    (run_dir / "test" / "report.json").write_text(json.dumps(report))
    return report


def raw_test_rows(run: str, dataset) -> tuple[dict[str, np.ndarray], list[int]]:
    """Test rows as a user has them: the CSV's columns, or the PNG files' pixels."""
    from PIL import Image

    rows = sorted(dataset.splits["test"])[:32]
    if run == "classification":
        frame = pd.read_csv(dataset.folder / dataset.meta["entry"])
        features = [c for c in frame.columns if c != dataset.meta["target"]]
        return {c: frame[c].to_numpy(np.float32)[rows] for c in features}, rows
    paths = dataset.source().frame["image"].iloc[rows]
    pixels = [np.asarray(Image.open(dataset.folder / p), dtype=np.float32) for p in paths]
    return {"image": np.stack(pixels)[..., None]}, rows


def layerflow_predictions(run_dir: Path, dataset, rows: list[int]) -> np.ndarray:
    from app.keras import builder
    from app.runtime.transform import transform

    config, state = dataset.preprocessing()
    inputs, _ = transform(config, state, dataset.source(), rows)
    return builder.load_run_model(run_dir).predict(next(iter(inputs.values())), verbose=0)


@pytest.fixture(scope="module")
def exported(_trained_once, tmp_path_factory):
    """A copy of the trained workspace whose classification and image runs passed their tests,
    exported in every format once, and the exports' predictions made in a fresh process."""
    from app.export import exporter as export
    from app.workspace import Workspace
    from tests.trained import copy_trained

    base = tmp_path_factory.mktemp("exports")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERFLOW_WORKSPACE", str(base / "workspace"))
        made = copy_trained(_trained_once, base / "workspace")
        for run in ("classification", "image"):
            write_report(made.runs[run])
        folders = {
            name: export.export_run(made.runs[run].name, fmt, quantize)
            for name, (run, fmt, quantize) in EXPORTS.items()
        }
        raw, expected, jobs = {}, {}, []
        for run in ("classification", "image"):
            dataset = Workspace.current().dataset(made.data[run])
            raw[run], rows = raw_test_rows(run, dataset)
            expected[run] = layerflow_predictions(made.runs[run], dataset, rows)
            np.savez(base / f"{run}.npz", **raw[run])
        for name, (run, _, _) in EXPORTS.items():
            jobs.append([str(folders[name]), str(base / f"{run}.npz"), str(base / f"{name}.npy")])
        subprocess.run(
            [sys.executable, "-c", FRESH_PREDICTIONS, json.dumps(jobs)],
            cwd=REPOSITORY,
            check=True,
            capture_output=True,
            timeout=300,
        )
        fresh = {name: np.load(base / f"{name}.npy") for name in EXPORTS}
        yield Exported(made.root, made.runs, folders, raw, expected, fresh)


# Every format, from raw data, in a fresh process


@pytest.mark.parametrize("name", list(EXPORTS))
def test_export_predicts_raw_test_rows_in_a_fresh_process_as_layerflow_does(exported, name):
    run, _, quantize = EXPORTS[name]
    found, expected = exported.fresh[name], exported.expected[run]
    assert found.shape == expected.shape
    assert np.max(np.abs(found - expected)) <= TOLERANCE[quantize]
    agree = np.mean(found.argmax(axis=1) == expected.argmax(axis=1))
    assert agree >= (1.0 if quantize is None else 0.9)


def test_quantized_tflite_exports_are_smaller_than_float32(exported):
    size = {
        name: (exported.folders[name] / "model.tflite").stat().st_size
        for name in EXPORTS
        if name.startswith("tflite")
    }
    assert size["tflite-dynamic"] < size["tflite"]
    assert size["tflite-float16"] < size["tflite"]
    assert size["tflite-int8"] < size["tflite"]


def test_savedmodel_export_serves_a_signature_with_named_inputs(exported):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(exported.folders["savedmodel"] / "saved_model"))
    signature = loaded.signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    assert set(inputs) == set(exported.raw["classification"])
    outputs = signature(
        **{k: tf.constant(v[:, None]) for k, v in exported.raw["classification"].items()}
    )
    np.testing.assert_allclose(
        outputs["label"].numpy(), exported.expected["classification"], atol=1e-4
    )


def test_an_export_fills_a_missing_number_with_the_train_mean(exported):
    from app.runtime.predictor import Predictor
    from app.workspace import Workspace

    state = Workspace.current().dataset("iris").preprocessing()[1]
    raw = {name: values[:4].copy() for name, values in exported.raw["classification"].items()}
    column = next(iter(raw))
    raw[column][1] = np.nan
    filled = {**raw, column: raw[column].copy()}
    filled[column][1] = state.columns[column].mean
    predictor = Predictor.of_export(exported.folders["keras"])
    np.testing.assert_allclose(predictor.predict(raw), predictor.predict(filled), atol=1e-6)


# Metadata and versions


def test_the_exports_of_a_model_are_listed_with_their_metadata(exported, monkeypatch):
    from app.export import records

    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(exported.root))

    run = json.loads((exported.runs["classification"] / "run.json").read_text())
    listed = records.list_exports(run["model"])
    by_folder = {meta["folder"]: meta for meta in listed}
    mine = [f for f in exported.folders.values() if f.parent.parent.name == run["model"]]
    assert len(mine) > 1 and sorted(by_folder) == sorted(str(folder) for folder in mine)
    for folder in mine:
        meta = json.loads((folder / "metadata.json").read_text())
        assert by_folder[str(folder)] == {**meta, "folder": str(folder)}
    created = [meta["created"] for meta in listed]
    assert created == sorted(created, reverse=True)


def test_metadata_names_the_run_data_tests_files_and_parity(exported):
    folder = exported.folders["tflite-int8"]
    meta = json.loads((folder / "metadata.json").read_text())
    run = json.loads((exported.runs["classification"] / "run.json").read_text())
    report = json.loads((exported.runs["classification"] / "test" / "report.json").read_text())
    assert folder.name == f"{run['id']}-tflite-int8"
    assert folder.parent == exported.root / "models" / run["model"] / "exports"
    assert [meta["run"], meta["model"], meta["format"], meta["quantize"]] == [
        run["id"],
        run["model"],
        "tflite",
        "int8",
    ]
    assert meta["data"] == run["data"]
    assert meta["test"]["summary"] == report["summary"]
    assert (
        meta["gates"]["passed"] is True and meta["gates"]["results"] == report["gates"]["results"]
    )
    assert meta["forced"] is False and meta["forced_reason"] is None
    assert meta["parity"]["passed"] is True and meta["parity"]["split"] == "test"
    assert meta["parity"]["max_abs_diff"] <= meta["parity"]["tolerance"]
    assert [f["path"] for f in meta["files"]] == ["model.tflite"]
    assert meta["files"][0]["bytes"] == (folder / "model.tflite").stat().st_size
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert time.time() - meta["created"] < 3600


def test_every_export_is_recorded_by_dvc(exported):
    from app.workspace import versions

    for name, folder in exported.folders.items():
        recorded = versions.versions(folder)
        assert recorded, name
        assert versions.current(folder) == recorded[-1].version


def test_exporting_again_replaces_the_export_and_records_a_new_version(exported):
    from app.export import exporter as export
    from app.workspace import versions

    folder = exported.folders["keras"]
    before = json.loads((folder / "metadata.json").read_text())["created"]
    count = len(versions.versions(folder))
    again = export.export_run(exported.runs["classification"], "keras")
    assert again == folder
    assert json.loads((folder / "metadata.json").read_text())["created"] > before
    assert len(versions.versions(folder)) == count + 1
    assert not [p for p in folder.parent.iterdir() if p.name.startswith((".staging", ".old"))]


# The gate


def test_export_of_a_run_without_a_test_report_is_refused(exported, capsys):
    from app.cli import main as cli

    run = exported.runs["binary"]
    assert cli.main(["export", run.name, "--format", "keras"]) == 1
    message = capsys.readouterr().err
    assert f"Run '{run.name}' has no test report" in message
    assert f"layerflow test {run.name}" in message
    assert not (
        exported.root / "models" / "binary-model" / "exports" / f"{run.name}-keras"
    ).exists()


def test_export_of_a_failing_run_names_the_failed_gates_and_checks(exported):
    from app.export import exporter as export

    run = exported.runs["regression"]
    write_report(run, passed=False)
    with pytest.raises(export.ExportError) as refused:
        export.export_run(run.name, "keras")
    message = str(refused.value)
    assert f"Run '{run.name}' did not pass its tests" in message
    assert "accuracy >= 0.9 (actual 0.41)" in message
    assert "check calibration" in message and "no_nan" not in message
    assert "\n" not in message


def test_forced_export_of_a_failing_run_is_recorded_as_forced(exported, capsys):
    from app.cli import main as cli

    run = exported.runs["regression"]
    write_report(run, passed=False)
    assert cli.main(["export", run.name, "--format", "keras", "--force", "--json"]) == 0
    out = capsys.readouterr().out
    meta = json.loads(out[out.index("{") :])
    assert meta["forced"] is True
    assert "did not pass its tests" in meta["forced_reason"]
    assert meta["test"]["passed"] is False and meta["gates"]["passed"] is False
    assert (Path(meta["dir"]) / "model.keras").is_file()


def test_an_export_that_does_not_predict_as_the_model_is_refused_unless_forced(
    exported, monkeypatch
):
    from app.export import exporter as export
    from app.export import parity

    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(exported.root))
    monkeypatch.setitem(parity.TOLERANCES, "float16", 0.0)  # any difference fails parity
    run = exported.runs["classification"]
    with pytest.raises(export.ExportError, match="does not predict as the model does"):
        export.export_run(run.name, "tflite", "float16")
    folder = export.export_run(run.name, "tflite", "float16", force=True)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["forced"] is True and meta["parity"]["passed"] is False
    assert "does not predict as the model does" in meta["forced_reason"]


@pytest.mark.parametrize(
    ("fmt", "quantize", "message"),
    [
        ("pickle", None, "expected one of keras, savedmodel"),
        ("tflite", "int4", "expected one of dynamic, float16, int8"),
        ("onnx", "int8", "only tflite exports are quantized"),
    ],
)
def test_an_unknown_format_or_quantization_is_refused(workspace, fmt, quantize, message):
    from app.export import exporter as export

    with pytest.raises(export.ExportError, match=message):
        export.export_run("20260101-000000-abcdef", fmt, quantize)


# Parity and conversions of any model


def two_input_model():
    import keras

    keras.utils.set_random_seed(3)
    numbers = keras.Input((3,), name="numbers")
    image = keras.Input((6, 6, 1), name="pixels")
    x = keras.layers.Conv2D(4, 3, activation="relu")(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Concatenate()([x, keras.layers.Dense(4, activation="relu")(numbers)])
    y = keras.layers.Dense(3, activation="softmax", name="label")(x)
    return keras.Model({"numbers": numbers, "pixels": image}, y)


def two_inputs(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "numbers": rng.normal(size=(rows, 3)).astype(np.float32),
        "pixels": rng.uniform(0, 1, size=(rows, 6, 6, 1)).astype(np.float32),
    }


def test_parity_checks_each_format_of_a_two_input_model():
    from app.export.parity import parity

    results = parity(two_input_model(), two_inputs(8), ("keras", "savedmodel", "tflite", "onnx"))
    assert [r["format"] for r in results] == ["keras", "savedmodel", "tflite", "onnx"]
    for result in results:
        assert result["passed"], result["detail"]
        assert 0.0 <= result["max_abs_diff"] <= 1e-3


def test_the_forecasting_templates_unrolled_lstms_run_in_tflite_without_select_tf_ops():
    from app.export.parity import parity
    from app.graph.model_templates import load_template
    from app.keras.builder import build_model

    model = build_model(load_template("time_series_forecasting"))
    window = np.random.default_rng(0).normal(size=(4, 24, 1)).astype(np.float32)
    [tflite] = parity(model, {"window": window}, ("tflite",))
    assert tflite["passed"], tflite["detail"]


def test_parity_reports_a_format_that_cannot_convert_the_model():
    import keras

    from app.export.parity import parity

    words = keras.Input((1,), dtype="string", name="color")
    found = keras.layers.StringLookup(vocabulary=["red", "blue"], output_mode="one_hot")(words)
    model = keras.Model(words, keras.layers.Dense(2)(found))
    [onnx] = parity(model, {"color": np.array([["red"], ["green"]], dtype=object)}, ("onnx",))
    assert onnx["passed"] is False and onnx["max_abs_diff"] is None
    assert "string input(s) color" in onnx["detail"]


@pytest.mark.parametrize("quantize", ["dynamic", "int8"])
def test_a_quantized_tflite_two_input_model_predicts_close_to_keras(tmp_path, quantize):
    from app.export.formats import write_model
    from app.runtime.predictor import Predictor, input_specs, keras_predict, output_names

    model = two_input_model()
    written = write_model(
        model, "tflite", tmp_path, quantize, representative=two_inputs(50, seed=1)
    )
    assert written == ["model.tflite"]
    batch = two_inputs(16, seed=2)
    loaded = Predictor.load(tmp_path, "tflite", input_specs(model), output_names(model))
    found = loaded.predict(batch)
    expected = keras_predict(model, batch)["label"]
    assert np.max(np.abs(found - expected)) <= TOLERANCE[quantize]


# The standalone project


def test_project_does_not_import_layerflow(exported):
    folder = exported.folders["project"]
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [n for n in names if n == "app" or n.startswith("app.")], path.name


def test_project_holds_its_data_model_pipeline_and_readme(exported):
    folder = exported.folders["project"]
    names = ["model.py", "runtime/serving.py", "prepare.py", "train.py", "evaluate.py"]
    names += ["predict.py", "params.yaml", "dvc.yaml", "requirements.txt", "README.md"]
    for name in [*names, "data/iris.csv", "data/splits.json", "model/model.keras"]:
        assert (folder / name).is_file(), name
    pipeline = yaml.safe_load((folder / "dvc.yaml").read_text())
    assert list(pipeline["stages"]) == ["prepare", "train", "evaluate"]
    params = yaml.safe_load((folder / "params.yaml").read_text())
    settings = json.loads((exported.runs["classification"] / "settings.json").read_text())
    assert {k: params["train"][k] for k in settings} == settings
    assert params["train"]["outputs"] == {
        "label": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
    }


def without_layerflow(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import app` fails: a stand-in comes first on the path."""
    blocker = tmp_path / "blocker" / "app"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('LayerFlow is not needed here')\n")
    return {
        **os.environ,
        "PYTHONPATH": str(blocker.parent),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def test_project_predict_script_gives_layerflows_predictions(exported, tmp_path):
    project = shutil.copytree(exported.folders["project"], tmp_path / "project")
    rows = pd.DataFrame(exported.raw["classification"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    done = subprocess.run(
        [sys.executable, "predict.py", str(tmp_path / "rows.csv"), "--json"],
        cwd=project,
        env=without_layerflow(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    expected = exported.expected["classification"]
    np.testing.assert_allclose(np.asarray(found["outputs"]["label"]), expected, atol=1e-4)
    classes = ["setosa", "versicolor", "virginica"]
    assert found["labels"] == [classes[i] for i in expected.argmax(axis=1)]


def test_project_retrains_with_dvc_repro_without_layerflow(exported, tmp_path):
    project = shutil.copytree(exported.folders["project"], tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["epochs"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shipped = (project / "model" / "model.keras").read_bytes()
    env = without_layerflow(tmp_path)
    dvc = str(Path(sys.executable).parent / "dvc")
    for command in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "repro"]):
        done = subprocess.run(
            command, cwd=project, env=env, capture_output=True, text=True, timeout=240
        )
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"prepare", "train", "evaluate"}
    history = json.loads((project / "model" / "history.json").read_text())
    assert len(history["history"]["loss"]) == 1 and history["best_epoch"] == 1
    assert sorted(p.name for p in (project / "model").iterdir()) == [
        "history.json", "model.keras", "preprocessing.json"
    ]
    assert (project / "model" / "model.keras").read_bytes() != shipped
    metrics = json.loads((project / "metrics.json").read_text())
    assert metrics["split"] == "test" and 0.0 <= metrics["accuracy"] <= 1.0
    # prepare fitted on the train split what LayerFlow fitted
    fitted = json.loads((project / "prepared" / "preprocessing.json").read_text())
    assert fitted == json.loads((exported.root / "data" / "iris" / "state.json").read_text())
