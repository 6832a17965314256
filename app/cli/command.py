"""What every command module shares: the user-facing error, and the way a command joins the
parser (its handler, and --json for the commands that print data)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def add_command(
    commands: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    help_text: str,
    json_flag: bool = True,
) -> argparse.ArgumentParser:
    """A subcommand that runs `handler`, with a --json flag unless `json_flag` is False."""
    command = commands.add_parser(name, help=help_text, description=help_text)
    command.set_defaults(handler=handler)
    if json_flag:
        command.add_argument("--json", action="store_true", help="machine-readable output")
    return command
