"""`layerflow serve` (a run or export behind TensorFlow Serving's REST API) and `layerflow
predict` (its predictions for rows of a table, image files or texts, from the warm server when
one runs, else from the model loaded here)."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from app.cli.command import CommandError, add_command
from app.cli.output import emit, table

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp")


def cmd_serve(args: argparse.Namespace) -> int:
    from app.serve.client import running, target_folder
    from app.serve.server import serve

    folder = target_folder(args.target)
    if (record := running(folder)) is not None and args.port == record.get("port"):
        raise CommandError(f"{folder.name} is served already at {record['url']}")
    serve(folder, host=args.host, port=args.port, idle=args.idle or None, announce=_announce)
    return 0


def _announce(url: str) -> None:
    print(url, flush=True)
    print("TF Serving's REST API: POST :predict with {\"instances\": [...]}; Ctrl-C stops",
          file=sys.stderr, flush=True)  # fmt: skip


def cmd_predict(args: argparse.Namespace) -> int:
    from app.serve import client, protocol

    folder = client.target_folder(args.target)
    record = client.running(folder)
    if record is not None:
        meta = client.metadata(record)["layerflow"]
        specs, outputs, classes = meta["inputs"], meta["outputs"], meta["classes"]
        body = _body(args, specs)
        answer = client.predict(record, body)
        by_output = {outputs[0]: answer["predictions"]} if len(outputs) == 1 else {
            name: [row[name] for row in answer["predictions"]] for name in outputs
        }
        source = record["url"]
    else:
        from app.cli.main import quiet_tensorflow

        quiet_tensorflow()
        from app.runtime.images import decode_image_bytes
        from app.serve.model import load_served

        served = load_served(folder)
        specs, outputs, classes = served.predictor.inputs, served.predictor.outputs, served.classes
        feed, _ = protocol.parse_request(_body(args, specs), specs, decode_image_bytes)
        by_output = served.predictor.predict_all(feed)
        source = "the model loaded in this process (no warm server runs)"
    rows = []
    for name in outputs:
        for index, described in enumerate(protocol.describe(by_output[name], classes.get(name))):
            rows.append({"row": index + 1, "output": name, **described})
    lines = [f"predictions of {folder.name}, from {source}"]
    lines.append(table([_shown(row) for row in rows], ["row", "output", "prediction"]))
    emit(args, {"target": folder.name, "source": source, "predictions": rows}, "\n".join(lines))
    return 0


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    if "top" in row:
        text = ", ".join(f"{name} {p:.3f}" for name, p in row["top"])
    else:
        text = ", ".join("-" if v is None else f"{v:.4g}" for v in row["values"][:6])
        text += ", ..." if len(row["values"]) > 6 else ""
    return {"row": row["row"], "output": row["output"], "prediction": text}


def _body(args: argparse.Namespace, specs: list[dict[str, Any]]) -> dict[str, Any]:
    """The TF Serving request for the inputs given: rows of tables, image files, texts."""
    if args.instances:
        try:
            return json.loads(Path(args.instances).read_text())
        except (OSError, ValueError) as err:
            raise CommandError(f"{args.instances}: not a JSON request body ({err})") from None
    if args.text:
        return {"instances": _one_input(specs, "text", [str(t) for t in args.text])}
    images = [p for p in args.inputs if Path(p).suffix.lower() in IMAGE_SUFFIXES]
    if images and len(images) == len(args.inputs):
        return {"instances": _one_input(specs, "image", [_b64(p) for p in images])}
    if images:
        raise CommandError("give either image files or tables, not both")
    if not args.inputs:
        raise CommandError("give rows (a CSV file), image files, --text or --instances")
    return {"instances": [row for path in args.inputs for row in _table_rows(path, specs)]}


def _one_input(specs: list[dict[str, Any]], what: str, values: list[Any]) -> list[Any]:
    if len(specs) != 1:
        names = ", ".join(s.get("column") or s["name"] for s in specs)
        raise CommandError(f"this model takes {len(specs)} inputs ({names}); give a table")
    return values


def _b64(path: str) -> dict[str, str]:
    try:
        return {"b64": base64.b64encode(Path(path).read_bytes()).decode()}
    except OSError as err:
        raise CommandError(f"{path}: {err.strerror}") from None


def _table_rows(path: str, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's rows as instances: the value of each input's column (missing: null)."""
    from app.data.sources import read_source
    from app.jsonable import json_ready

    frame = read_source(path).frame
    columns = [spec.get("column") or spec["name"] for spec in specs]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CommandError(f"{path}: no column {', '.join(map(repr, missing))}; the model reads "
                           f"{', '.join(columns)}")  # fmt: skip
    return json_ready(frame[columns].to_dict(orient="records"))


def register(commands: argparse._SubParsersAction) -> None:
    """Add `serve` and `predict` to the parser."""
    serve = add_command(
        commands,
        "serve",
        cmd_serve,
        "Serve a run's best checkpoint, or an export, behind TensorFlow Serving's REST API "
        "(POST /v1/models/NAME:predict); the first line printed is the model's URL.",
        json_flag=False,
    )
    serve.add_argument("target", help="run id or directory, or an export folder")
    serve.add_argument("--port", type=int, default=8501, help="default 8501, TF Serving's")
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine)")
    serve.add_argument(
        "--idle", type=float, default=0, help="stop after this many seconds without a request"
    )
    predict = add_command(
        commands,
        "predict",
        cmd_predict,
        "Predict with a run's best checkpoint or an export: rows of CSV files, image files, "
        "--text, or a TF Serving request body (--instances); the warm server answers when one "
        "runs.",
    )
    predict.add_argument("target", help="run id or directory, or an export folder")
    predict.add_argument("inputs", nargs="*", help="CSV files of rows, or image files")
    predict.add_argument("--text", action="append", help="a text to classify (repeatable)")
    predict.add_argument("--instances", help="a JSON file holding a TF Serving request body")
