"""`layerflow data`: samples, add, list, show, versions, configure and restore datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.command import CommandError
from app.cli.output import emit, step, table, when
from app.graph.document import load, save


def cmd_data(args: argparse.Namespace) -> int:
    from app.data.summaries import summary
    from app.workspace import Workspace

    workspace = Workspace.current()

    action = args.data_action
    if action == "samples":
        return _data_samples(args)
    if action == "add":
        overrides = dict(_pair(item) for item in args.type or [])
        dataset = workspace.add_dataset(
            args.path, args.name, target=args.target, overrides=overrides, progress=step
        )
        profile = dataset.meta["profile"]
        encoding = f", {profile['encoding']} text" if profile.get("encoding") else ""
        print(
            f"added {args.name}: {dataset.meta['rows']:,} rows, task {dataset.meta['task']}"
            f"{encoding}, version {dataset.version[:10]}"
        )
        for note in profile.get("notes", []):
            print(f"  {note}")
        return 0
    if action == "list":
        rows = workspace.datasets()
        shown = [{**row, "version": (row["version"] or "")[:10]} for row in rows]
        text = (
            table(shown, ["name", "kind", "rows", "target", "task", "version"])
            if rows
            else (f"no datasets in {workspace.data_dir}")
        )
        emit(args, rows, text)
        return 0
    if action == "show":
        dataset = workspace.dataset(args.name)
        info = {
            **dataset.summary(),
            "splits": {k: len(v) for k, v in dataset.splits.items()},
            "columns": dataset.meta["profile"]["columns"],
            "classes": dataset.meta["profile"].get("classes"),
        }
        columns = [
            {"column": c["name"], "type": c["type"], "missing": c["missing"],
             "unique": c["unique"], "summary": summary(c)}
            for c in info["columns"]
        ]  # fmt: skip
        text = "\n".join(f"{k}: {v}" for k, v in info.items() if k not in ("columns",))
        text += "\n\n" + table(columns, ["column", "type", "missing", "unique", "summary"])
        notes = dataset.meta["profile"].get("notes", [])
        if notes:
            text += "\n\n" + "\n".join(notes)
        emit(args, info, text)
        return 0
    if action == "versions":
        rows = [
            {
                "version": v.version[:10],
                "created": when(v.created),
                "files": v.files,
                "size": v.size,
                "note": v.note,
            }
            for v in workspace.dataset_versions(args.name)
        ]
        emit(args, rows, table(rows, ["version", "created", "files", "size", "note"]))
        return 0
    if action == "configure":
        doc, changes = workspace.dataset(args.name).configure(load(args.graph, strict=False))
        save(doc, args.graph)
        print("\n".join(changes) if changes else f"{args.graph} already fits {args.name}")
        return 0
    version = workspace.restore_dataset(args.name, args.version)
    print(f"restored {args.name} to version {version.version[:10]}")
    return 0


def _data_samples(args: argparse.Namespace) -> int:
    import tempfile

    from app.data.samples import SAMPLES, make_sample
    from app.workspace import Workspace

    if not args.name:
        rows = [{"name": k, "description": v} for k, v in SAMPLES.items()]
        emit(args, rows, table(rows, ["name", "description"]))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        step(f"making sample {args.name}")
        path = make_sample(args.name, Path(folder))
        dataset = Workspace.current().add_dataset(path, args.name, progress=step)
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


def register(commands: argparse._SubParsersAction) -> None:
    """Add `data` and its actions to the parser."""
    data = commands.add_parser(
        "data", help="Datasets: samples, add, list, show, versions, restore."
    )
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
        help="override a column's inferred type (numeric, categorical, binary, date, "
        "identifier, text, image_path, mask_path); repeatable",
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
