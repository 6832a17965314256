"""A workspace with one short finished training run per kind of task, made once per test session.

Tests of what comes after training (the test suite, exports, comparisons, the pages that show
them) copy it with `copy_trained` and work in the copy, so none of them trains a model:

    def test_something(trained_workspace):
        run = trained_workspace.runs["classification"]

Runs: "classification" (the tabular-classification template on iris, 3 classes), "binary"
(the same on breast cancer), "image" (the image-classification template on digits),
"regression" (the tabular-regression template on diabetes) and "segmentation" (the
image-segmentation template on the shapes sample). Each trains for a few epochs only: good
enough to have a best checkpoint and sensible metrics, not to reach the accuracy targets (those
are tested in test_runner.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RUNS = {
    # name: (sample, template, epochs)
    "classification": ("iris", "tabular_classification", 5),
    "binary": ("breast_cancer", "tabular_classification", 3),
    "image": ("digits", "image_classification", 2),
    "regression": ("diabetes", "tabular_regression", 20),
    "segmentation": ("shapes", "image_segmentation", 1),
}
SECONDS = 300


@dataclass
class TrainedWorkspace:
    root: Path
    runs: dict[str, Path]  # run name -> run directory in this workspace
    data: dict[str, str]  # run name -> dataset name


def configured(template: str, data: str):
    """The model template with its Input and Output set from the dataset."""
    from app.graph.model_templates import load_template
    from app.workspace import Workspace

    doc, _ = Workspace.current().dataset(data).configure(load_template(template))
    return doc


def make_trained(root: Path, plan: dict[str, tuple[str, str, int]] = RUNS) -> TrainedWorkspace:
    """Add the samples to `root` (the current workspace) and train the runs of `plan` (name:
    (sample, template, epochs)), side by side."""
    from app.data.samples import make_sample
    from app.train import launch
    from app.workspace import Workspace, runs

    folders, processes = {}, []
    for name, (sample, template, epochs) in plan.items():
        if sample not in [entry["name"] for entry in Workspace.current().datasets()]:
            with tempfile.TemporaryDirectory() as folder:
                Workspace.current().add_dataset(make_sample(sample, Path(folder) / sample), sample)
        doc = configured(template, sample).model_copy(deep=True)
        doc.meta.name = f"{name} model"
        folder = launch.create_run(doc, {"epochs": epochs, "seed": 1}, sample)
        folders[name] = folder
        processes.append(launch.start_run(folder))
    deadline = time.monotonic() + SECONDS
    for process in processes:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    for name, folder in folders.items():
        state = runs.status(folder)
        if state["state"] != "finished":
            log = (folder / runs.LOG).read_text()[-3000:]
            raise RuntimeError(f"the {name} run ended {state['state']}: {state['reason']}\n{log}")
    return TrainedWorkspace(
        root=root,
        runs={name: Path(folder).relative_to(root) for name, folder in folders.items()},
        data={name: sample for name, (sample, _, _) in plan.items()},
    )


def copy_trained(made: TrainedWorkspace, target: Path) -> TrainedWorkspace:
    shutil.copytree(made.root, target, symlinks=True)
    os.environ["LAYERFLOW_WORKSPACE"] = str(target)
    return TrainedWorkspace(
        root=target,
        runs={name: target / folder for name, folder in made.runs.items()},
        data=dict(made.data),
    )
