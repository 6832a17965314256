import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@pytest.fixture(autouse=True, scope="session")
def _own_workspace(tmp_path_factory):
    """No test works in the repository: by default the session shares a temporary workspace
    (its trust store, blocks and runs included); tests and fixtures that need their own set
    LAYERFLOW_WORKSPACE again."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERFLOW_WORKSPACE", str(tmp_path_factory.mktemp("workspace")))
        yield


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace for the test (test modules with prepared data override this)."""
    root = tmp_path / "workspace"
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(root))
    return root


@pytest.fixture(scope="session")
def _trained_once(tmp_path_factory):
    from tests.trained import make_trained

    root = tmp_path_factory.mktemp("trained") / "workspace"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERFLOW_WORKSPACE", str(root))
        return make_trained(root)


# Runs of extra_workspace: name -> (sample, template, epochs), as in tests/trained.py.
EXTRA_RUNS = {
    "text": ("texts", "text_classification", 1),
    "forecasting": ("timeseries", "time_series_forecasting", 1),
    "anomaly": ("breast_cancer", "anomaly_autoencoder", 3),
}


@pytest.fixture(scope="session")
def _extra_once(_trained_once, tmp_path_factory):
    from tests.trained import TrainedWorkspace, copy_trained, make_trained

    root = tmp_path_factory.mktemp("extra") / "workspace"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERFLOW_WORKSPACE", str(root))
        made = copy_trained(_trained_once, root)
        extra = make_trained(root, EXTRA_RUNS)
        runs = {name: folder.relative_to(root) for name, folder in made.runs.items()}
        return TrainedWorkspace(root, {**runs, **extra.runs}, {**made.data, **extra.data})


@pytest.fixture
def extra_workspace(_extra_once, tmp_path, monkeypatch):
    """trained_workspace with the runs of EXTRA_RUNS too."""
    from tests.trained import copy_trained

    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(tmp_path / "extra"))
    return copy_trained(_extra_once, tmp_path / "extra")


@pytest.fixture
def trained_workspace(_trained_once, tmp_path, monkeypatch):
    """A copy, for this test, of a workspace with one finished run per task (tests/trained.py)."""
    from tests.trained import copy_trained

    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(tmp_path / "trained"))
    return copy_trained(_trained_once, tmp_path / "trained")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each test's outcome on its item, for fixtures that save artifacts on failure."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report
