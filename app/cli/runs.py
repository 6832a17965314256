"""`layerflow runs`: list and show training runs; pause, resume, stop or delete one."""

from __future__ import annotations

import argparse

from app.cli.output import emit, table, when

# The settings `runs show` prints; the rest are in its --json.
_SHOWN_SETTINGS = (
    "optimizer",
    "learning_rate",
    "schedule",
    "batch_size",
    "epochs",
    "seed",
    "strategy",
)


def cmd_runs(args: argparse.Namespace) -> int:
    from app.train import launch
    from app.workspace import Workspace, runs

    workspace = Workspace.current()

    action = args.runs_action
    if action == "list":
        rows = workspace.runs()
        shown = [
            {
                **row,
                "epoch": f"{row['epoch']}/{row['epochs']}",
                "created": when(row["created"]),
                "best": f"{row['best']['monitor']} {row['best']['value']:.4g}"
                if row["best"]
                else None,
                "search": f"{row['search']['study']} #{row['search']['trial']}"
                if row.get("search")
                else None,
            }
            for row in rows
        ]
        text = (
            table(shown, ["id", "model", "state", "epoch", "data", "best", "search", "created"])
            if rows
            else f"no runs in {workspace.models_dir}"
        )
        emit(args, rows, text)
        return 0
    if action == "show":
        info = runs.get_run(workspace.run(args.run))
        lines = [f"{key}: {info[key]}" for key in ("id", "model", "dir", "state", "reason")]
        lines.append(f"epoch: {info['epoch']}/{info['epochs']}")
        lines.append(f"data: {info['data']['name']} (version {str(info['data']['version'])[:10]})")
        lines.append(f"created: {when(info['created'])}")
        if info["best"]:
            best = info["best"]
            lines.append(f"best: {best['monitor']} {best['value']:.4g} at epoch {best['epoch']}")
        lines += [f"  {k}: {v:.4g}" for k, v in info["metrics"].items()]
        lines.append(f"version: {(info['version'] or '-')[:10]}")
        changed = {k: v for k, v in info["settings"].items() if k in _SHOWN_SETTINGS}
        lines.append("settings: " + ", ".join(f"{k}={v}" for k, v in changed.items()))
        emit(args, info, "\n".join(lines))
        return 0
    folder = workspace.run(args.run)
    if action == "delete":
        workspace.delete_run(folder)
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


def register(commands: argparse._SubParsersAction) -> None:
    """Add `runs` and its actions to the parser."""
    runs_parser = commands.add_parser(
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
