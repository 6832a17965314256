"""`layerflow compare`: two or more runs side by side, a `*` before each row that differs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from app.cli.command import add_command
from app.cli.output import emit


def cmd_compare(args: argparse.Namespace) -> int:
    from app.evaluate.compare import compare_runs

    result = compare_runs(args.runs)
    emit(args, result, _comparison_text(result))
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


def register(commands: argparse._SubParsersAction) -> None:
    """Add `compare` to the parser."""
    compare = add_command(
        commands, "compare", cmd_compare, "Two or more runs side by side: metrics, settings."
    )
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run id or directory")
