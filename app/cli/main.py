"""`layerflow`: the command line over the engine. Tables for people, --json for machines.

Every command exits 0 on success, 1 on bad input (with one line per problem) and 2 on a usage
error; none prints a traceback for a user's mistake.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.graph.document import load, save
from app.graph.problems import GraphError


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "(" + ", ".join("None" if d is None else str(d) for d in value) + ")"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if getattr(args, "json", False) else text)


def _write_or_print(text: str, output: str | None) -> None:
    if output:
        from app.files import atomic_write_text

        atomic_write_text(output, text)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


# Commands


def cmd_templates(args: argparse.Namespace) -> int:
    from app.graph.model_templates import list_templates

    rows = [vars(t) if not isinstance(t, dict) else t for t in list_templates()]
    _emit(args, rows, table(rows, ["name", "task", "nodes", "description"]))
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from app.graph.model_templates import new_from_template

    doc = new_from_template(args.template, args.name)
    save(doc, args.output)
    print(f"wrote {args.output} from template {args.template}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from app.graph.analysis import analyze

    analysis = analyze(load(args.graph, strict=False))
    problems = [p.to_dict() for p in analysis.problems]
    if analysis.problems:
        text = "\n".join(
            f"{p.level:<7} {p.message}" + (f"\n        fix: {p.fix.description}" if p.fix else "")
            for p in analysis.problems
        )
    else:
        text = f"{args.graph}: ok, {len(analysis.doc.nodes)} nodes"
    _emit(args, {"ok": analysis.ok, "problems": problems}, text)
    return 0 if analysis.ok else 1


def cmd_shapes(args: argparse.Namespace) -> int:
    from app.graph.analysis import analyze

    analysis = analyze(load(args.graph))
    rows = analysis.rows()
    totals = analysis.totals()
    text = table(rows, ["id", "label", "component", "output_shape", "params", "flops"])
    text += (
        f"\n\ntotal: {totals['params']:,} parameters ({totals['trainable']:,} trainable), "
        f"~{totals['flops']:,} FLOPs per sample"
    )
    for problem in analysis.problems:
        text += f"\n{problem.level}: {problem.message}"
    _emit(
        args,
        {"nodes": rows, "totals": totals, "problems": [p.to_dict() for p in analysis.problems]},
        text,
    )
    return 0 if analysis.ok else 1


def cmd_codegen(args: argparse.Namespace) -> int:
    from app.graph.codegen import generate_module, node_snippet

    doc = load(args.graph)
    if args.node:
        if args.node not in {n.id for n in doc.nodes}:
            raise CommandError(f"{args.graph}: no node with id {args.node!r}")
        _write_or_print(node_snippet(doc, args.node), args.output)
    else:
        _write_or_print(generate_module(doc), args.output)
    return 0


def cmd_import_keras(args: argparse.Namespace) -> int:
    from app.keras.importer import import_keras

    doc = import_keras(args.model)
    save(doc, args.output)
    print(f"wrote {args.output}: {len(doc.nodes)} nodes, {len(doc.edges)} edges")
    return 0


def cmd_blocks(args: argparse.Namespace) -> int:
    from app.workspace import blocks

    if args.action == "list":
        names = blocks.list_blocks()
        rows = [
            {
                "name": n,
                "nodes": len(blocks.load_block(n).nodes),
                "description": blocks.load_block(n).description,
            }
            for n in names
        ]
        _emit(
            args,
            rows,
            table(rows, ["name", "nodes", "description"])
            if rows
            else f"no blocks saved in {blocks.library_dir()}",
        )
        return 0
    if not args.graph or not args.name:
        raise CommandError(f"blocks {args.action} needs GRAPH and NAME")
    doc = load(args.graph, strict=False)
    if args.action == "save":
        if args.name not in doc.blocks:
            raise CommandError(
                f"{args.graph}: no block named {args.name!r} "
                f"(blocks: {', '.join(doc.blocks) or 'none'})"
            )
        path = blocks.save_block(args.name, doc.blocks[args.name])
        print(f"saved block {args.name} to {path}")
    else:
        save(blocks.use_block(doc, args.name), args.graph)
        print(f"added block {args.name} to {args.graph}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from app.data import store

    action = args.data_action
    if action == "samples":
        return _data_samples(args)
    if action == "add":
        overrides = dict(_pair(item) for item in args.type or [])
        dataset = store.add(
            args.path, args.name, target=args.target, overrides=overrides, progress=_step
        )
        print(
            f"added {args.name}: {dataset.meta['rows']:,} rows, task {dataset.meta['task']}, "
            f"version {dataset.version[:10]}"
        )
        return 0
    if action == "list":
        rows = store.list_datasets()
        shown = [{**row, "version": (row["version"] or "")[:10]} for row in rows]
        text = (
            table(shown, ["name", "kind", "rows", "target", "task", "version"])
            if rows
            else (f"no datasets in {store.data_dir()}")
        )
        _emit(args, rows, text)
        return 0
    if action == "show":
        dataset = store.get(args.name)
        info = {
            **dataset.summary(),
            "splits": {k: len(v) for k, v in dataset.splits.items()},
            "columns": dataset.meta["profile"]["columns"],
            "classes": dataset.meta["profile"].get("classes"),
        }
        columns = [
            {"column": c["name"], "type": c["type"], "missing": c["missing"], "unique": c["unique"]}
            for c in info["columns"]
        ]
        text = "\n".join(f"{k}: {v}" for k, v in info.items() if k not in ("columns",))
        text += "\n\n" + table(columns, ["column", "type", "missing", "unique"])
        _emit(args, info, text)
        return 0
    if action == "versions":
        rows = [
            {
                "version": v.version[:10],
                "created": _when(v.created),
                "files": v.files,
                "size": v.size,
                "note": v.note,
            }
            for v in store.dataset_versions(args.name)
        ]
        _emit(args, rows, table(rows, ["version", "created", "files", "size", "note"]))
        return 0
    if action == "configure":
        doc, changes = store.get(args.name).configure(load(args.graph, strict=False))
        save(doc, args.graph)
        print("\n".join(changes) if changes else f"{args.graph} already fits {args.name}")
        return 0
    version = store.restore(args.name, args.version)
    print(f"restored {args.name} to version {version.version[:10]}")
    return 0


def _data_samples(args: argparse.Namespace) -> int:
    import tempfile

    from app.data import store
    from app.data.samples import SAMPLES, make_sample

    if not args.name:
        rows = [{"name": k, "description": v} for k, v in SAMPLES.items()]
        _emit(args, rows, table(rows, ["name", "description"]))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        _step(f"making sample {args.name}")
        path = make_sample(args.name, Path(folder))
        dataset = store.add(path, args.name, progress=_step)
    print(
        f"added sample {args.name}: {dataset.meta['rows']:,} rows, task "
        f"{dataset.meta['task']}, version {dataset.version[:10]}"
    )
    return 0


def _pair(item: str) -> tuple[str, str]:
    column, sep, kind = item.partition("=")
    if not sep or not column or not kind:
        raise CommandError(f"--type takes COLUMN=TYPE, received {item!r}")
    return column, kind


def _step(message: str) -> None:
    print(f"... {message}", file=sys.stderr)


def _when(timestamp: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def cmd_train(args: argparse.Namespace) -> int:
    from app.train import launch
    from app.train.settings import load_settings
    from app.workspace import runs

    doc = load(args.graph)
    settings = load_settings(args.graph).with_changes(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        strategy=args.strategy,
    )
    command = ["layerflow", "train", args.graph, "--data", args.data]
    for flag, value in (
        ("--epochs", args.epochs),
        ("--batch-size", args.batch_size),
        ("--lr", args.lr),
        ("--strategy", args.strategy),
        ("--run-dir", args.run_dir),
    ):
        if value is not None:
            command += [flag, str(value)]
    # A directory the user types is relative to where they are, not to the workspace.
    run_dir = str(Path(args.run_dir).resolve()) if args.run_dir else None
    try:
        folder = launch.create_run(doc, settings, args.data, run_dir=run_dir, command=command)
    except runs.RunError as err:
        if any("the data" in problem for problem in err.problems):
            _step(
                f"to fit the graph to the data: layerflow data configure {args.graph} {args.data}"
            )
        raise
    process = launch.start_run(folder)
    if args.detach:
        print(folder.name)
        return 0
    _step(f"run {folder.name} in {folder} (pid {process.pid}); Ctrl-C leaves it running")
    return _follow(folder, process)


def _follow(folder: Path, process: Any) -> int:
    """Print the run's epochs, warnings and changes of state as they come, until it ends; on
    a terminal, below them, one updating line with the current epoch's batches as a bar, the
    loss and the ETA (from the batch events)."""
    import time

    from app.workspace import runs
    from app.workspace.events import read_events

    offset = 0
    epochs = runs.read_status(folder).get("epochs")
    bar = _EpochBar(folder, epochs) if sys.stdout.isatty() else None
    kinds = {"epoch", "warning", "status"} | ({"batch"} if bar else set())
    try:
        while True:
            ended = process.poll() is not None
            events, offset = read_events(folder, kinds, offset)
            for event in events:
                if bar is not None:
                    bar.show(event)
                if event["type"] == "batch":
                    continue
                line = _event_line(event, epochs)
                if line:
                    if bar is not None:
                        bar.write(line)
                    else:
                        print(line, flush=True)
            if ended:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(
            f"\nthe run goes on; stop it with: layerflow runs stop {folder.name}", file=sys.stderr
        )
        return 130
    if bar is not None:
        bar.close()
    state = runs.status(folder)
    reason = f": {state['reason']}" if state.get("reason") else ""
    print(f"run {folder.name} {state['state']} after {state.get('epoch', 0)} epoch(s){reason}")
    return 0 if state["state"] == "finished" else 1


class _EpochBar:
    """`epoch 3/20 |#####     | 12/40  loss 0.4123  ETA 35s`, redrawn in place (tqdm): the
    batches done in the current epoch, the last logged loss, and the ETA of the whole run."""

    FORMAT = "{desc} |{bar}| {n_fmt}/{total_fmt}"

    def __init__(self, folder: Path, epochs: int | None):
        from tqdm import tqdm

        self.folder = folder
        self.epochs = epochs
        self.steps: int | None = None  # batches per epoch, which the runner says once it knows
        self.epoch_start_step = 0  # the runner's step count at the start of the epoch
        self.bar = tqdm(
            total=None,
            desc=f"epoch 1/{epochs or '?'}",
            bar_format=self.FORMAT,
            file=sys.stdout,
            leave=False,
            ncols=shutil.get_terminal_size().columns,
            nrows=shutil.get_terminal_size().lines,
        )

    def show(self, event: dict[str, Any]) -> None:
        from app.workspace import runs

        if self.steps is None:
            self.steps = runs.read_status(self.folder).get("steps")
            if self.steps:
                self.bar.reset(total=self.steps)
        if event["type"] == "batch":
            # A resumed run's process counts its steps from 0 again, at the start of an epoch.
            step = event["step"]
            done = (step - 1) % self.steps + 1 if self.steps else step - self.epoch_start_step
            self._draw(event["epoch"], done, event)
        elif event["type"] == "epoch":
            if self.steps is None:  # not said: as many as this epoch had
                self.steps = event["step"] - self.epoch_start_step or None
            self.epoch_start_step = event["step"]
            if self.epochs is None or event["epoch"] + 1 < self.epochs:
                self.bar.reset(total=self.steps)
                self._draw(event["epoch"] + 1, 0, event)

    def _draw(self, epoch: int, done: int, event: dict[str, Any]) -> None:
        loss = (event.get("metrics") or {}).get("loss")
        eta = event.get("eta_s")
        after = f"  loss {loss:.4g}" if isinstance(loss, int | float) else ""
        after += f"  ETA {eta:.0f}s" if eta is not None else ""
        self.bar.set_description_str(f"epoch {epoch + 1}/{self.epochs or '?'}", refresh=False)
        self.bar.bar_format = self.FORMAT + after  # tqdm's postfix would start with a comma
        self.bar.n = max(0, min(done, self.steps or done))
        # The terminal's size each time (it may change); 80x24 where it says 0x0.
        self.bar.ncols, self.bar.nrows = shutil.get_terminal_size()
        self.bar.refresh()

    def write(self, line: str) -> None:
        """A line printed above the bar, which is then drawn again."""
        self.bar.write(line, file=sys.stdout)

    def close(self) -> None:
        self.bar.close()


def _event_line(event: dict[str, Any], epochs: int | None) -> str | None:
    if event["type"] == "warning":
        return f"warning: {event['message']}"
    if event["type"] == "status":  # the end is said by the last line
        return (
            None
            if event["state"] in ("finished", "failed", "stopped")
            else (f"... {event['state']}")
        )
    metrics = "  ".join(
        f"{k} {v:.4g}" for k, v in event.get("metrics", {}).items() if isinstance(v, int | float)
    )
    eta = event.get("eta_s")
    timing = f"  {event['duration_s']:.1f}s" if event.get("duration_s") is not None else ""
    timing += f"  ETA {eta:.0f}s" if eta is not None else ""
    return f"epoch {event['epoch'] + 1}/{epochs or '?'}  {metrics}{timing}"


def cmd_runs(args: argparse.Namespace) -> int:
    from app.train import launch
    from app.workspace import runs

    action = args.runs_action
    if action == "list":
        rows = runs.list_runs()
        shown = [
            {
                **row,
                "epoch": f"{row['epoch']}/{row['epochs']}",
                "created": _when(row["created"]),
                "best": f"{row['best']['monitor']} {row['best']['value']:.4g}"
                if row["best"]
                else None,
            }
            for row in rows
        ]
        text = (
            table(shown, ["id", "model", "state", "epoch", "data", "best", "created"])
            if rows
            else f"no runs in {runs.models_dir()}"
        )
        _emit(args, rows, text)
        return 0
    if action == "show":
        info = runs.get_run(args.run)
        lines = [f"{key}: {info[key]}" for key in ("id", "model", "dir", "state", "reason")]
        lines.append(f"epoch: {info['epoch']}/{info['epochs']}")
        lines.append(f"data: {info['data']['name']} (version {str(info['data']['version'])[:10]})")
        lines.append(f"created: {_when(info['created'])}")
        if info["best"]:
            best = info["best"]
            lines.append(f"best: {best['monitor']} {best['value']:.4g} at epoch {best['epoch']}")
        lines += [f"  {k}: {v:.4g}" for k, v in info["metrics"].items()]
        lines.append(f"version: {(info['version'] or '-')[:10]}")
        changed = {k: v for k, v in info["settings"].items() if k in _SHOWN_SETTINGS}
        lines.append("settings: " + ", ".join(f"{k}={v}" for k, v in changed.items()))
        _emit(args, info, "\n".join(lines))
        return 0
    folder = runs.find_run(args.run)
    if action == "delete":
        runs.delete_run(folder)
        print(f"deleted run {folder.name} ({folder})")
        return 0
    if action == "pause":
        runs.pause(folder)
        print(f"asked run {folder.name} to pause")
    elif action == "stop":
        runs.stop(folder)
        print(f"asked run {folder.name} to stop after a checkpoint")
    elif runs.status(folder)["state"] in runs.RESUMABLE:
        process = launch.resume_run(folder)
        print(f"resumed run {folder.name} from its last checkpoint (pid {process.pid})")
    else:
        runs.resume(folder)
        print(f"asked run {folder.name} to go on")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from app.evaluate.compare import compare_runs

    result = compare_runs(args.runs)
    _emit(args, result, _comparison_text(result))
    return 0


def _comparison_text(result: dict[str, Any]) -> str:
    """The runs as columns; data, graph, best, the final metrics and the settings as rows, a
    `*` before each row that differs between the runs."""
    shown = result["runs"]
    differs = result["differs"]
    gap = (False, "", [""] * len(shown))

    def best(row: dict[str, Any]) -> str:
        found = row["best"]
        return f"{found['monitor']} {found['value']:.4g} (epoch {found['epoch']})" if found else "-"

    rows: list[tuple[bool, str, list[str]]] = [
        (False, "run", [row["id"] for row in shown]),
        (False, "model", [row["model"] for row in shown]),
        (False, "state", [f"{row['state']} {row['epoch']}/{row['epochs']}" for row in shown]),
        (
            differs["data"],
            "data",
            [f"{row['data']['name']} {str(row['data']['version'] or '-')[:10]}" for row in shown],
        ),
        (differs["graph"], "graph", [row["graph"][:10] for row in shown]),
        (False, "best", [best(row) for row in shown]),
        gap,
    ]
    rows += [
        (False, name, [_number(row["metrics"].get(name)) for row in shown])
        for name in result["metrics"]
    ]
    rows.append(gap)
    keys = dict.fromkeys(key for row in shown for key in row["settings"])
    rows += [
        (key in differs["settings"], key, [_setting(row["settings"].get(key)) for row in shown])
        for key in keys
    ]
    name_width = max(len(name) for _, name, _ in rows)
    widths = [max(len(values[i]) for _, _, values in rows) for i in range(len(shown))]
    lines = [
        ("* " if differ else "  ")
        + "  ".join([name.ljust(name_width), *map(str.ljust, values, widths)])
        for differ, name, values in rows
    ]
    lines.append("* differs between the runs")
    return "\n".join(line.rstrip() for line in lines)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


def _setting(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def cmd_test(args: argparse.Namespace) -> int:
    """Exit 0 when the report passed, 1 when it failed, 2 when there is no report (an error)."""
    try:
        return _test(args)
    except (CommandError, ValueError, OSError) as err:  # a RunError is a ValueError
        print(f"layerflow: error: {err}", file=sys.stderr)
        return 2


def _test(args: argparse.Namespace) -> int:
    from app.evaluate import suite as testsuite
    from app.workspace import runs

    folder = runs.find_run(args.run)
    gates = [testsuite.Gate.parse(text) for text in args.gate or []]
    if args.save_gates and not gates:
        raise CommandError("--save-gates needs at least one --gate")
    chosen = {
        "top_k": args.top_k,
        "samples": args.samples,
        "latency_repeats": args.latency_repeats,
        "gates": gates or None,
    }
    if args.parity is not None:
        chosen["parity_formats"] = [f for f in args.parity.split(",") if f and f != "none"]
    settings = testsuite.TestSettings.from_value(
        {key: value for key, value in chosen.items() if value is not None}
    )
    process = testsuite.start_test(folder, settings)
    if args.save_gates:
        model = runs.read_info(folder)["model"]
        path = testsuite.save_gates(model, gates)
        _step(f"saved {len(gates)} gate(s) for model {model} in {path}")
    test = testsuite.test_dir(folder)
    if args.detach:
        print(f"testing run {folder.name} (pid {process.pid}); the report will be in {test}")
        return 0
    _step(f"testing run {folder.name} in a process (pid {process.pid}); Ctrl-C leaves it running")
    status = _follow_test(folder, process)
    if status["state"] != "finished":
        raise CommandError(f"the test of run {folder.name} {status['state']}: {status['reason']}")
    report = testsuite.read_report(folder)
    if args.json:
        shown = ("run", "passed", "summary", "performance", "gates", "checks")
        print(json.dumps({key: report.get(key) for key in shown}, indent=2))
    else:
        print(_report_text(report, test / testsuite.REPORT_HTML))
    return 0 if report["passed"] else 1


def _follow_test(folder: Path, process: Any) -> dict[str, Any]:
    """Show the test's progress until its process ends (on a terminal one updating bar, else a
    line per step, on standard error); its last status."""
    import time

    from app.evaluate import suite as testsuite

    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=100, bar_format="{percentage:3.0f}% |{bar}| {desc}", file=sys.stderr)
    said = None
    try:
        while True:
            ended = process.poll() is not None
            status = testsuite.test_status(folder)
            step, done = status.get("step") or "starting", float(status.get("progress") or 0)
            if bar is not None:
                bar.set_description_str(step, refresh=False)
                bar.n = round(100 * done)
                bar.refresh()
            elif step != said:
                _step(f"{100 * done:3.0f}% {step}")
            said = step
            if ended:
                break
            time.sleep(0.25)
    except KeyboardInterrupt:
        print(
            f"\nthe test goes on (pid {process.pid}); its report will be in "
            f"{testsuite.test_dir(folder)}",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    finally:
        if bar is not None:
            bar.close()
    return testsuite.test_status(folder)


def _report_text(report: dict[str, Any], page: Path) -> str:
    """The verdict, the summary, the checks and the gates of a test report."""
    data = report["data"]
    lines = [
        f"run {report['run']} ({report['model']}) on {data['name']}, {data['split']} split, "
        f"{data['rows']:,} rows: {'PASSED' if report['passed'] else 'FAILED'}",
        "",
        "summary",
    ]
    values = {**report["summary"]}
    values.update(
        {
            key: report["performance"][key]
            for key in ("latency_p50_ms", "latency_p95_ms", "model_size_mb")
            if report["performance"].get(key) is not None
        }
    )
    width = max(len(name) for name in values)
    lines += [f"  {name.ljust(width)}  {value:.4g}" for name, value in values.items()]
    lines += ["", "checks"]
    width = max(len(check["name"]) for check in report["checks"])
    for check in report["checks"]:
        verdict = {True: "pass", False: "FAIL", None: "skip"}[check["passed"]]
        if check["informational"] and check["passed"] is not None:
            verdict = "info"
        lines.append(f"  {verdict}  {check['name'].ljust(width)}  {check['detail']}")
    lines += ["", "gates"]
    results = report["gates"]["results"]
    if not results:
        lines.append("  none set (add some: --gate 'accuracy>=0.9' --save-gates)")
    for gate in results:
        lines.append(f"  {'pass' if gate['passed'] else 'FAIL'}  {gate['detail']}")
    lines += ["", f"report: {page}"]
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace) -> int:
    from app.export import exporter as export

    folder = export.export_run(args.run, args.format, quantize=args.quantize, force=args.force)
    meta = json.loads((folder / export.METADATA).read_text())
    parity = meta["parity"]
    lines = [
        f"exported run {meta['run']} as {args.format}"
        + (f" ({args.quantize})" if args.quantize else "")
        + f" to {folder}",
        f"parity: {'passed' if parity['passed'] else 'FAILED'}, {parity['detail']}",
    ]
    if meta["forced"]:
        lines.append(f"forced: {meta['forced_reason']}")
    _emit(args, {**meta, "dir": str(folder)}, "\n".join(lines))
    return 0


_SHOWN_SETTINGS = (
    "optimizer",
    "learning_rate",
    "schedule",
    "batch_size",
    "epochs",
    "seed",
    "strategy",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerflow", description="LayerFlow: visual deep learning workspace for Keras."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        json_flag: bool = True,
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        if json_flag:
            command.add_argument("--json", action="store_true", help="machine-readable output")
        return command

    add("templates", cmd_templates, "List the model templates.")
    new = add("new", cmd_new, "Create a graph from a model template.", json_flag=False)
    new.add_argument("--template", required=True)
    new.add_argument("--name", help="name of the new graph")
    new.add_argument("-o", "--output", required=True)
    add("validate", cmd_validate, "Check a graph: errors, warnings, tips.").add_argument("graph")
    add("shapes", cmd_shapes, "Output shape, parameters and FLOPs per node.").add_argument("graph")
    codegen = add("codegen", cmd_codegen, "Generate the Keras code of a graph.", json_flag=False)
    codegen.add_argument("graph")
    codegen.add_argument("-o", "--output", help="file to write (default: standard output)")
    codegen.add_argument("--node", help="only this node's snippet")
    imp = add(
        "import-keras",
        cmd_import_keras,
        "Turn a .keras, .h5 or JSON model into a graph.",
        json_flag=False,
    )
    imp.add_argument("model")
    imp.add_argument("-o", "--output", required=True)
    blocks = add("blocks", cmd_blocks, "The block library: list, save a graph's block, use one.")
    blocks.add_argument("action", choices=["list", "save", "use"])
    blocks.add_argument("graph", nargs="?")
    blocks.add_argument("name", nargs="?")

    data = sub.add_parser("data", help="Datasets: samples, add, list, show, versions, restore.")
    data.set_defaults(handler=cmd_data)
    actions = data.add_subparsers(dest="data_action", required=True, metavar="ACTION")
    samples = actions.add_parser("samples", help="List the samples, or add one as a dataset.")
    samples.add_argument("name", nargs="?")
    samples.add_argument("--json", action="store_true")
    add_data = actions.add_parser("add", help="Add a table, image folder or .npz as a dataset.")
    add_data.add_argument("path")
    add_data.add_argument("--name", required=True)
    add_data.add_argument("--target", help="the column to predict")
    add_data.add_argument(
        "--type",
        action="append",
        metavar="COLUMN=TYPE",
        help="override a column's inferred type (numeric, categorical, binary, text, "
        "image_path, mask_path); repeatable",
    )
    for name in ("list", "show", "versions"):
        action = actions.add_parser(name, help=f"{name.capitalize()} datasets.")
        if name != "list":
            action.add_argument("name")
        action.add_argument("--json", action="store_true")
    restore = actions.add_parser("restore", help="Check out an earlier version of a dataset.")
    restore.add_argument("name")
    restore.add_argument("version")
    configure = actions.add_parser(
        "configure", help="Set a graph's Input and Output from a dataset (shape, classes, loss)."
    )
    configure.add_argument("graph")
    configure.add_argument("name")

    train = add("train", cmd_train, "Train a graph on a dataset in a run process.", json_flag=False)
    train.add_argument("graph")
    train.add_argument("--data", required=True, help="the dataset to train on")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="the learning rate")
    train.add_argument("--strategy", help="default, mirrored or multi_worker")
    train.add_argument("--run-dir", help="the run directory, inside the workspace")
    train.add_argument("--detach", action="store_true", help="print the run id and return")

    runs_parser = sub.add_parser(
        "runs", help="Training runs: list, show, pause, resume, stop, delete."
    )
    runs_parser.set_defaults(handler=cmd_runs)
    run_actions = runs_parser.add_subparsers(dest="runs_action", required=True, metavar="ACTION")
    run_actions.add_parser("list", help="List the runs, newest first.").add_argument(
        "--json", action="store_true"
    )
    show = run_actions.add_parser("show", help="A run's status, metrics, data and settings.")
    show.add_argument("run", help="run id or directory")
    show.add_argument("--json", action="store_true")
    for name, help_text in (
        ("pause", "Hold a run between two batches."),
        ("resume", "Let a paused run go on, or restart a stopped, failed or interrupted one."),
        ("stop", "End a run after a checkpoint."),
        ("delete", "Delete a run that is not active: its directory and its DVC records."),
    ):
        run_actions.add_parser(name, help=help_text).add_argument("run", help="run id or directory")

    compare = add("compare", cmd_compare, "Two or more runs side by side: metrics, settings.")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run id or directory")

    test = add(
        "test",
        cmd_test,
        "Test a run's best checkpoint on its test split: metrics, production checks, "
        "explanations and gates, in a process; writes <run>/test/report.json and report.html. "
        "Exit 0 when the report passed, 1 when it failed, 2 on an error.",
    )
    test.add_argument("run", help="run id or directory")
    test.add_argument(
        "--gate",
        action="append",
        metavar="METRIC>=VALUE",
        help="a gate for this report, such as accuracy>=0.9 or latency_p95_ms<=20 (repeatable; "
        "default: the model's saved gates)",
    )
    test.add_argument(
        "--save-gates", action="store_true", help="also save the --gate ones as the model's gates"
    )
    test.add_argument("--top-k", type=int, help="k of top-k accuracy (default 3)")
    test.add_argument("--samples", type=int, help="best and worst samples shown (default 8)")
    test.add_argument(
        "--latency-repeats", type=int, help="timed predictions per latency measure (default 20)"
    )
    test.add_argument(
        "--parity",
        metavar="FORMATS",
        help="export formats to compare, comma-separated (default savedmodel,tflite,onnx; "
        "none to skip)",
    )
    test.add_argument("--detach", action="store_true", help="start the test and return")

    export = add(
        "export",
        cmd_export,
        "Export a run's best checkpoint with its preprocessing, once its tests passed: "
        "models/<model>/exports/<run>-<format>[-<quantize>]/, checked against the model on "
        "the test split and recorded by DVC.",
    )
    export.add_argument("run", help="run id or directory")
    export.add_argument(
        "--format", required=True, choices=["keras", "savedmodel", "tflite", "onnx", "project"]
    )
    export.add_argument(
        "--quantize",
        choices=["dynamic", "float16", "int8"],
        help="tflite only: dynamic-range, float16, or int8 calibrated on the train split",
    )
    export.add_argument(
        "--force",
        action="store_true",
        help="export even without a passing test report or parity (recorded in metadata.json)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except GraphError as err:
        for problem in err.problems:
            where = "" if problem.message.startswith(err.source) else f"{err.source}: "
            print(f"layerflow: error: {where}{problem.message}", file=sys.stderr)
        return 1
    except (CommandError, ValueError, OSError) as err:
        print(f"layerflow: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug of ours: one line, and the traceback on request
        if os.environ.get("LAYERFLOW_DEBUG"):
            raise
        print(
            f"layerflow: internal error: {type(err).__name__}: {err} "
            "(set LAYERFLOW_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
