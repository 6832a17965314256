"""The engine's layering: the pure graph engine loads and works without TensorFlow, and the
private-names contract (tests/contracts.py, run by lint-imports) finds what it should."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.contracts import _private_imports

REPOSITORY = Path(__file__).resolve().parent.parent


def test_the_graph_engine_loads_and_generates_code_without_tensorflow():
    script = textwrap.dedent("""
        import importlib, json, pkgutil, sys
        import app.graph
        from app.graph.analysis import analyze
        from app.graph.codegen import generate_module
        from app.graph.model_templates import list_templates, load_template

        modules = [m.name for m in pkgutil.walk_packages(app.graph.__path__, "app.graph.")]
        for name in modules:
            importlib.import_module(name)
        code = {t.name: generate_module(analyze(load_template(t.name))) for t in list_templates()}
        print(json.dumps({"modules": len(modules), "templates": len(code),
                          "build_model": all("def build_model" in c for c in code.values()),
                          "loaded": sorted({"tensorflow", "keras"} & set(sys.modules))}))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["modules"] >= 10 and result["templates"] >= 5
    assert result["build_model"]
    assert result["loaded"] == []


def test_private_names_contract_sees_private_names_imported_from_elsewhere(tmp_path, monkeypatch):
    package = tmp_path / "pkg_under_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "users.py").write_text(
        "from pkg_under_test.helpers import _secret, public\n"
        "from pkg_under_test.helpers import (\n    other,\n    _hidden,\n)\n"
        "from os import _exit\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = _private_imports("pkg_under_test.users")
    assert found == [
        (1, "pkg_under_test.helpers", "_secret"),
        (2, "pkg_under_test.helpers", "_hidden"),
        (6, "os", "_exit"),
    ]
