"""How commands print: aligned tables for people, JSON with --json for machines, -o files,
progress lines on standard error, and times in local time. Whatever a command prints reaches
the terminal as text: control characters from a graph, a dataset or a file name (a terminal
escape code in a label, say) are shown as `\x1b`, never obeyed."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

# C0 and C1 control characters but newline, tab and carriage return (progress bars use it).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class VisibleText:
    """A text stream that writes control characters as visible escapes (`\\x1b`)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(visible(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding...
        return getattr(self.stream, name)


@contextlib.contextmanager
def visible_output() -> Iterator[None]:
    """Standard output and error as VisibleText while a command runs."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = VisibleText(sys.stdout), VisibleText(sys.stderr)  # type: ignore
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """The rows as aligned columns under an upper-case header; "-" for a missing value."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "(" + ", ".join("None" if d is None else str(d) for d in value) + ")"
    if isinstance(value, int):
        return f"{value:,}"
    return visible(str(value))


def visible(text: str) -> str:
    """Text with its control characters written as escapes (`\\x1b`)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print `data` as JSON when the command was given --json, else `text`."""
    print(json.dumps(data, indent=2) if getattr(args, "json", False) else text)


def write_or_print(text: str, output: str | None) -> None:
    """Write `text` to the file `output` (saying so on standard error), or print it."""
    if output:
        from app.files import atomic_write_text

        atomic_write_text(output, text)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def step(message: str) -> None:
    """A progress line on standard error, so that standard output stays the result."""
    print(f"... {message}", file=sys.stderr)


def when(timestamp: float) -> str:
    """A Unix time as local "YYYY-MM-DD HH:MM:SS"."""
    import datetime

    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
