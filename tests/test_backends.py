"""The same model on another framework: every model template's generated module builds under
Keras' JAX backend with the engine's parameters and output shapes, and a trained `.keras`
export loads there and predicts as TensorFlow does, within 1e-4.

Each JAX side runs in a child process (a Keras process has one backend, chosen before Keras is
imported), given the inputs and writing what it found as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from app.graph.analysis import analyze
from app.graph.codegen import generate_module
from app.graph.components import BACKENDS, CATALOGUE, backend_notes
from app.graph.model_templates import list_templates, load_template

ROOT = Path(__file__).resolve().parent.parent


def on_jax(script: str, folder: Path, timeout: float = 600) -> dict:
    """Run `script` in a JAX-backend Keras process in `folder`; the JSON it prints last."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_templates_generated_module_builds_on_jax_as_the_engine_says(tmp_path):
    expected = {}
    for name in (info.name for info in list_templates()):
        doc = load_template(name)
        analysis = analyze(doc)
        assert backend_notes(doc) == [], name  # no template is tied to TensorFlow
        (tmp_path / f"{name}.py").write_text(generate_module(analysis))
        output = next(n.id for n in doc.nodes if n.component == "Output")
        expected[name] = {"params": analysis.totals()["params"],
                          "shape": list(analysis.infos[output].shape)}  # fmt: skip
    assert len(expected) >= 6, expected
    found = on_jax(f"""
        import importlib, json, sys
        import keras
        assert keras.backend.backend() == "jax", keras.backend.backend()
        sys.path.insert(0, ".")
        found = {{}}
        for name in {sorted(expected)!r}:
            model = importlib.import_module(name).build_model()
            found[name] = {{"params": model.count_params(),
                           "shape": [None if d is None else int(d)
                                     for d in model.outputs[0].shape]}}
        print(json.dumps(found))
    """, tmp_path)
    for name, want in expected.items():
        assert found[name]["params"] == want["params"], name
        assert found[name]["shape"] == want["shape"], name


def test_every_component_builds_on_jax_with_the_engines_shape_and_parameters(tmp_path):
    import random

    from tests.graphs import single
    from tests.test_components_vs_keras import INPUT_RANKS, random_case

    expected = {}
    for component in sorted(INPUT_RANKS):
        assert CATALOGUE[component].backends == BACKENDS, component
        rng = random.Random(7)
        for _ in range(30):  # the first random case the engine accepts
            analysis = analyze(single(component, *random_case(component, rng)))
            if analysis.ok:
                break
        assert analysis.ok, component
        (tmp_path / f"c_{component.lower()}.py").write_text(generate_module(analysis))
        expected[component] = {"params": analysis.totals()["params"],
                               "shape": list(analysis.infos["under_test"].shape)}  # fmt: skip
    found = on_jax(f"""
        import importlib, json, sys
        import keras
        sys.path.insert(0, ".")
        found = {{}}
        for name in {sorted(expected)!r}:
            model = importlib.import_module("c_" + name.lower()).build_model()
            found[name] = {{"params": model.count_params(),
                           "shape": [None if d is None else int(d)
                                     for d in model.outputs[0].shape]}}
        print(json.dumps(found))
    """, tmp_path)
    assert found == expected


def test_a_custom_node_whose_code_calls_tensorflow_says_so():
    from tests.graphs import chain

    doc = chain(("x", "Input", {"shape": [4]}),
                ("mine", "Custom", {}),
                ("y", "Output", {"units": 1, "loss": "mean_squared_error"}))  # fmt: skip
    plain = doc.model_copy(deep=True)
    plain.nodes[1].code = "return keras.ops.relu(inputs)"
    tied = doc.model_copy(deep=True)
    tied.nodes[1].code = "import tensorflow as tf\nreturn tf.nn.relu(inputs)"
    assert backend_notes(plain) == []
    assert backend_notes(tied) == ["mine (Custom): its code calls TensorFlow, so the model runs "
                                   "on the TensorFlow backend only"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("run", ["classification", "image"])
def test_a_trained_keras_export_predicts_on_jax_as_on_tensorflow(trained_workspace, run, tmp_path):
    import keras

    from app.export import parity
    from app.export.exporter import export_run
    from app.workspace import Workspace, runs

    folder = export_run(trained_workspace.runs[run], "keras", force=True)
    (path,) = folder.glob("*.keras")
    dataset = Workspace.current().dataset_of_run(trained_workspace.runs[run])
    config, state = dataset.preprocessing()
    inputs, _, _ = parity.parity_sample(dataset, config, state, dataset.source())
    model = keras.saving.load_model(path)
    feed = {name: np.asarray(value) for name, value in inputs.items()}
    expected = np.asarray(model.predict(feed, verbose=0))
    np.savez(tmp_path / "inputs.npz", **feed)
    found = on_jax(f"""
        import json
        import numpy as np
        import keras
        assert keras.backend.backend() == "jax"
        model = keras.saving.load_model({str(path)!r})
        feed = dict(np.load("inputs.npz"))
        print(json.dumps(np.asarray(model.predict(feed, verbose=0)).tolist()))
    """, tmp_path)
    assert runs.read_info(trained_workspace.runs[run])["id"] in folder.name
    np.testing.assert_allclose(np.asarray(found), expected, atol=1e-4)
