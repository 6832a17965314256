"""An import-linter contract of our own: no module imports a private name of another package.

`from app.runtime.columns import _PUNCTUATION` in app.export would couple the exporter to a
detail that app.runtime is free to change; a name another package needs is public. Inside one
package (app.graph, app.graph.components, ...) private names are shared freely.

Configured in pyproject.toml and checked by `lint-imports` in `make test`.
"""

from __future__ import annotations

import ast
import importlib.util

from importlinter import Contract, ContractCheck, fields, output


def _package(module: str, depth: int) -> str:
    return ".".join(module.split(".")[:depth])


def _private_imports(module: str) -> list[tuple[int, str, str]]:
    """(line, imported module, name) of every `from X import _name` in `module`'s source."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return []
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read(), spec.origin)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append((node.lineno, node.module, alias.name))
    return found


class PrivateNamesContract(Contract):
    """Modules in `containers` import no `_name` from a module in another package.

    Configuration options:
        - containers: the root packages to check (app, ui, pages).
        - depth: how many leading parts of a module name make its package (2: app.graph).
    """

    type_name = "private_names"

    containers = fields.ListField(subfield=fields.StringField())
    depth = fields.IntegerField(required=False, default=2)

    def check(self, graph, verbose: bool) -> ContractCheck:
        depth = int(self.depth)  # type: ignore[arg-type]
        roots = tuple(str(c) for c in self.containers)  # type: ignore[attr-defined]
        broken = []
        for module in sorted(graph.modules):
            if not module.startswith(roots):
                continue
            for line, imported, name in _private_imports(module):
                if imported.split(".")[0] not in {r.split(".")[0] for r in roots}:
                    continue  # another project's private names are its own business
                if _package(module, depth) != _package(imported, depth):
                    broken.append(f"{module}:{line} imports {name} from {imported}")
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["broken"]:
            output.print_error(line)
