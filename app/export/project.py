"""The standalone project: a folder that predicts with a run's model and retrains it without
LayerFlow.

It carries LayerFlow's runtime byte for byte (every module of app/runtime, as the package
`runtime/`) and the project's scripts as they are stored in templates/project/ (prepare.py,
train.py, evaluate.py, predict.py, which import that package); only small data files are
rendered from templates: params.yaml (the run's settings and preprocessing), dvc.yaml (stages
prepare, train and evaluate), requirements.txt and the README. Beside them: model.py (the
generated code of the run's graph), the Backbones' weights, a copy of the raw data under data/
and the model of raw inputs with its fitted preprocessing under model/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from app.errors import printable
from app.export.options import REPORT, ExportError
from app.files import atomic_write_text
from app.workspace import Workspace, runs

PROJECT_TEMPLATES = "project"
RUNTIME = Path(__file__).resolve().parents[1] / "runtime"  # app/runtime, copied verbatim
WEIGHTS = "weights"  # in an exported project: the Backbones' weights files, by workspace path


def write_project(folder: Path, run_dir: Path, model, dataset, source=None) -> list[str]:
    """Write the project into `folder`; returns the paths written, relative.

    Args:
        folder: an empty folder.
        run_dir: the run's directory.
        model: the run's model behind its preprocessing (`serving.with_preprocessing`).
        dataset: the run's dataset (app.workspace.datasets.Dataset) at the run's version.
        source: the dataset's source, if already read.
    """
    import yaml

    from app.data.anomaly import reconstructs
    from app.graph.codegen import TEMPLATES, Code, environment, generate_module
    from app.graph.document import load
    from app.train.settings import TrainingSettings, output_losses, output_metrics, params

    doc = load(run_dir / runs.GRAPH)
    info = runs.read_info(run_dir)
    settings = TrainingSettings.from_dict(json.loads((run_dir / runs.SETTINGS).read_text()))
    config, state = dataset.preprocessing()
    data = _copy_data(dataset, folder / "data", source)
    losses, metrics = output_losses(settings, doc), output_metrics(settings, doc)
    reconstructed = reconstructs(doc)  # an autoencoder's Input; its train.py refuses to retrain
    values = {
        "data": data,
        "preprocessing": {
            **config.model_dump(mode="json"),
            "features": [_feature_params(spec) for spec in config.features],
        },
        "train": {
            **params(settings),
            "outputs": {node: {"loss": losses[node], "metrics": metrics[node]} for node in losses},
            **({"reconstructs": reconstructed} if reconstructed else {}),
        },
    }
    atomic_write_text(folder / "model.py", generate_module(doc, weights_dir=WEIGHTS))
    weights = copy_weights(doc, folder)
    model_dir = folder / "model"
    model_dir.mkdir()
    model.save(model_dir / "model.keras")
    atomic_write_text(model_dir / "preprocessing.json", state.model_dump_json(indent=2) + "\n")
    written = ["model.py", *weights, "model/model.keras", "model/preprocessing.json"]
    (folder / "runtime").mkdir()
    modules = [f"runtime/{module.name}" for module in sorted(RUNTIME.glob("*.py"))]
    for module in modules:
        shutil.copyfile(RUNTIME.parent / module, folder / module)
    written += modules
    base = TEMPLATES / PROJECT_TEMPLATES
    for script in sorted(base.glob("*.py")):
        shutil.copyfile(script, folder / script.name)
        written.append(script.name)
    report = run_dir / REPORT
    summary = json.loads(report.read_text()).get("summary", {}) if report.is_file() else {}
    context = {
        "name": Code(printable(doc.meta.name)),
        "run": Code(info["id"]),
        "dataset": Code(printable(dataset.name)),
        "version": Code(str(info["data"]["version"])[:10]),
        "task": Code(printable(dataset.meta.get("task") or "")),
        "entry": Code(data.get("table") or data.get("arrays")),
        "params": Code(yaml.safe_dump(values, sort_keys=False)),
        "requirements": [Code(line) for line in _requirements(data)],
        "runtime": [Code(module) for module in modules],
        "summary": [
            Code(f"{key}: {value:.4g}" if isinstance(value, int | float) else f"{key}: {value}")
            for key, value in summary.items()
        ],
    }
    env = environment()
    for template in sorted(base.glob("*.j2")):  # dotfiles (.gitignore) too
        target = template.name.removesuffix(".j2")
        text = env.get_template(f"{PROJECT_TEMPLATES}/{template.name}").render(context)
        atomic_write_text(folder / target, text)
        written.append(target)
    return written + [f"data/{p}" for p in _relative_files(folder / "data")]


def copy_weights(doc, folder: Path) -> list[str]:
    """Copy the weights files the graph's Backbones load into folder/weights/, where the
    project's model.py (generated with weights_dir=WEIGHTS) looks; returns their paths there."""
    from app.graph.codegen import weights_files

    copied = []
    for relative in weights_files(doc):
        source = Workspace.current().path(relative)
        if not source.is_file():
            raise ExportError(f"{relative}: a Backbone's weights file, no longer in the workspace")
        copy = folder / WEIGHTS / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)
        copied.append(f"{WEIGHTS}/{relative}")
    return copied


def _feature_params(spec) -> dict[str, Any]:
    """A feature's settings for params.yaml: those of its kind only."""
    fields = {
        "numeric": ("method",),
        "categorical": ("method",),
        "passthrough": (),
        "image": ("height", "width", "grayscale", "normalize", "flip", "rotation", "zoom"),
        "text": ("vocab_size", "sequence_length"),
    }[spec.kind]
    return {"column": spec.column, "kind": spec.kind, **{f: getattr(spec, f) for f in fields}}


def _copy_data(dataset, target: Path, source=None) -> dict[str, Any]:
    """Copy the dataset's files (and its splits) into `target`; returns params.yaml's `data`:
    the table the rows are read from (for a folder of images, a table of the images' paths and
    labels written here) or the .npz file, and the splits."""
    from app.workspace.datasets import META, SPLITS, STATE

    shutil.copytree(
        dataset.folder, target, ignore=shutil.ignore_patterns(META, SPLITS, STATE), symlinks=False
    )
    atomic_write_text(target / "splits.json", json.dumps(dataset.splits) + "\n")
    entry = dataset.meta["entry"]
    kind = dataset.meta["kind"]
    data: dict[str, Any] = {"name": dataset.name, "version": dataset.version}
    if kind == "npz":
        data["arrays"] = f"data/{entry}"
    elif kind == "table":
        data["table"] = f"data/{entry}"
    else:  # a folder: its rows as read_source lists them, so that the splits index them
        rows = (source or dataset.source()).frame
        rows.to_csv(target / "rows.csv", index=False)
        data["table"] = "data/rows.csv"
    data["splits"] = "data/splits.json"
    data["fractions"] = dataset.meta.get("fractions", [0.7, 0.2, 0.1])
    data["seed"] = dataset.meta.get("seed", 0)
    return data


def _requirements(data: dict[str, Any]) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    def minor(package: str, fallback: str) -> str:
        try:
            return ".".join(version(package).split(".")[:2])
        except PackageNotFoundError:
            return fallback

    lines = [
        f"tensorflow=={minor('tensorflow-cpu', minor('tensorflow', '2.21'))}.*",
        f"keras>={minor('keras', '3.10')}",
        "numpy",
        "pandas",
        "charset-normalizer",  # runtime/tables.py
        f"pydantic>={minor('pydantic', '2.7')}",
        "pyyaml",
        "dvc",
    ]
    if str(data.get("table", "")).endswith(".parquet"):
        lines.append("pyarrow")
    return lines


def _relative_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
