"""Which graph code this workspace trusts to run.

A graph document is something people share, and a Custom node carries Python. As notebooks do,
LayerFlow runs a node's code only once it is trusted: code made or edited in this workspace is
trusted as it is saved; code that arrives in a copied or downloaded graph is not, until the user
has read it and trusts it (`layerflow trust GRAPH`, or Trust on the Model page). Until then its
node gets no shape probe and no model is built from it.

Trust is kept by the workspace, never by the document (a file cannot vouch for itself): the
SHA-256 of each trusted code body, in `<workspace>/.layerflow/trusted.json`. A foundation module,
like app.paths: the pure graph engine asks it before it probes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from app.files import atomic_write_text, locked
from app.paths import workspace_root

STORE = Path(".layerflow") / "trusted.json"


def digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def _path(root: Path | None) -> Path:
    return (root or workspace_root()) / STORE


def trusted_digests(root: Path | None = None) -> frozenset[str]:
    try:
        data = json.loads(_path(root).read_text())
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return frozenset()
    return frozenset(d for d in data.get("code", []) if isinstance(d, str))


def is_trusted(code: str, root: Path | None = None) -> bool:
    return digest(code) in trusted_digests(root)


def trust(codes: Iterable[str], root: Path | None = None) -> int:
    """Trust these code bodies from now on; returns how many were new."""
    path = _path(root)
    with locked(path.with_suffix(".lock")):
        known = trusted_digests(root)
        new = {digest(c) for c in codes} - known
        if new:
            atomic_write_text(path, json.dumps({"code": sorted(known | new)}, indent=1) + "\n")
    return len(new)
