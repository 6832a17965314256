"""`layerflow profile GRAPH`: where a graph's time and memory go, per node, at several batch
sizes, with the batch-size what-if (app.profile)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from app.cli.command import CommandError, add_command
from app.cli.output import emit, table
from app.files import atomic_write_text
from app.graph.document import load
from app.jsonable import json_ready

PROGRESS_EVERY_S = 1.0


def cmd_profile(args: argparse.Namespace) -> int:
    from app.profile import fit
    from app.profile.profiler import data_inputs, profile_graph

    doc = load(args.graph)
    try:
        sizes = fit.parse_batch_sizes(args.batch_sizes)
    except ValueError as error:
        raise CommandError(f"--batch-sizes: {error}") from None
    budget = None
    if args.memory_budget:
        try:
            budget = fit.parse_bytes(args.memory_budget)
        except ValueError as error:
            raise CommandError(f"--memory-budget: {error}") from None
    inputs_of = None
    if args.data:
        from app.workspace import Workspace

        inputs_of = data_inputs(Workspace.current().dataset(args.data))
    report = profile_graph(doc, sizes, args.optimizer, inputs_of, budget, args.trace,
                           tflite=not args.no_tflite, progress=_progress())  # fmt: skip
    report = json_ready(report)
    if args.output:
        atomic_write_text(args.output, json.dumps(report, indent=2) + "\n")
    emit(args, report, _text(report))
    return 0


def _progress():
    """Progress on standard error, at most once a second."""
    last = [0.0]

    def report(fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and fraction < 1:
            return
        last[0] = now
        print(f"profiling: {fraction:4.0%} {message}", file=sys.stderr, flush=True)

    return report


def _text(report: dict[str, Any]) -> str:
    """The report for people: nodes by time at the largest batch size, then the whole model."""
    sizes = report["batch_sizes"]
    last = len(sizes) - 1
    timed = [n for n in report["nodes"] if n["forward_ms"] is not None]
    timed.sort(key=lambda n: -(n["forward_ms"][last] + n["backward_ms"][last]))
    rows = [
        {"node": n["id"], "component": n["component"],
         "forward ms": f"{n['forward_ms'][last]:.3f}",
         "backward ms": f"{n['backward_ms'][last]:.3f}",
         "share": f"{n['share'][last]:.1%}",
         "memory": _bytes((n["memory"][last] or {}).get("total", 0))}
        for n in timed
    ]  # fmt: skip
    lines = [f"{report['graph']}: per node at batch {sizes[last]} (op times in TensorFlow's "
             "profiler, ms per training step)",
             table(rows, list(rows[0]) if rows else ["node"]), ""]  # fmt: skip
    for n in report["nodes"]:
        if "unmeasured" in n:
            lines.append(f"not measured: {n['id']}: {n['unmeasured']}")
        elif "partial" in n:
            lines.append(f"in part: {n['id']}: {n['partial']}")
    lines.append("batch  step ms  samples/s  inference ms  forward ms  node sum   gap  memory")
    for w in report["whole"]:
        gap = "-" if w["gap"] is None else f"{w['gap']:+.0%}"
        lines.append(f"{w['batch']:>5}  {w['step_ms']:7.2f}  {w['throughput']:9.0f}  "
                     f"{w['inference_ms']:12.3f}  {w['forward_ms']:10.3f}  "
                     f"{w['node_forward_sum_ms']:8.3f}  {gap:>4}  "
                     f"{_bytes(w['memory_bytes'])}")  # fmt: skip
    for w in report.get("whatif", []):
        lines.append(f"{w['batch']:>5}  {w['step_ms']:7.2f}  {w['throughput'] or 0:9.0f}  "
                     f"{w['inference_ms']:12.3f}  (predicted by the fit)  "
                     f"{_bytes(w['memory_bytes'])}")  # fmt: skip
    if budget := report.get("budget"):
        largest = budget["largest_batch"]
        lines.append(f"largest batch within {_bytes(budget['bytes'])} (the process's peak, the "
                     f"{_bytes(budget['runtime_bytes'])} TensorFlow holds itself included): "
                     + ("none" if largest is None else f"{largest:,}"))  # fmt: skip
    for variant, found in (report.get("tflite") or {}).items():
        said = found.get("error") or (f"{found['latency_ms']:.3f} ms per sample, "
                                      f"{_bytes(found['bytes'])}")  # fmt: skip
        lines.append(f"TFLite {variant}: {said}")
    if report.get("trace"):
        lines.append(f"trace: tensorboard --logdir {report['trace']}")
    return "\n".join(lines)


def _bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def register(commands: argparse._SubParsersAction) -> None:
    """Add `profile` to the parser."""
    profile = add_command(
        commands,
        "profile",
        cmd_profile,
        "Where a graph's time and memory go: each node's forward and backward time and memory "
        "at several batch sizes, the whole step, a batch-size what-if, and TFLite latency.",
    )
    profile.add_argument("graph", type=Path, help="a graph JSON file")
    profile.add_argument("--batch-sizes", default="1,8,32,128", help="default 1,8,32,128")
    profile.add_argument("--data", help="profile on this dataset's train rows, not synthetic ones")
    profile.add_argument("--optimizer", default="adam", help="the training step's; default adam")
    profile.add_argument("--memory-budget", help="say the largest batch within it, e.g. 8GB")
    profile.add_argument("--trace", help="write a TensorBoard profile trace into this folder")
    profile.add_argument("--no-tflite", action="store_true", help="skip the TFLite latency")
    profile.add_argument("-o", "--output", help="write the JSON report to this file")
