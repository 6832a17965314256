"""`layerflow search space GRAPH`: a graph's search space (app.graph.space), checked, or one
proposed from the graph and written into it. (Running a search is still to come.)"""

from __future__ import annotations

import argparse

from app.cli.command import add_command
from app.cli.output import emit, table
from app.graph.document import load, save
from app.graph.space import described, dimensions, propose, space_problems


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


def register(commands: argparse._SubParsersAction) -> None:
    """Add `search` (its `space` command) to the parser."""
    search = commands.add_parser("search", help="Search over a graph's settings and structure.")
    verbs = search.add_subparsers(dest="verb", required=True, metavar="VERB")
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
