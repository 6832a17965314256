"""Benchmark: what a search finds on the digits sample, against the template's default, and
how long it takes on one and on two workers, in one run.

Run with `.venv/bin/python bench/bench_search.py` (about ten minutes on two cores; keep the
machine otherwise idle). In a temporary workspace:
  - the image-classification template, configured for digits, with its second convolution
    stage (conv2, pool2) made a Block, so that its repeat count can be searched;
  - the default: that graph trained once with the settings the trials start from;
  - the space: conv1's filters, the filters of the Block's convolution (conv2), the Dense
    units, the dropout rate, the Block's repeat count and the learning rate (log scale,
    around the default's);
  - every model, the default too, trained with the template's settings (30 epochs);
  - a search of TRIALS trials against parameters (NSGA-II), on one worker, then the same
    search on two workers;
  - a search of TRIALS trials for accuracy alone (TPE and the median pruner) under the
    constraint of at most half the default's parameters, on two workers.

Prints a Markdown table: the default's validation accuracy, parameters and latency; for each
search, the best validation accuracy found, the smallest model within 0.5 points of the
default's accuracy (parameters and latency), the trials' states and the wall time; then
whether any search met the goal: a model at least as accurate as the default with at most half
its parameters.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.runtime.training import DEFAULTS  # noqa: E402

TRIALS = 20
EPOCHS = DEFAULTS["epochs"]  # the template's own: it sets none
TOLERANCE = 0.005  # "within 0.5 points" of the default's accuracy


def main() -> None:
    workspace = Path(tempfile.mkdtemp(prefix="bench-search-"))
    os.environ["LAYERFLOW_WORKSPACE"] = str(workspace)
    from app.data.samples import make_sample
    from app.graph.document import Choice, Range, SearchSpace
    from app.graph.edit import make_block
    from app.graph.model_templates import load_template
    from app.search import launch
    from app.search import study as studies
    from app.search.spec import Constraint
    from app.train import launch as train_launch
    from app.train.settings import TrainingSettings
    from app.workspace import Workspace, runs

    with tempfile.TemporaryDirectory() as folder:
        Workspace.current().add_dataset(make_sample("digits", Path(folder) / "digits"), "digits")
    doc, _ = Workspace.current().dataset("digits").configure(load_template("image_classification"))
    doc = make_block(doc, ["conv2", "pool2"], "stage")
    block = next(n.id for n in doc.nodes if n.component == "Block")
    space = SearchSpace(
        settings={
            "conv1": {"filters": Choice(choices=[4, 8, 16, 32])},
            "stage/conv2": {"filters": Choice(choices=[4, 8, 16, 32])},  # inside the Block
            "dense": {"units": Choice(choices=[8, 16, 32, 64, 128])},
            "dropout": {"rate": Range(low=0.0, high=0.5)},
            block: {"repeat": Range(low=1, high=2, step=1)},
        },
        # the learning rate around the default's (3e-3)
        training={"learning_rate": Range(low=1e-3, high=1e-2, log=True)},
    )
    doc = doc.model_copy(update={"search": space})
    settings = TrainingSettings(epochs=EPOCHS, seed=1)

    print(f"workspace {workspace}; training the default ...", file=sys.stderr)
    folder = train_launch.create_run(doc.model_copy(update={"search": None}), settings, "digits")
    train_launch.start_run(folder).wait()
    default = _default_figures(folder, doc, settings)
    if runs.status(folder)["state"] != "finished":
        raise SystemExit(f"the default run ended {runs.status(folder)}")

    half = Constraint(measure="params", limit=default["params"] // 2)
    searches = {  # label: (workers, cost, constraints)
        "against params, 1 worker": (1, "params", []),
        "against params, 2 workers": (2, "params", []),
        f"accuracy, {half}, 2 workers": (2, None, [half]),
    }
    walls = {}
    found = {}
    for number, (label, (workers, cost, constraints)) in enumerate(searches.items()):
        print(f"searching {TRIALS} trials: {label} ...", file=sys.stderr)
        started = time.perf_counter()
        spec = launch.start_search(workspace, doc, "digits", TRIALS, settings, cost=cost,
                                   constraints=constraints, workers=workers,
                                   name=f"bench-{number}")  # fmt: skip
        while studies.summary(workspace, spec.name)["state"] == "running":
            time.sleep(2)
        walls[label] = time.perf_counter() - started
        found[label] = studies.summary(workspace, spec.name)

    print("| | val accuracy | parameters | latency ms |")
    print("|---|---|---|---|")
    print(f"| default (template, {EPOCHS} epochs) | {default['val_accuracy']:.4f} | "
          f"{default['params']:,} | {default['latency']:.3f} |")  # fmt: skip
    for label, summary in found.items():
        complete = [r for r in summary["rows"] if r["state"] == "complete"]
        best = max(complete, key=lambda r: r["val_accuracy"])
        close = [r for r in complete if r["val_accuracy"] >= default["val_accuracy"] - TOLERANCE]
        small = min(close, key=lambda r: r["params"]) if close else None
        print(f"| {label}: best | {best['val_accuracy']:.4f} | "
              f"{best['params']:,} ({best['params'] / default['params']:.0%}) | "
              f"{best['latency']:.3f} |")  # fmt: skip
        if small:
            print(f"| {label}: smallest within 0.5 points | {small['val_accuracy']:.4f} | "
                  f"{small['params']:,} ({small['params'] / default['params']:.0%}) | "
                  f"{small['latency']:.3f} |")  # fmt: skip
        else:
            print(f"| {label}: smallest within 0.5 points | none | | |")
        states = [r["state"] for r in summary["rows"]]
        print(f"| {label}: trials | {len(states)} ({states.count('complete')} complete, "
              f"{states.count('pruned')} pruned); wall {walls[label]:.0f} s | | |")  # fmt: skip
    goal = [(label, r) for label, summary in found.items() for r in summary["rows"]
            if r["state"] == "complete" and r["val_accuracy"] >= default["val_accuracy"]
            and r["params"] <= default["params"] / 2]  # fmt: skip
    if goal:
        label, row = min(goal, key=lambda found: found[1]["params"])
        print(f"\ngoal met: {label}, trial {row['trial']}: {row['val_accuracy']:.4f} with "
              f"{row['params']:,} parameters ({row['params'] / default['params']:.0%})")
    else:
        print("\ngoal not met: no trial as accurate as the default with at most half its "
              "parameters")
    one, two = walls["against params, 1 worker"], walls["against params, 2 workers"]
    print(f"\nwall time against params: 1 worker {one:.0f} s, 2 workers {two:.0f} s "
          f"({one / two:.2f}x)")  # fmt: skip


def _default_figures(folder: Path, doc, settings) -> dict:
    """The default run's best val_accuracy, parameters and latency, measured as trials are."""
    from app.graph.analysis import analyze
    from app.search.trial import costs
    from app.workspace.events import read_events

    events, _ = read_events(folder, {"epoch"})
    accuracy = max(e["metrics"]["val_accuracy"] for e in events)  # the best, as a trial's score
    graph = doc.model_copy(update={"search": None})
    measured = costs(folder, graph, settings)
    return {"val_accuracy": accuracy, "params": analyze(graph).totals()["params"],
            "latency": measured["latency"]}  # fmt: skip


if __name__ == "__main__":
    main()
