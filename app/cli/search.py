"""`layerflow search`: search over a graph's settings and structure (app.search).

    layerflow search GRAPH --data NAME --trials N [--workers K] ...   make a search and follow it
    layerflow search list | show STUDY | stop STUDY | resume STUDY
    layerflow search best STUDY [--pareto]
    layerflow search use STUDY TRIAL -o graph.json
    layerflow search worker STUDY [--storage URL]                     join a study from here
    layerflow search space GRAPH [--propose]                          the graph's space, checked
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from app.cli.command import CommandError, add_command
from app.cli.output import emit, step, table, visible, when
from app.graph.document import SearchSpace, load, save
from app.graph.space import described, dimensions, propose, space_problems

VERBS = ("run", "list", "show", "stop", "resume", "best", "use", "worker", "space")
POLL_SECONDS = 2.0


def cmd_space(args: argparse.Namespace) -> int:
    doc = load(args.graph)
    if args.propose:
        doc = doc.model_copy(update={"search": propose(doc)})
    if args.output:
        save(doc, args.output)
    problems = [p.message for p in space_problems(doc)]
    found = dimensions(doc.search) if doc.search else {}
    rows = [{"name": name, "values": described(dimension)} for name, dimension in found.items()]
    text = table(rows, ["name", "values"]) if rows else f"{args.graph}: no search space"
    text += "".join(f"\nerror: {message}" for message in problems)
    if args.output:
        text += f"\nwrote {args.output}"
    data = {"dimensions": {n: d.model_dump() for n, d in found.items()}, "problems": problems}
    emit(args, data, text)
    return 1 if problems else 0


def cmd_run(args: argparse.Namespace) -> int:
    from app.search import launch
    from app.search.spec import parse_constraint, parse_objective
    from app.train.settings import load_settings
    from app.workspace import Workspace

    root = Workspace.current().root
    doc = load(args.graph)
    space = None
    if args.space:
        try:
            space = SearchSpace.model_validate_json(Path(args.space).read_text())
        except ValueError as error:  # pydantic's, one line per fault
            raise CommandError(f"{args.space}: not a search space: {_first(error)}") from None
    doc, proposed = launch.with_space(doc, space)
    if proposed:
        step(f"{args.graph} has no search space: searching the one proposed from it "
             "(see `layerflow search space GRAPH --propose`)")  # fmt: skip
    settings = load_settings(args.graph)
    if args.epochs is not None:
        settings = settings.with_changes(epochs=args.epochs)
    spec = launch.start_search(
        root, doc, args.data, args.trials, settings,
        objective=parse_objective(args.objective) if args.objective else None,
        cost=args.cost,
        constraints=[parse_constraint(c) for c in args.constraint or []],
        workers=args.workers, name=args.name, url=args.storage,
        command=["layerflow", "search", *sys.argv[2:]],
    )  # fmt: skip
    if args.detach:
        print(spec.name)
        return 0
    step(f"search {spec.name}: {spec.trials} trials of {spec.objective}"
         f"{f' against {spec.cost}' if spec.cost else ''} on {args.workers} worker(s); "
         "Ctrl-C leaves it running")  # fmt: skip
    return _follow(root, spec.name, args)


def _follow(root: Path, name: str, args: argparse.Namespace) -> int:
    """Print each trial's end as it comes, until the workers are done (or --timeout passes,
    which stops the search); then the trials, or with --json the study and its trials."""
    from app.search import study as studies

    started, said, stopped = time.monotonic(), {}, False
    try:
        while True:
            found = studies.summary(root, name)
            for row in found["rows"]:
                if said.get(row["trial"]) != row["state"] and row["state"] != "running":
                    if not args.json:
                        print(_trial_line(row, found), flush=True)
                said[row["trial"]] = row["state"]
            if found["state"] != "running":
                break
            if args.timeout and not stopped and time.monotonic() - started > args.timeout:
                step(f"--timeout {args.timeout:g}s passed: stopping the search")
                studies.stop(root, name)
                stopped = True
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        print(f"\nthe search goes on; stop it with: layerflow search stop {name}",
              file=sys.stderr)  # fmt: skip
        return 130
    _print_summary(args, found)
    return 0 if found["state"] in ("finished", "stopped") else 1


def _trial_line(row: dict[str, Any], found: dict[str, Any]) -> str:
    metric = found["objective"].split(":")[0]
    score = f"  {metric} {row[metric]:.4g}" if row.get(metric) is not None else ""
    cost = f"  params {row['params']:,}" if row.get("params") is not None else ""
    reason = f"  ({row['reason']})" if row.get("reason") else ""
    return f"trial {row['trial']} {row['state']}{score}{cost}{reason}"


def _print_summary(args: argparse.Namespace, found: dict[str, Any]) -> None:
    lines = [
        f"search {found['name']}: {found['state']}, {found['done']}/{found['trials']} trials "
        f"trained, {found['skipped']} more pruned before training",
        f"objective: {found['objective']}" + (f", cost: {found['cost']}" if found["cost"] else ""),
    ]
    if found["constraints"]:
        lines.append("constraints: " + ", ".join(found["constraints"]))
    lines.append(f"storage: {found['storage']}")
    if found["best"] is not None:
        lines.append(f"best trial: {found['best']}")
    lines.append("")
    lines.append(_trials_table(found))
    emit(args, found, "\n".join(lines))


def _trials_table(found: dict[str, Any]) -> str:
    metric = found["objective"].split(":")[0]
    rows = []
    for row in found["rows"]:
        mark = "*" if row["trial"] in found["pareto"] else ""
        rows.append({
            "trial": f"{row['trial']}{mark}",
            "state": row["state"],
            metric: None if row.get(metric) is None else f"{row[metric]:.4g}",
            "params": row.get("params"),
            "latency_ms": None if row.get("latency") is None else f"{row['latency']:.3g}",
            "run": row.get("run"),
            "values": ", ".join(f"{k}={_short(v)}" for k, v in row["values"].items()),
            "reason": row.get("reason"),
        })  # fmt: skip
    text = table(rows, ["trial", "state", metric, "params", "latency_ms", "run", "values",
                        "reason"]) if rows else "no trials yet"  # fmt: skip
    return text + ("\n* on the Pareto front" if found["pareto"] else "")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _first(error: Exception) -> str:
    return visible(str(error).splitlines()[0] if str(error) else type(error).__name__)


def cmd_list(args: argparse.Namespace) -> int:
    from app.search import study as studies
    from app.workspace import Workspace

    root = Workspace.current().root
    found = studies.list_studies(root)
    shown = [{**row, "created": when(row["created"]) if row.get("created") else None,
              "best": None if row.get("best") is None else f"{row['best']:.4g}"}
             for row in found]  # fmt: skip
    columns = ["name", "model", "data", "state", "done", "objective", "best", "created"]
    text = table(shown, columns) if found else f"no searches in {root / 'searches'}"
    emit(args, found, text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from app.search import study as studies
    from app.workspace import Workspace

    _print_summary(args, studies.summary(Workspace.current().root, args.study))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from app.search import study as studies
    from app.workspace import Workspace

    asked = studies.stop(Workspace.current().root, args.study)
    runs = f"; stopping the running trials' runs {', '.join(asked)}" if asked else ""
    emit(args, {"stopping": True, "runs": asked},
         f"search {args.study}: no new trials will start{runs}")  # fmt: skip
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from app.search import study as studies
    from app.workspace import Workspace

    root = Workspace.current().root
    pids = studies.resume(root, args.study, args.workers)
    if args.detach:
        emit(args, {"workers": pids}, f"search {args.study}: {len(pids)} worker(s) started")
        return 0
    step(f"search {args.study} resumed on {len(pids)} worker(s); Ctrl-C leaves it running")
    return _follow(root, args.study, args)


def cmd_best(args: argparse.Namespace) -> int:
    from app.search import study as studies
    from app.workspace import Workspace

    root = Workspace.current().root
    found = studies.summary(root, args.study)
    by_number = {row["trial"]: row for row in found["rows"]}
    chosen = found["pareto"] if args.pareto else [n for n in [found["best"]] if n is not None]
    rows = [by_number[n] for n in chosen]
    if not rows:
        raise CommandError(f"search {args.study} has no complete trial that keeps its "
                           "constraints yet")  # fmt: skip
    emit(args, rows, _trials_table({**found, "rows": rows}))
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    from app.search.launch import use_trial
    from app.train.settings import TrainingSettings, save_settings
    from app.workspace import Workspace

    doc, settings = use_trial(Workspace.current().root, args.study, args.trial)
    save(doc, args.output)
    path = save_settings(TrainingSettings.from_dict(settings), args.output)
    emit(args, {"graph": args.output, "settings": str(path)},
         f"wrote {args.output} (trial {args.trial} of {args.study}) and its training settings "
         f"{path}")  # fmt: skip
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from app.search import study as studies
    from app.search.worker import work
    from app.workspace import Workspace

    root = Workspace.current().root
    if args.storage:
        studies.join(root, args.study, args.storage)
    done = work(root, args.study, say=lambda line: print(visible(line), flush=True))
    print(f"search {args.study}: {done} trial(s) run by this worker")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `search` and its verbs to the parser."""
    search = commands.add_parser(
        "search", help="Search over a graph's settings and structure.",
        description="Search over a graph's settings and structure: `layerflow search GRAPH "
        "--data NAME --trials N` makes a search and follows it.",
    )  # fmt: skip
    verbs = search.add_subparsers(dest="verb", required=True, metavar="VERB")
    run = add_command(verbs, "run", cmd_run,
                      "Make a search of GRAPH's space (or one proposed from it) and follow it.")
    run.add_argument("graph", help="a graph JSON file")
    run.add_argument("--data", required=True, help="the dataset the trials train on")
    run.add_argument("--trials", type=int, default=20, help="the budget of trials (20)")
    run.add_argument("--space", help="a search space JSON file (default: the graph's own)")
    run.add_argument("--workers", type=int, default=1, help="trial processes on this machine")
    run.add_argument("--timeout", type=float, help="stop the search after this many seconds")
    run.add_argument("--objective", help="METRIC:max or METRIC:min (default val_accuracy:max "
                     "for a classifier, else val_loss:min)")  # fmt: skip
    run.add_argument("--cost", choices=("params", "flops", "size", "latency"),
                     help="a second objective to minimise (NSGA-II); without it TPE and the "
                     "median pruner optimise the metric alone")  # fmt: skip
    run.add_argument("--constraint", action="append",
                     help="e.g. params<=50000, flops<=1e6, size<=200000, latency<=5ms "
                     "(repeatable)")  # fmt: skip
    run.add_argument("--epochs", type=int, help="epochs of each trial (default: the settings')")
    run.add_argument("--name", help="the search's name (default: the model's and the time)")
    run.add_argument("--storage", help="a database URL to keep the study in (Optuna's RDB "
                     "storage), so that workers on other machines can join it")  # fmt: skip
    run.add_argument("--detach", action="store_true", help="print the search's name and return")
    add_command(verbs, "list", cmd_list, "List the workspace's searches.")
    for verb, handler, text in (
        ("show", cmd_show, "Show a search: its state, trials and best trial."),
        ("stop", cmd_stop, "Stop a search: no new trials, and the running ones stop."),
        ("resume", cmd_resume, "Resume a stopped or interrupted search up to its budget."),
        ("best", cmd_best, "The best trial, or with --pareto the Pareto front."),
    ):
        command = add_command(verbs, verb, handler, text)
        command.add_argument("study", help="the search's name (`layerflow search list`)")
        if verb == "resume":
            command.add_argument("--workers", type=int, default=1)
            command.add_argument("--timeout", type=float)
            command.add_argument("--detach", action="store_true")
        if verb == "best":
            command.add_argument("--pareto", action="store_true",
                                 help="every trial on the front of the metric against the cost")
    use = add_command(verbs, "use", cmd_use,
                      "Write a trial's graph and training settings, to train or edit.")
    use.add_argument("study")
    use.add_argument("trial", type=int)
    use.add_argument("-o", "--output", required=True, help="the graph file to write")
    worker = add_command(verbs, "worker", cmd_worker,
                         "Run trials of a study here until its budget is spent.", json_flag=False)
    worker.add_argument("study")
    worker.add_argument("--storage", help="the study's database URL (on another machine)")
    space = add_command(
        verbs,
        "space",
        cmd_space,
        "Show a graph's search space, each problem in one line; --propose makes one from the "
        "graph (widths halved and doubled, dropout rates, Block repeats, the learning rate).",
    )
    space.add_argument("graph", help="a graph JSON file")
    space.add_argument("--propose", action="store_true", help="propose a space from the graph")
    space.add_argument("-o", "--output", help="write the graph, with its space, to this file")


def with_verb(argv: list[str]) -> list[str]:
    """`search GRAPH ...` is `search run GRAPH ...`."""
    if argv[:1] == ["search"] and len(argv) >= 2 and argv[1] not in VERBS and argv[1][:1] != "-":
        return ["search", "run", *argv[1:]]
    return argv

