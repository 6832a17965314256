"""The runtime's error: data that cannot be used, said in one line."""

from __future__ import annotations


class DataError(ValueError):
    """Data that cannot be used. One line naming the file (and row/column where known)."""

    def __init__(self, message: str):
        # Messages quote other libraries' errors, some of which span lines; keep ours to one.
        super().__init__(" ".join(line.strip() for line in message.splitlines() if line.strip()))
