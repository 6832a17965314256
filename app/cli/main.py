"""`layerflow`: the command line over the engine. Tables for people, --json for machines.

Every command exits 0 on success, 1 on bad input (with one line per problem) and 2 on a usage
error; none prints a traceback for a user's mistake.

Each group of commands is a module of app.cli with its handlers and its part of the parser
(graph, data, train, runs, compare, test, export, serve); this one puts the parser together and runs
a command, turning the errors a user can make into one line each.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from app.cli import compare, data, export, graph, profile, runs, search, serve, test, train
from app.cli.command import CommandError
from app.cli.output import visible_output
from app.graph.problems import GraphError

LOADS_TENSORFLOW = frozenset({"import-keras", "train", "test", "export", "serve", "profile"})


def build_parser() -> argparse.ArgumentParser:
    """The `layerflow` parser, each command's arguments from its group's module."""
    parser = argparse.ArgumentParser(
        prog="layerflow", description="LayerFlow: visual deep learning workspace for Keras."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (graph, data, train, runs, compare, test, export, serve, profile, search):
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` (default: the process's arguments) and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(search.with_verb(list(sys.argv[1:] if argv is None else argv)))
    if args.command == "profile":
        from app.profile.launch import ENVIRONMENT

        for name, value in ENVIRONMENT.items():  # before TensorFlow starts, if it has not
            os.environ.setdefault(name, value)
    worker = (args.command, getattr(args, "verb", None)) == ("search", "worker")
    if args.command in LOADS_TENSORFLOW or worker:
        quiet_tensorflow()
    with visible_output():
        return _run(args)


def quiet_tensorflow() -> None:
    """Load TensorFlow without its start-up lines (oneDNN, CPU instructions, absl), which are
    for its developers; LAYERFLOW_DEBUG=1 shows them.

    TF_CPP_MIN_LOG_LEVEL quiets this process and the child processes it starts; the oneDNN line
    ignores it and is written by native code while TensorFlow loads, so standard error is closed
    to native code for that import only.
    """
    if os.environ.get("LAYERFLOW_DEBUG"):  # all of them, whatever app.keras sets by default
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(null, 2)
    try:
        import tensorflow  # noqa: F401 - loaded here, quietly, for the command
    except ImportError:
        pass  # the command says what it misses
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    logging.getLogger("absl").setLevel(logging.ERROR)  # Keras' warnings through absl


def _run(args: argparse.Namespace) -> int:
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
