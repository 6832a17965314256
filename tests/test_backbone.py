"""The Backbone component: keras.applications networks counted without Keras, and built."""

from __future__ import annotations

import math

import pytest

from app.graph.analysis import analyze
from app.keras.builder import build_model
from tests.graphs import single


def counts(model) -> tuple[int, int]:
    def size(weights):
        return sum(math.prod(int(d) for d in w.shape) for w in weights)

    return size(model.trainable_weights), size(model.non_trainable_weights)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("architecture", "shape", "trainable", "pooling"),
    [
        ("MobileNetV2", [32, 32, 3], True, "none"),
        ("MobileNetV2", [45, 61, 1], False, "avg"),
        ("ResNet50", [33, 40, 3], True, "max"),
        ("EfficientNetB0", [64, 32, 2], True, "none"),
        ("EfficientNetB0", [32, 32, 3], False, "avg"),
    ],
)
def test_backbone_counts_match_keras(architecture, shape, trainable, pooling):
    import keras

    settings = {"architecture": architecture, "trainable": trainable, "pooling": pooling}
    doc = single("Backbone", settings, [shape])
    analysis = analyze(doc)
    assert analysis.ok, analysis.errors
    ours = analysis.infos["under_test"]
    keras.backend.clear_session()
    model = build_model(doc)
    backbone = model.get_layer("under_test")
    assert tuple(backbone.output.shape) == ours.shape
    assert counts(backbone) == (ours.trainable, ours.non_trainable)


def test_small_images_are_refused_with_the_reason():
    analysis = analyze(single("Backbone", {}, [[16, 16, 3]]))
    (error,) = analysis.errors
    assert error.node == "under_test"
    assert "needs images of at least 32x32, received 16x16" in error.message


@pytest.mark.parametrize("path", ["/etc/passwd.h5", "../outside.weights.h5", "w.txt"])
def test_weights_file_must_be_a_weights_file_inside_the_workspace(path):
    (error,) = analyze(single("Backbone", {"weights_file": path}, [[32, 32, 3]])).errors
    assert "`weights_file`" in error.message


def test_weights_come_from_the_local_file(tmp_path, monkeypatch):
    import keras
    import numpy as np

    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(tmp_path))
    source = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    (tmp_path / "weights").mkdir()
    source.save_weights(tmp_path / "weights" / "mobilenet.weights.h5")
    settings = {"architecture": "MobileNetV2", "weights_file": "weights/mobilenet.weights.h5"}
    model = build_model(single("Backbone", settings, [[32, 32, 3]]))
    loaded = model.get_layer("under_test").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(loaded, source.get_weights(), strict=True))


def test_an_exported_projects_model_loads_the_weights_copied_beside_it(tmp_path, monkeypatch):
    """model.py in an exported project names weights/<path in the workspace>, not this
    workspace's absolute path, and builds with those weights from the project's folder."""
    import subprocess
    import sys

    import keras
    import numpy as np

    from app.export.exporter import ExportError
    from app.export.project import copy_weights
    from app.graph.codegen import generate_module

    workspace, project = tmp_path / "workspace", tmp_path / "project"
    monkeypatch.setenv("LAYERFLOW_WORKSPACE", str(workspace))
    source = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    (workspace / "weights").mkdir(parents=True)
    source.save_weights(workspace / "weights" / "mobilenet.weights.h5")
    settings = {"architecture": "MobileNetV2", "weights_file": "weights/./mobilenet.weights.h5"}
    doc = single("Backbone", settings, [[32, 32, 3]])

    project.mkdir()
    assert copy_weights(doc, project) == ["weights/weights/mobilenet.weights.h5"]
    code = generate_module(doc, weights_dir="weights")
    assert str(workspace) not in code and "'weights/weights/mobilenet.weights.h5'" in code
    (project / "model.py").write_text(code)
    np.savez(tmp_path / "expected.npz", *source.get_weights())
    check = (
        "import numpy as np, model\n"
        "built = model.build_model().get_layer('under_test').get_weights()\n"
        f"expected = np.load({str(tmp_path / 'expected.npz')!r})\n"
        "assert all(np.array_equal(a, expected[f'arr_{i}']) for i, a in enumerate(built))\n"
    )
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # nothing of the workspace's
    done = subprocess.run([sys.executable, "-c", check], cwd=project, capture_output=True,
                          text=True, env=bare)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]

    (workspace / "weights" / "mobilenet.weights.h5").unlink()
    with pytest.raises(ExportError, match="weights/mobilenet.weights.h5: a Backbone's weights"):
        copy_weights(doc, tmp_path / "elsewhere")
