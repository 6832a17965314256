"""`layerflow test`: test a run in a process, follow its progress, and print its report.

Exits 0 when the report passed, 1 when it failed and 2 when there is no report (an error)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.cli.command import CommandError, add_command
from app.cli.output import step


def cmd_test(args: argparse.Namespace) -> int:
    """Exit 0 when the report passed, 1 when it failed, 2 when there is no report (an error)."""
    try:
        return _test(args)
    except (CommandError, ValueError, OSError) as err:  # a RunError is a ValueError
        print(f"layerflow: error: {err}", file=sys.stderr)
        return 2


def _test(args: argparse.Namespace) -> int:
    from app.evaluate import suite as testsuite
    from app.evaluate.settings import Gate, TestSettings, save_gates
    from app.workspace import Workspace, runs

    folder = Workspace.current().run(args.run)
    gates = [Gate.parse(text) for text in args.gate or []]
    if args.save_gates and not gates:
        raise CommandError("--save-gates needs at least one --gate")
    chosen = {
        "top_k": args.top_k,
        "samples": args.samples,
        "latency_repeats": args.latency_repeats,
        "anomaly_percentile": args.percentile,
        "gates": gates or None,
    }
    if args.parity is not None:
        chosen["parity_formats"] = [f for f in args.parity.split(",") if f and f != "none"]
    settings = TestSettings.from_value(
        {key: value for key, value in chosen.items() if value is not None}
    )
    process = testsuite.start_test(folder, settings)
    if args.save_gates:
        model = runs.read_info(folder)["model"]
        path = save_gates(model, gates)
        step(f"saved {len(gates)} gate(s) for model {model} in {path}")
    test = testsuite.test_dir(folder)
    if args.detach:
        print(f"testing run {folder.name} (pid {process.pid}); the report will be in {test}")
        return 0
    step(f"testing run {folder.name} in a process (pid {process.pid}); Ctrl-C leaves it running")
    status = _follow_test(folder, process)
    if status["state"] != "finished":
        raise CommandError(f"the test of run {folder.name} {status['state']}: {status['reason']}")
    report = testsuite.read_report(folder)
    if args.json:
        shown = ("run", "passed", "summary", "baselines", "performance", "gates", "checks")
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
            doing, done = status.get("step") or "starting", float(status.get("progress") or 0)
            if bar is not None:
                bar.set_description_str(doing, refresh=False)
                bar.n = round(100 * done)
                bar.refresh()
            elif doing != said:
                step(f"{100 * done:3.0f}% {doing}")
            said = doing
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
    """The verdict, the summary, the baselines, the checks and the gates of a test report."""
    from app.evaluate.baselines import headline

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
    baselines = report.get("baselines")
    if baselines:
        lines += ["", f"baselines ({baselines['metric']})", f"  {headline(baselines)}"]
        width = max(len(result["name"]) for result in baselines["results"])
        for result in baselines["results"]:
            value = result["value"]
            shown = f"skipped: {result['skipped']}" if value is None else f"{value:.4g}"
            lines.append(f"  {result['name'].ljust(width)}  {shown}")
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


def register(commands: argparse._SubParsersAction) -> None:
    """Add `test` to the parser."""
    test = add_command(
        commands,
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
        "--percentile",
        type=float,
        help="anomaly detection: the threshold's percentile of the reconstruction errors of "
        "normal validation rows (default 95)",
    )
    test.add_argument(
        "--parity",
        metavar="FORMATS",
        help="export formats to compare, comma-separated (default savedmodel,tflite,onnx; "
        "none to skip)",
    )
    test.add_argument("--detach", action="store_true", help="start the test and return")
