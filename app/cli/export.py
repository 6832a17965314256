"""`layerflow export`: export a run's best checkpoint in a format, once its tests passed."""

from __future__ import annotations

import argparse
import json

from app.cli.command import add_command
from app.cli.output import emit
from app.export.options import FORMATS


def cmd_export(args: argparse.Namespace) -> int:
    from app.export.exporter import export_run
    from app.runtime.predictor import METADATA

    folder = export_run(args.run, args.format, quantize=args.quantize, force=args.force)
    meta = json.loads((folder / METADATA).read_text())
    parity = meta["parity"]
    lines = [
        f"exported run {meta['run']} as {args.format}"
        + (f" ({args.quantize})" if args.quantize else "")
        + f" to {folder}",
        "parity: " + {True: "passed", False: "FAILED", None: "not checked"}[parity["passed"]]
        + f", {parity['detail']}",
    ]
    if meta["forced"]:
        lines.append(f"forced: {meta['forced_reason']}")
    notes = meta.get("backend_notes") or ["the model runs on Keras' TensorFlow, JAX and PyTorch "
                                          "backends"]  # fmt: skip
    lines += [f"backends: {note}" for note in notes]
    emit(args, {**meta, "dir": str(folder)}, "\n".join(lines))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add `export` to the parser."""
    export = add_command(
        commands,
        "export",
        cmd_export,
        "Export a run's best checkpoint with its preprocessing, once its tests passed: "
        "models/<model>/exports/<run>-<format>[-<quantize>]/, checked against the model on "
        "the test split and recorded by DVC.",
    )
    export.add_argument("run", help="run id or directory")
    export.add_argument(
        "--format", required=True, choices=list(FORMATS),
        help="tfjs: a TensorFlow.js layers model, its preprocessing and an index.html demo",
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
