"""Errors as users read them: one line, printable, short.

Every process that reports a failure (the runner, the tester, the exporter, the shape probe,
the importer) says it through `one_line`, so a reason in status.json, a report or a terminal
never spans lines, never carries terminal escape codes and never runs on for pages.
"""

from __future__ import annotations

import re

LIMIT = 300
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")  # ANSI sequences (Keras colours some)


def printable(text: object) -> str:
    """The text on one line, terminal escape codes removed and other control characters made
    spaces: safe to print whatever file, label or library it came from."""
    text = _ESCAPES.sub("", str(text))
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def one_line(err: BaseException, plain: type | tuple[type, ...] = ()) -> str:
    """The error's first non-empty line, printable and at most LIMIT characters, after its type
    name ('ResourceExhaustedError: OOM when allocating ...'); without the type name for errors
    of the `plain` types, whose messages are written for users already."""
    lines = [printable(line) for line in str(err).splitlines()]
    text = next((line for line in lines if line), "")
    if not isinstance(err, plain) or not text:
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= LIMIT else text[: LIMIT - 3] + "..."
