"""A search's study: where it is kept, its trials as rows, its best trials, stop and resume.

Optuna keeps the study: its trials, their sampled values, scores and user attributes, and the
search as asked (app.search.spec), so that a worker needs only the study's name and storage.
In the workspace, searches/<name>/ holds the study's SQLite file (or, for a study kept in a
database elsewhere, storage.json with its URL), the local workers' pids and their logs.

Workers beat a heartbeat into the storage: a trial whose worker was killed is marked failed by
the next reader once `grace_seconds()` pass without a beat. Stopping is a flag in the study, which
every worker reads before a trial, wherever it runs.

Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from app.errors import one_line
from app.files import atomic_write_text, locked
from app.paths import NAME_PATTERN, inside, named
from app.runtime.training import DEFAULTS
from app.search.spec import COST_UNITS, SearchSpec
from app.workspace import runs
from app.workspace.runs import alive, spawn

FOLDER = "searches"
DATABASE, STORAGE, WORKERS, LOCK, BUDGET_LOCK = (
    "study.db", "storage.json", "workers.json", ".lock", ".budget.lock"
)  # fmt: skip
GRACE = "LAYERFLOW_SEARCH_GRACE"  # seconds without a heartbeat before a trial is failed (20)
ATTEMPTS = 10  # trials pruned before training: at most this many times the budget in all
STOPPING = "stopping"  # the study's user attribute that asks workers to start no more trials
DEFAULT_COST = "params"  # the cost a Pareto front is drawn against when the search has none
STATES = {  # Optuna's trial states, as LayerFlow says them
    "COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
    "WAITING": "waiting",
}  # fmt: skip

optuna.logging.set_verbosity(optuna.logging.WARNING)
# fail_stale_trials, which the heartbeat needs, is marked experimental since Optuna 2.9.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class SearchError(ValueError):
    """A search that cannot be made or found; one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"search: cannot start, {len(problems)} problems\n{lines}"
            if len(problems) > 1
            else problems[0]
        )


# Where studies are


def searches_dir(root: Path) -> Path:
    return root / FOLDER


def folder_of(root: Path, name: str) -> Path:
    return named(searches_dir(root), name)


def new_name(model: str) -> str:
    """<model>-<date>-<time>: the model's slug (after an s when it does not start with a
    letter), then when the search was made."""
    slug = runs.model_slug(model)[:40]
    slug = slug if slug[:1].isalpha() else f"s{slug}"
    return f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}"


def storage_url(root: Path, name: str) -> str:
    """The study's storage: the database URL it was made with, or its SQLite file."""
    folder = folder_of(root, name)
    recorded = folder / STORAGE
    if recorded.is_file():
        return json.loads(recorded.read_text())["url"]
    return f"sqlite:///{folder / DATABASE}"


def grace_seconds() -> int:
    """How long a running trial may go without its worker's heartbeat (LAYERFLOW_SEARCH_GRACE,
    20 s by default) before it reads as failed; workers beat four times in that time, at most
    every 5 s."""
    try:
        return max(2, int(os.environ.get(GRACE, "20")))
    except ValueError:
        return 20


def storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage of `url`, with the heartbeat that finds killed workers' trials."""
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    grace = grace_seconds()
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=max(1, min(5, grace // 4)),
            grace_period=grace,
        )
    except Exception as error:  # sqlalchemy's errors: a bad URL, a driver missing, no server
        message = f"Cannot open the study storage {_shown(url)}: {one_line(error)}"
        raise SearchError([message]) from None


def _shown(url: str) -> str:
    """A URL without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


# Making and opening


def create(root: Path, spec: SearchSpec, url: str | None = None) -> Path:
    """Make the study (in searches/<name>/study.db, or in the database at `url`) and its
    folder; refuses a name in use."""
    folder = folder_of(root, spec.name)
    if folder.exists():
        raise SearchError([f"A search named {spec.name!r} exists already ({folder})"])
    folder.mkdir(parents=True)
    if url:
        atomic_write_text(folder / STORAGE, json.dumps({"url": url}) + "\n")
    try:
        study = optuna.create_study(
            storage=storage(url or storage_url(root, spec.name)),
            study_name=spec.name,
            directions=spec.directions,
        )
    except optuna.exceptions.DuplicatedStudyError:
        _remove(folder)
        raise SearchError([f"The storage already has a study named {spec.name!r}"]) from None
    except Exception:
        _remove(folder)
        raise
    study.set_user_attr("spec", spec.model_dump(mode="json"))
    return folder


def _remove(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def join(root: Path, name: str, url: str) -> Path:
    """Make the local folder of a study kept in the database at `url` (a worker on another
    machine joining it)."""
    folder = folder_of(root, name)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / STORAGE, json.dumps({"url": url}) + "\n")
    return folder


def load(root: Path, name: str, worker: int | None = None) -> tuple[optuna.Study, SearchSpec]:
    """The study and its spec, with the sampler and pruner its search asks for (seeded by the
    worker's index and the trials so far, so that parallel workers, and a resumed search, do not
    sample alike)."""
    if not folder_of(root, name).is_dir():
        known = ", ".join(list_names(root)) or "none yet"
        raise SearchError([f"No search {name!r} (searches: {known})"])
    url = storage_url(root, name)
    try:
        study = optuna.load_study(study_name=name, storage=storage(url))
    except KeyError:
        known = ", ".join(list_names(root)) or "none yet"
        raise SearchError([f"No search {name!r} (searches: {known})"]) from None
    spec = SearchSpec.model_validate(study.user_attrs["spec"])
    study.sampler = sampler(spec, None if worker is None else worker + 7919 * len(study.trials))
    study.pruner = pruner(spec)
    return study, spec


def sampler(spec: SearchSpec, worker: int | None = None) -> optuna.samplers.BaseSampler:
    """TPE for one objective, NSGA-II for the metric against a cost; both keep clear of
    trials that broke a constraint (app.search.trial.record_constraints tells them). TPE
    models the values together (multivariate: a wide layer after a narrow one is a different
    model) and counts the trials other workers are running as bad for now (constant_liar), so
    that two workers do not sample the same model."""
    seed = None if worker is None else spec.seed * 1000 + worker
    if spec.cost:
        population = max(4, min(50, spec.trials // 2))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    startup = max(2, min(10, spec.trials // 3))
    return optuna.samplers.TPESampler(
        n_startup_trials=startup, seed=seed, multivariate=True, constant_liar=True
    )


def pruner(spec: SearchSpec) -> optuna.pruners.BasePruner:
    """The median pruner on the epoch metric (Optuna prunes single-objective studies only),
    from the third of a trial's epochs on: small models start slower, and pruning them at
    their first epochs would favour the large."""
    if spec.cost:
        return optuna.pruners.NopPruner()
    epochs = int(spec.settings.get("epochs", DEFAULTS["epochs"]))
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 3))


# Reading


def list_names(root: Path) -> list[str]:
    folder = searches_dir(root)
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir() if p.is_dir() and re.fullmatch(NAME_PATTERN, p.name)
    )


def rows(study: optuna.Study, spec: SearchSpec) -> list[dict[str, Any]]:
    """One row per trial, in order: its state, score, costs, sampled values, run and reason."""
    found = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        state = STATES[trial.state.name]
        if state == "complete" and attrs.get("infeasible"):
            state = "infeasible"
        found.append(
            {
                "trial": trial.number,
                "state": state,
                spec.objective.metric: trial.values[0] if trial.values else None,
                **{cost: attrs.get(cost) for cost in COST_UNITS},
                "run": attrs.get("run"),
                "run_dir": attrs.get("run_dir"),  # in the workspace of the worker that ran it
                "reason": attrs.get("reason"),
                "epochs": len(trial.intermediate_values) or attrs.get("epochs"),
                "seconds": trial.duration.total_seconds() if trial.duration else None,
                "values": dict(trial.params),
            }
        )
    return found


def counted(study: optuna.Study) -> int:
    """The trials the budget has spent: those that trained or train now. A trial pruned before
    training cost nothing and does not count (the samplers learn from it all the same); nor
    does one the user stopped."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state != optuna.trial.TrialState.WAITING
        and not t.user_attrs.get("stopped")
        and not t.user_attrs.get("before_training")
    )


def exhausted(study: optuna.Study, spec: SearchSpec) -> bool:
    """Whether the search has tried ATTEMPTS times its budget: a space or constraints that
    leave (almost) nothing to train end the search there."""
    return len(study.get_trials(deepcopy=False)) >= spec.trials * ATTEMPTS


def spent(study: optuna.Study, spec: SearchSpec) -> bool:
    return counted(study) >= spec.trials or exhausted(study, spec)


def workers(root: Path, name: str) -> list[dict[str, Any]]:
    """This machine's worker processes of the study that are alive."""
    path = folder_of(root, name) / WORKERS
    recorded = json.loads(path.read_text()) if path.is_file() else []
    return [w for w in recorded if alive(w["pid"], w.get("pid_started"))]


def state(root: Path, name: str, study: optuna.Study, spec: SearchSpec) -> str:
    """running (a worker here is alive), finished (the budget is spent), stopped, or
    interrupted (no worker here and trials still to run)."""
    if workers(root, name):
        return "running"
    if spent(study, spec) and not any(
        t.state == optuna.trial.TrialState.RUNNING for t in study.get_trials(deepcopy=False)
    ):
        return "finished"
    return "stopped" if study.user_attrs.get(STOPPING) else "interrupted"


def refresh(study: optuna.Study) -> None:
    """Mark failed the running trials whose worker stopped beating (killed, or its machine
    gone), as workers do before each trial."""
    optuna.storages.fail_stale_trials(study)


def summary(root: Path, name: str) -> dict[str, Any]:
    """All that `search show` and the Search page say of a study."""
    study, spec = load(root, name)
    refresh(study)
    found = rows(study, spec)
    front = pareto(study, spec)
    return {
        "name": name,
        "model": spec.graph.get("meta", {}).get("name"),
        "data": spec.data,
        "state": state(root, name, study, spec),
        "trials": spec.trials,
        "done": counted(study),
        "attempts": len(found),
        "skipped": sum(1 for t in study.get_trials(deepcopy=False)
                       if t.user_attrs.get("before_training")),  # pruned before training
        "objective": str(spec.objective),
        "cost": spec.cost,
        "constraints": [str(c) for c in spec.constraints],
        "storage": _shown(storage_url(root, name)),
        "workers": [w["pid"] for w in workers(root, name)],
        "best": best(study, spec),
        "pareto": [t["trial"] for t in front],
        "rows": found,
    }


def feasible(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The complete trials that kept every constraint."""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not t.user_attrs.get("infeasible")
    ]


def best(study: optuna.Study, spec: SearchSpec) -> int | None:
    """The feasible trial with the best metric (the cheaper one among equals), or None."""
    trials = feasible(study)
    if not trials:
        return None
    sign = -1 if spec.objective.direction == "maximize" else 1
    cost = spec.cost or DEFAULT_COST
    chosen = min(trials, key=lambda t: (sign * t.values[0], t.user_attrs.get(cost) or 0))
    return chosen.number


def pareto(study: optuna.Study, spec: SearchSpec, cost: str | None = None) -> list[dict[str, Any]]:
    """The feasible trials no other trial beats on both the metric and the cost (the search's
    cost, else `cost`, else parameters), best metric first: found by Optuna, from the trials
    copied into a two-objective study in memory."""
    cost = cost or spec.cost or DEFAULT_COST
    scored = [t for t in feasible(study) if t.user_attrs.get(cost) is not None]
    if not scored:
        return []
    front = optuna.create_study(directions=[spec.objective.direction, "minimize"])
    for t in scored:
        front.add_trial(
            optuna.trial.create_trial(
                values=[t.values[0], float(t.user_attrs[cost])],
                user_attrs={"number": t.number},
            )
        )
    numbers = {t.user_attrs["number"] for t in front.best_trials}
    sign = -1 if spec.objective.direction == "maximize" else 1
    chosen = sorted((t for t in scored if t.number in numbers), key=lambda t: sign * t.values[0])
    return [
        {"trial": t.number, spec.objective.metric: t.values[0], cost: t.user_attrs[cost]}
        for t in chosen
    ]


def trial_of(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise SearchError([f"Received an invalid value for `trial`, expected 0 to "
                           f"{len(trials) - 1}. Received: trial={number}"])  # fmt: skip
    return trials[number]


def list_studies(root: Path) -> list[dict[str, Any]]:
    """One line per search in the workspace: its model, data, state, trials done and best."""
    found = []
    for name in list_names(root):
        try:
            study, spec = load(root, name)
        except (SearchError, KeyError, ValueError) as error:
            found.append({"name": name, "state": f"unreadable: {error}"})
            continue
        refresh(study)
        chosen = best(study, spec)
        found.append(
            {
                "name": name,
                "model": spec.graph.get("meta", {}).get("name"),
                "data": spec.data,
                "state": state(root, name, study, spec),
                "done": f"{counted(study)}/{spec.trials}",
                "objective": str(spec.objective),
                "best": None if chosen is None else study.trials[chosen].values[0],
                "best_trial": chosen,
                "created": spec.created,
            }
        )
    return sorted(found, key=lambda row: row.get("created") or 0, reverse=True)


# Steering


def start_workers(root: Path, name: str, count: int) -> list[int]:
    """Start `count` worker processes on this machine (`python -m app.search FOLDER --index
    I`), each in its own session; their pids."""
    folder = folder_of(root, name)
    pids = []
    with locked(folder / LOCK):
        known = workers(root, name)
        taken = {w.get("index") for w in known}
        free = (i for i in range(count + len(known)) if i not in taken)
        for _, index in zip(range(count), free, strict=False):
            process, started = spawn(
                root, "app.search", folder, folder / f"worker-{index}.log",
                {"LAYERFLOW_SEARCH_WORKER": str(index)},
            )  # fmt: skip
            known.append({"pid": process.pid, "pid_started": started, "index": index})
            pids.append(process.pid)
        atomic_write_text(folder / WORKERS, json.dumps(known) + "\n")
    return pids


def stop(root: Path, name: str) -> list[str]:
    """Ask every worker to start no more trials, and the trials running here to stop at their
    next batch (they are marked stopped and do not count against the budget); the runs asked."""
    study, _ = load(root, name)
    study.set_user_attr(STOPPING, True)
    asked = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        folder = run_folder(root, trial.user_attrs.get("run_dir"))
        if folder is not None:
            try:
                runs.stop(folder)
                asked.append(trial.user_attrs["run"])
            except ValueError:  # finished meanwhile
                pass
    return asked


def run_folder(root: Path, run_dir: Any) -> Path | None:
    """A trial's run directory in this workspace, or None: the study may come from a database
    shared with other machines, so its paths are kept inside the workspace."""
    if not isinstance(run_dir, str) or not run_dir:
        return None
    try:
        folder = inside(root, run_dir)
    except ValueError:
        return None
    return folder if folder.is_dir() else None


def resume(root: Path, name: str, count: int = 1) -> list[int]:
    """Start workers again for a stopped or interrupted study, which go on to its budget."""
    study, spec = load(root, name)
    refresh(study)
    current = state(root, name, study, spec)
    if current in ("running", "finished"):
        raise SearchError([f"Search {name!r} is {current}; only a stopped or interrupted "
                           "search can be resumed"])  # fmt: skip
    study.set_user_attr(STOPPING, False)
    return start_workers(root, name, count)

