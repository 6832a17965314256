"""Searches (app.search): the objective and constraints as parsed, refusals before a study is
made, sampling, and studies on the iris sample run by real worker processes: trials as tagged
runs and DVC experiments, constraints pruning before training, a killed worker's trial failed
after the grace period, workers sharing a study in a database, stop and resume, and the
`layerflow search` verbs reading the same study."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from app.cli.main import build_parser, main
from app.cli.search import cmd_run, with_verb
from app.data.samples import make_sample
from app.graph.document import Choice, Range, SearchSpace, load, parse, save
from app.graph.model_templates import load_template
from app.graph.space import space_problems, trial_graph
from app.search import study as studies
from app.search.launch import start_search, with_space
from app.search.spec import Objective, SearchSpec, parse_constraint, parse_objective
from app.search.study import SearchError
from app.search.trial import suggest
from app.train.settings import TrainingSettings, settings_path
from app.workspace import Workspace, runs
from tests.graphs import chain_data
from tests.trained import configured

REPOSITORY = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")
TRAINED = ("complete", "pruned")  # the states of a trial that ended without a fault


# Workspaces and waiting


@pytest.fixture(scope="module")
def _iris_once(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("search") / "workspace"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERFLOW_WORKSPACE", str(root))
        with tempfile.TemporaryDirectory() as folder:
            Workspace.current().add_dataset(make_sample("iris", Path(folder) / "iris"), "iris")
    return root


@pytest.fixture
def iris(_iris_once: Path, workspace: Path):
    """The test's workspace with the iris sample; the search workers it started that still
    run are killed at the end."""
    shutil.copytree(_iris_once, workspace, symlinks=True)
    yield workspace
    end_workers(workspace)


def end_workers(root: Path) -> None:
    """Kill every local search worker of the workspace that is alive, and reap it."""
    for path in root.glob(f"{studies.FOLDER}/*/{studies.WORKERS}"):
        for worker in json.loads(path.read_text()):
            if runs.alive(worker["pid"], worker.get("pid_started")):
                os.kill(worker["pid"], signal.SIGKILL)
            reap(worker["pid"])


def reap(pid: int) -> None:
    """Wait for a worker this process started (a no-op for any other process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def iris_search():
    """The tabular-classification template on iris, with the space proposed from it."""
    doc, proposed = with_space(configured("tabular_classification", "iris"))
    assert proposed
    return doc


def until(found: Callable[[], Any], seconds: float, what: str, root: Path, name: str) -> Any:
    """found()'s first true answer, asked every 0.2 s for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while not (answer := found()):
        assert time.monotonic() < deadline, f"no {what} after {seconds:g}s\n{logs(root, name)}"
        time.sleep(0.2)
    return answer


def ended(root: Path, name: str, seconds: float, state: str = "finished") -> dict[str, Any]:
    """The study's summary once it reads `state`."""
    return until(
        lambda: (found := studies.summary(root, name))["state"] == state and found,
        seconds, f"{state} search {name}", root, name,
    )  # fmt: skip


def logs(root: Path, name: str) -> str:
    folder = root / studies.FOLDER / name
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in folder.glob("*.log"))


def training_run(root: Path, name: str) -> Path | None:
    """A run of the search whose runner is training now (its status says running)."""
    for row in Workspace.current().runs():
        if (row["search"] or {}).get("study") == name and row["state"] == "running":
            return Path(row["dir"])
    return None


def cli(capsys, *argv: str) -> Any:
    """`layerflow ARGV --json`'s answer; the command must succeed."""
    capsys.readouterr()
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


# The objective and constraints


@pytest.mark.parametrize("text, metric, direction", [
    ("val_accuracy:max", "val_accuracy", "maximize"),
    ("val_loss:min", "val_loss", "minimize"),
    ("val_loss", "val_loss", "minimize"),
    ("accuracy", "accuracy", "maximize"),
    (" val_mae:min ", "val_mae", "minimize"),
])  # fmt: skip
def test_an_objective_is_parsed_with_its_direction(text, metric, direction):
    assert parse_objective(text) == Objective(metric=metric, direction=direction)


@pytest.mark.parametrize("text", ["val_accuracy:up", ":max", "", "val_accuracy:max:min"])
def test_a_bad_objective_is_one_line_naming_the_argument(text):
    with pytest.raises(ValueError) as error:
        parse_objective(text)
    message = str(error.value)
    assert "\n" not in message and message.startswith("Received an invalid value for `objective`")
    assert repr(text) in message


@pytest.mark.parametrize("text, measure, limit", [
    ("params<=50000", "params", 50000),
    (" flops <= 1e6 ", "flops", 1e6),
    ("size<=200000", "size", 200000),
    ("latency<=5ms", "latency", 5),
    ("latency<=0.5", "latency", 0.5),
])  # fmt: skip
def test_a_constraint_is_parsed_with_its_limit(text, measure, limit):
    constraint = parse_constraint(text)
    assert (constraint.measure, constraint.limit) == (measure, limit)


@pytest.mark.parametrize("text, says", [
    ("params<50000", "expected one of params<=NUMBER"),
    ("memory<=5", "expected one of params<=NUMBER"),
    ("params<=5ms", "expected one of params<=NUMBER"),
    ("params<=", "expected one of params<=NUMBER"),
    ("params<=1e", "has no number"),
    ("params<=0", "must be above 0"),
])  # fmt: skip
def test_a_bad_constraint_is_one_line_naming_the_argument(text, says):
    with pytest.raises(ValueError) as error:
        parse_constraint(text)
    message = str(error.value)
    assert "\n" not in message and message.startswith("Received an invalid value for `constraint`")
    assert says in message and repr(text) in message


# Refusals before a study is made


def refused(root: Path, doc, data: str, trials: int = 2, **options: Any) -> list[str]:
    """start_search's problems; nothing may be written under searches/."""
    with pytest.raises(SearchError) as error:
        start_search(root, doc, data, trials, TrainingSettings(epochs=1), **options)
    assert not studies.searches_dir(root).exists()
    return error.value.problems


def test_a_search_on_an_unknown_dataset_is_refused_before_anything_is_written(workspace):
    doc, _ = with_space(load_template("tabular_classification"))
    assert refused(workspace, doc, "nowhere") == ["No dataset named 'nowhere' (datasets: none yet)"]


def test_an_objective_the_model_does_not_log_is_refused_naming_the_known_ones(iris):
    problems = refused(iris, iris_search(), "iris",
                       objective=Objective(metric="val_auc", direction="maximize"))  # fmt: skip
    assert len(problems) == 1
    assert problems[0].startswith("Received an invalid value for `objective`, expected one of ")
    assert "val_accuracy" in problems[0] and "val_loss" in problems[0]
    assert problems[0].endswith("Received: objective='val_auc'")


def test_a_space_over_a_training_setting_that_does_not_exist_is_refused(iris):
    space = SearchSpace(training={"learning_rat": Range(low=1e-4, high=1e-2, log=True)})
    doc, _ = with_space(configured("tabular_classification", "iris"), space)
    assert refused(iris, doc, "iris") == ["search.training.learning_rat: no training setting "
                                          "'learning_rat'"]  # fmt: skip


def test_a_budget_of_no_trials_is_refused(iris):
    problems = refused(iris, iris_search(), "iris", trials=0)
    assert problems == ["Received an invalid value for `trials`, expected a number >= 1. "
                        "Received: trials=0"]  # fmt: skip


# Sampling


def searched_graph(training: dict[str, Range | Choice]):
    """Input image -> Conv2D -> Flatten -> Dense -> Block -> Output, searching the kernel size
    (lists), the Dense units and the Block's repeat (ranges without a step), and `training`."""
    data = chain_data(
        ("image", "Input", {"shape": [8, 8, 1]}),
        ("conv", "Conv2D", {"filters": 4, "kernel_size": [3, 3]}),
        ("flat", "Flatten", {}),
        ("dense", "Dense", {"units": 16}),
        ("cells", "Block", {"block": "cell", "repeat": 1}),
        ("out", "Output", {"units": 3}),
    )
    data["blocks"] = {"cell": {
        "description": "a dense cell",
        "nodes": [{"id": "x", "component": "BlockInput", "settings": {"slot": 0}},
                  {"id": "d", "component": "Dense", "settings": {"units": 5}}],
        "edges": [{"source": "x", "target": "d"}],
        "output": "d",
    }}  # fmt: skip
    data["search"] = {
        "settings": {"conv": {"kernel_size": {"choices": [[3, 3], [5, 5]]}},
                     "dense": {"units": {"low": 8, "high": 64}},
                     "cells": {"repeat": {"low": 1, "high": 4}}},
        "training": {name: d.model_dump(exclude_none=True) for name, d in training.items()},
    }  # fmt: skip
    doc = parse(data)
    assert space_problems(doc) == []
    return doc


def sampled(doc, count: int = 8) -> list[dict[str, Any]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    return [suggest(study.ask(), doc) for _ in range(count)]


def test_suggest_gives_whole_numbers_to_int_settings_and_floats_to_a_log_learning_rate():
    doc = searched_graph({"learning_rate": Range(low=1e-4, high=1e-2, log=True),
                          "batch_size": Range(low=8, high=64)})  # fmt: skip
    for values in sampled(doc):
        for name, low, high in (("dense.units", 8, 64), ("cells.repeat", 1, 4),
                                ("training.batch_size", 8, 64)):  # fmt: skip
            assert type(values[name]) is int and low <= values[name] <= high, (name, values)
        rate = values["training.learning_rate"]
        assert type(rate) is float and 1e-4 <= rate <= 1e-2


def test_suggest_decodes_list_choices_which_the_trial_graph_takes():
    doc = searched_graph({})
    picks = [values["conv.kernel_size"] for values in sampled(doc, 12)]
    assert {tuple(p) for p in picks} == {(3, 3), (5, 5)} and all(type(p) is list for p in picks)
    graph = trial_graph(doc, {"conv.kernel_size": [5, 5]})
    assert next(n for n in graph.nodes if n.id == "conv").settings["kernel_size"] == [5, 5]


def test_suggest_gives_whole_numbers_to_an_int_training_setting_that_may_be_null():
    # patience is `int | None`: a range over it must be sampled as whole numbers, which
    # TrainingSettings takes (it refuses 5.0 as it does 5.4).
    doc = searched_graph({"patience": Range(low=2, high=10)})
    for values in sampled(doc):
        assert type(values["training.patience"]) is int, values
        assert TrainingSettings.from_dict({"patience": values["training.patience"]})


# Sampler, pruner and the command line's words


def spec_with(cost: str | None) -> SearchSpec:
    return SearchSpec(name="s", graph={}, data="iris", trials=6, cost=cost,
                      objective=Objective(metric="val_accuracy", direction="maximize"))  # fmt: skip


def test_the_median_pruner_prunes_a_search_without_a_cost_and_none_prunes_one_with_it():
    assert isinstance(studies.pruner(spec_with(None)), optuna.pruners.MedianPruner)
    assert isinstance(studies.pruner(spec_with("params")), optuna.pruners.NopPruner)
    assert isinstance(studies.sampler(spec_with(None)), optuna.samplers.TPESampler)
    assert isinstance(studies.sampler(spec_with("latency")), optuna.samplers.NSGAIISampler)
    assert spec_with("flops").directions == ["maximize", "minimize"]


def test_search_without_a_verb_is_search_run(iris, capsys):
    argv = ["search", "graph.json", "--data", "iris", "--trials", "3"]
    assert with_verb(argv) == ["search", "run", *argv[1:]]
    assert build_parser().parse_args(with_verb(argv)).handler is cmd_run
    for verb in ("list", "show", "worker", "space"):
        assert with_verb(["search", verb, "x"]) == ["search", verb, "x"]
    save(iris_search(), iris / "graph.json")
    capsys.readouterr()
    assert main(["search", str(iris / "graph.json"), "--data", "iris", "--trials", "0"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("layerflow")]
    assert errors == ["layerflow: error: Received an invalid value for `trials`, expected a "
                      "number >= 1. Received: trials=0"]  # fmt: skip
    assert not studies.searches_dir(iris).exists()


# Studies run by workers


@pytest.mark.slow
def test_a_search_trains_its_trials_as_tagged_runs_and_the_commands_agree(iris, capsys):
    start_search(iris, iris_search(), "iris", 6, TrainingSettings(epochs=2), workers=2,
                 name="six")  # fmt: skip
    found = ended(iris, "six", 150)
    rows = found["rows"]
    assert (found["done"], [r["trial"] for r in rows]) == (6, list(range(6)))
    assert all(r["state"] in TRAINED for r in rows), rows
    assert all(r["run"] for r in rows if r["state"] == "complete")
    assert all(r["run"] is None for r in rows if (r["reason"] or "").startswith("before"))
    # a run for each trial that trained, tagged with its search and trial
    tagged = {r["id"]: r["search"] for r in Workspace.current().runs()
              if (r["search"] or {}).get("study") == "six"}  # fmt: skip
    assert tagged == {r["run"]: {"study": "six", "trial": r["trial"]} for r in rows if r["run"]}
    by_number = {r["trial"]: r for r in rows}
    assert found["pareto"] and all(by_number[n]["state"] == "complete" for n in found["pareto"])
    assert by_number[found["best"]]["state"] == "complete"
    # each complete trial's run is a DVC experiment
    listed = subprocess.run([str(DVC), "exp", "list", "--name-only"], cwd=iris,
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert {r["run"] for r in rows if r["state"] == "complete"} <= set(listed.stdout.split())

    (row,) = [r for r in cli(capsys, "search", "list") if r["name"] == "six"]
    assert (row["state"], row["done"], row["objective"]) == ("finished", "6/6", "val_accuracy:max")
    assert row["best_trial"] == found["best"]
    assert row["best"] == by_number[found["best"]]["val_accuracy"]
    assert cli(capsys, "search", "show", "six") == json.loads(json.dumps(found))
    front = cli(capsys, "search", "best", "six", "--pareto")
    assert front == json.loads(json.dumps([by_number[n] for n in found["pareto"]]))

    chosen = by_number[found["best"]]
    out = iris / "out.json"
    cli(capsys, "search", "use", "six", str(chosen["trial"]), "-o", str(out))
    nodes = {node.id: node for node in load(out).nodes}
    for name, value in chosen["values"].items():
        node, _, setting = name.partition(".")
        if node != "training":
            assert nodes[node].settings[setting] == value, name
    settings = json.loads(settings_path(out).read_text())
    assert settings_path(out).name == "out.training.json"
    assert settings["learning_rate"] == chosen["values"]["training.learning_rate"]
    assert settings["epochs"] == 2


def test_a_constraint_nothing_keeps_prunes_every_trial_before_training(iris):
    start_search(iris, iris_search(), "iris", 3, TrainingSettings(epochs=2), workers=1,
                 constraints=[parse_constraint("params<=10")], name="tiny")  # fmt: skip
    found = ended(iris, "tiny", 90)
    # Pruned before training, they cost nothing and spend no budget: the search ends after
    # ATTEMPTS times its budget of tries, with no trial trained.
    assert found["done"] == 0 and found["constraints"] == ["params<=10"]
    assert found["state"] == "finished" and found["attempts"] == 3 * studies.ATTEMPTS
    assert {r["state"] for r in found["rows"]} == {"pruned"}
    for row in found["rows"]:
        assert row["reason"].startswith("before training: breaks params "), row["reason"]
        assert row["reason"].endswith(" > 10") and row["params"] > 10 and row["run"] is None
    assert not [r for r in Workspace.current().runs() if r["search"]]
    assert not list((iris / "models").glob("*/runs/*"))
    assert (found["best"], found["pareto"]) == (None, [])


@pytest.mark.slow
def test_a_killed_workers_trial_fails_after_the_grace_period_and_the_other_worker_goes_on(
    iris, monkeypatch
):
    monkeypatch.setenv(studies.GRACE, "8")  # here and in the workers
    start_search(iris, iris_search(), "iris", 3, TrainingSettings(epochs=20), workers=2,
                 name="killed")  # fmt: skip
    run_dir = until(lambda: training_run(iris, "killed"), 90, "training trial", iris, "killed")
    victim = runs.read_status(run_dir)["pid"]
    number = runs.read_info(run_dir)["search"]["trial"]
    assert victim in studies.summary(iris, "killed")["workers"]
    os.kill(victim, signal.SIGKILL)
    reap(victim)
    killed_at = time.monotonic()
    found = studies.summary(iris, "killed")
    assert found["rows"][number]["state"] == "running"  # within its grace period
    assert found["workers"] and victim not in found["workers"]

    found = ended(iris, "killed", 120)
    assert time.monotonic() - killed_at > studies.grace_seconds() - 2  # its last beat
    assert found["done"] == 3 and len(found["rows"]) == 3
    states = {r["trial"]: r["state"] for r in found["rows"]}
    assert states.pop(number) == "failed"
    assert all(state in TRAINED for state in states.values()), found["rows"]
    assert runs.status(run_dir)["state"] == "interrupted"


@pytest.mark.slow
def test_two_worker_processes_share_a_study_kept_in_a_database(iris, tmp_path):
    url = "sqlite:///" + str(tmp_path / "shared.db")
    start_search(iris, iris_search(), "iris", 4, TrainingSettings(epochs=10), workers=0,
                 name="shared", url=url)  # fmt: skip
    assert (tmp_path / "shared.db").is_file()
    assert not (iris / studies.FOLDER / "shared" / studies.DATABASE).exists()
    command = [sys.executable, "-m", "app.cli.main", "search", "worker", "shared",
               "--storage", url]  # fmt: skip
    env = {**os.environ, "LAYERFLOW_WORKSPACE": str(iris)}
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    processes = [subprocess.Popen(command, cwd=REPOSITORY, env=env, **output) for _ in range(2)]
    try:
        outputs = [process.communicate(timeout=150)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [p.returncode for p in processes] == [0, 0], outputs
    counts = [int(re.search(r"(\d+) trial\(s\) run by this worker", o)[1]) for o in outputs]
    assert min(counts) >= 1 and sum(counts) == 4, outputs
    found = studies.summary(iris, "shared")
    assert (found["state"], found["done"], found["storage"]) == ("finished", 4, url)
    assert [r["trial"] for r in found["rows"]] == [0, 1, 2, 3]
    assert all(r["state"] in TRAINED for r in found["rows"]), found["rows"]


@pytest.mark.slow
def test_a_stopped_search_leaves_the_stopped_trial_uncounted_and_resumes_to_its_budget(iris):
    start_search(iris, iris_search(), "iris", 3, TrainingSettings(epochs=10), workers=1,
                 name="paused")  # fmt: skip
    run_dir = until(lambda: training_run(iris, "paused"), 90, "training trial", iris, "paused")
    number = runs.read_info(run_dir)["search"]["trial"]
    assert studies.stop(iris, "paused") == [run_dir.name]

    found = ended(iris, "paused", 60, state="stopped")
    stopped = found["rows"][number]
    assert stopped["state"] == "failed" and stopped["reason"].startswith("stopped"), stopped
    assert found["done"] == len(found["rows"]) - 1
    assert runs.status(run_dir)["state"] == "stopped"

    assert len(studies.resume(iris, "paused", 1)) == 1
    found = ended(iris, "paused", 120)
    assert found["done"] == 3 and len(found["rows"]) == 4
    states = {r["trial"]: r["state"] for r in found["rows"]}
    assert states.pop(number) == "failed"
    assert all(state in TRAINED for state in states.values()), found["rows"]
    with pytest.raises(SearchError, match="is finished; only a stopped or interrupted"):
        studies.resume(iris, "paused", 1)


def test_a_choice_of_cells_takes_the_librarys_blocks_into_the_graph_and_names_unknown_ones(
    workspace,
):
    from app.search.launch import with_library_blocks

    doc = load_template("resnet_blocks")
    Workspace.current().save_block("wide_cell", doc.blocks["residual32"])
    space = SearchSpace(settings={"stage2": {"block": Choice(choices=["residual32", "wide_cell",
                                                                      "nowhere"])}})  # fmt: skip
    taken, problems = with_library_blocks(doc.model_copy(update={"search": space}))
    assert set(taken.blocks) == {"residual16", "residual32", "wide_cell"}
    assert taken.blocks["wide_cell"] == doc.blocks["residual32"]
    assert problems == ["search.settings.stage2.block: no block 'nowhere' in the graph or the "
                        "library (blocks: residual16, residual32, wide_cell)"]  # fmt: skip
    trial = trial_graph(taken, {"stage2.block": "wide_cell"})
    from app.graph.analysis import analyze

    assert analyze(trial).ok, [p.message for p in analyze(trial).errors]


def test_an_int_range_with_a_fractional_step_is_refused_before_a_search():
    doc = iris_search_doc_with({"dense1": {"units": Range(low=8, high=64, step=0.5)}})
    messages = [p.message for p in space_problems(doc)]
    assert messages == ["search.settings.dense1.units: units is a whole number: a step must be "
                        "a whole number >= 1"]  # fmt: skip


def iris_search_doc_with(settings):
    return load_template("tabular_classification").model_copy(
        update={"search": SearchSpace(settings=settings)})


def test_a_search_name_starts_with_a_letter_and_trial_paths_stay_in_the_workspace(workspace):
    assert studies.new_name("3 layers")[0].isalpha()
    (workspace / "models").mkdir(parents=True)
    assert studies.run_folder(workspace, "../outside") is None
    assert studies.run_folder(workspace, "/etc") is None
    assert studies.run_folder(workspace, "models") == (workspace / "models").resolve()
