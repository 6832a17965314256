import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace for the test (test modules with prepared data override this)."""
    root = tmp_path / "workspace"
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(root))
    return root
