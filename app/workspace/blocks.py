"""The block library: reusable cells saved once and used in any graph.

A graph carries the definitions of the blocks it uses (so a graph file stands alone); the
library under `<workspace>/blocks/` holds one JSON file per block to copy into graphs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import ValidationError

from app.files import atomic_write_text
from app.graph.document import BLOCK_NAME_PATTERN, BlockDef, GraphDocument, check_block
from app.graph.problems import GraphError
from app.paths import inside


def library_dir(root: Path) -> Path:
    return root / "blocks"


def _path(root: Path, name: str) -> Path:
    if not re.fullmatch(BLOCK_NAME_PATTERN, name):
        raise ValueError(f"Invalid block name {name!r}: use letters, digits and _")
    return inside(library_dir(root), f"{name}.json")


def save_block(root: Path, name: str, block: BlockDef) -> Path:
    problems = [p for p in check_block(name, block) if p.level == "error"]
    if problems:
        raise GraphError(problems, f"block {name}")
    return atomic_write_text(_path(root, name), block.model_dump_json(indent=2) + "\n")


def load_block(root: Path, name: str) -> BlockDef:
    path = _path(root, name)
    if not path.exists():
        available = ", ".join(list_blocks(root)) or "none saved"
        raise ValueError(f"No block named {name!r} in {path.parent} (available: {available})")
    try:
        return BlockDef.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError) as err:
        raise ValueError(f"{path}: not a valid block: {str(err).splitlines()[0]}") from None


def list_blocks(root: Path) -> list[str]:
    folder = library_dir(root)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def use_block(root: Path, doc: GraphDocument, name: str) -> GraphDocument:
    """A copy of doc whose block definitions include the library's block `name`."""
    block = load_block(root, name)
    return doc.model_copy(update={"blocks": {**doc.blocks, name: block}}, deep=True)
