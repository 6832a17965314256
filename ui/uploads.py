"""Files uploaded through st.file_uploader, saved where the engine can read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_upload(upload: Any, folder: Path, stem: str) -> Path:
    """The uploaded file written to `folder` as `<stem><its suffix, lower case>`: the upload's
    own name never becomes a path."""
    path = folder / f"{stem}{Path(upload.name).suffix.lower()}"
    path.write_bytes(upload.getvalue())
    return path
