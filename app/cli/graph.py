"""Graph commands: templates, new, validate, shapes, trust, codegen, import-keras and blocks."""

from __future__ import annotations

import argparse
import sys

from app.cli.command import CommandError, add_command
from app.cli.output import emit, table, write_or_print
from app.errors import printable
from app.graph.document import load, save
from app.graph.shapes import untrusted_nodes


def cmd_templates(args: argparse.Namespace) -> int:
    from app.graph.model_templates import list_templates

    rows = [vars(t) if not isinstance(t, dict) else t for t in list_templates()]
    emit(args, rows, table(rows, ["name", "task", "nodes", "description"]))
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from app.graph.model_templates import new_from_template

    doc = new_from_template(args.template, args.name)
    save(doc, args.output)
    print(f"wrote {args.output} from template {args.template}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from app.graph.analysis import analyze

    doc = load(args.graph, strict=False)
    _trust_if_asked(args, doc)
    analysis = analyze(doc)
    problems = [p.to_dict() for p in analysis.problems]
    if analysis.problems:
        text = "\n".join(
            f"{p.level:<7} {p.message}" + (f"\n        fix: {p.fix.description}" if p.fix else "")
            for p in analysis.problems
        )
    else:
        text = f"{args.graph}: ok, {len(analysis.doc.nodes)} nodes"
    emit(args, {"ok": analysis.ok, "problems": problems}, text)
    return 0 if analysis.ok else 1


def cmd_shapes(args: argparse.Namespace) -> int:
    from app.graph.analysis import analyze

    doc = load(args.graph)
    _trust_if_asked(args, doc)
    analysis = analyze(doc)
    rows = analysis.rows()
    totals = analysis.totals()
    text = table(rows, ["id", "label", "component", "output_shape", "params", "flops"])
    text += (
        f"\n\ntotal: {totals['params']:,} parameters ({totals['trainable']:,} trainable), "
        f"~{totals['flops']:,} FLOPs per sample"
    )
    for problem in analysis.problems:
        text += f"\n{problem.level}: {problem.message}"
    emit(
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
        write_or_print(node_snippet(doc, args.node), args.output)
    else:
        write_or_print(generate_module(doc), args.output)
    return 0


def cmd_import_keras(args: argparse.Namespace) -> int:
    from app.keras.importer import import_keras

    doc = import_keras(args.model, flat=args.flat)
    save(doc, args.output)
    blocks = f", {len(doc.blocks)} blocks" if doc.blocks else ""
    print(f"wrote {args.output}: {len(doc.nodes)} nodes, {len(doc.edges)} edges{blocks}")
    return 0


def cmd_blocks(args: argparse.Namespace) -> int:
    from app.workspace import Workspace

    workspace = Workspace.current()

    if args.action == "list":
        names = workspace.blocks()
        rows = [
            {
                "name": n,
                "nodes": len(block.nodes),
                "description": block.description,
            }
            for n, block in ((n, workspace.block(n)) for n in names)
        ]
        emit(
            args,
            rows,
            table(rows, ["name", "nodes", "description"])
            if rows
            else f"no blocks saved in {workspace.blocks_dir}",
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
        path = workspace.save_block(args.name, doc.blocks[args.name])
        print(f"saved block {args.name} to {path}")
    else:
        save(workspace.use_block(doc, args.name), args.graph)
        print(f"added block {args.name} to {args.graph}")
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    """Show the graph's code that this workspace does not trust yet; trust it when confirmed."""
    doc = load(args.graph, strict=False)
    nodes = untrusted_nodes(doc)
    if not nodes:
        print(f"{args.graph}: nothing to trust (no code, or all of it trusted already)")
        return 0
    for node in nodes:
        print(f"--- node {printable(node.id)} ({printable(node.component)}) ---")
        print(code_text(node.code or ""))
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("read the code above, then run again with --yes to trust it")
        if input("Trust this code and let LayerFlow run it? [y/N] ").strip().lower() != "y":
            print("not trusted")
            return 1
    from app.workspace import Workspace

    Workspace.current().trust(node.code or "" for node in nodes)
    print(f"{args.graph}: trusted the code of {len(nodes)} node(s)")
    return 0


def code_text(code: str) -> str:
    """Code as it may be shown in a terminal: control characters (escape codes) made visible."""
    return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in code)


def _trust_if_asked(args: argparse.Namespace, doc) -> None:
    from app.workspace import Workspace

    if getattr(args, "trust", False):
        count = Workspace.current().trust(node.code or "" for node in untrusted_nodes(doc))
        if count:
            print(f"trusted the code of {count} node(s) of {args.graph}", file=sys.stderr)


def register(commands: argparse._SubParsersAction) -> None:
    """Add the graph commands to the parser, in the order --help lists them."""
    add_command(commands, "templates", cmd_templates, "List the model templates.")
    new = add_command(
        commands, "new", cmd_new, "Create a graph from a model template.", json_flag=False
    )
    new.add_argument("--template", required=True)
    new.add_argument("--name", help="name of the new graph")
    new.add_argument("-o", "--output", required=True)
    trust_help = "trust the graph's code first (it runs to find shapes); see `layerflow trust`"
    validate = add_command(
        commands, "validate", cmd_validate, "Check a graph: errors, warnings, tips."
    )
    validate.add_argument("graph")
    validate.add_argument("--trust", action="store_true", help=trust_help)
    shapes = add_command(
        commands, "shapes", cmd_shapes, "Output shape, parameters and FLOPs per node."
    )
    shapes.add_argument("graph")
    shapes.add_argument("--trust", action="store_true", help=trust_help)
    trusting = add_command(
        commands,
        "trust",
        cmd_trust,
        "Show a shared graph's code and trust it, so that LayerFlow may run it.",
        json_flag=False,
    )
    trusting.add_argument("graph")
    trusting.add_argument("--yes", action="store_true", help="trust without asking")
    codegen = add_command(
        commands, "codegen", cmd_codegen, "Generate the Keras code of a graph.", json_flag=False
    )
    codegen.add_argument("graph")
    codegen.add_argument("-o", "--output", help="file to write (default: standard output)")
    codegen.add_argument("--node", help="only this node's snippet")
    imp = add_command(
        commands,
        "import-keras",
        cmd_import_keras,
        "Turn a .keras, .h5 or JSON model into a graph, its repeated motifs folded into blocks.",
        json_flag=False,
    )
    imp.add_argument("model")
    imp.add_argument("-o", "--output", required=True)
    imp.add_argument("--flat", action="store_true", help="one node per layer, no blocks")
    blocks = add_command(
        commands, "blocks", cmd_blocks, "The block library: list, save a graph's block, use one."
    )
    blocks.add_argument("action", choices=["list", "save", "use"])
    blocks.add_argument("graph", nargs="?")
    blocks.add_argument("name", nargs="?")
