"""The TensorFlow.js export, checked against the real TF.js: the suite installs the pinned
@tensorflow/tfjs from npm into its cache folder once, loads each export in Node, and compares
its predictions on raw test rows with LayerFlow's (a tabular, an image (CNN) and a text
model); the export's demo page predicts the same in Chromium."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import threading

import numpy as np
import pytest

from app.export import tfjs
from app.export.options import ExportError
from tests.graphs import chain


@functools.cache
def installed() -> None:
    """npm install the pinned TF.js into tfjs.CACHE, unless it is there."""
    if (tfjs.CACHE / tfjs.BUNDLE).is_file():
        return
    tfjs.CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["npm", "install", "--prefix", str(tfjs.CACHE), "--no-audit", "--no-fund",
         "--loglevel=error", f"@tensorflow/tfjs@{tfjs.TFJS_VERSION}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def exported(workspace, run: str):
    from app.export.exporter import export_run
    from app.runtime.predictor import METADATA

    installed()
    folder = export_run(workspace.runs[run], "tfjs", force=True)
    return folder, json.loads((folder / METADATA).read_text())


@pytest.mark.slow
@pytest.mark.parametrize("run", ["classification", "image", "text"])
def test_tfjs_predicts_raw_rows_as_layerflow_does(extra_workspace, run):
    folder, meta = exported(extra_workspace, run)
    parity = meta["parity"]
    assert parity["passed"] is True, parity
    assert parity["max_abs_diff"] <= 1e-4 and parity["rows"] >= 8
    assert "in TensorFlow.js" in parity["detail"]
    model = json.loads((folder / "model.json").read_text())
    assert model["format"] == "layers-model"
    shards = [p for group in model["weightsManifest"] for p in group["paths"]]
    size = sum((folder / p).stat().st_size for p in shards)
    floats = sum(int(np.prod(w["shape"])) for g in model["weightsManifest"] for w in g["weights"])
    assert size == 4 * floats


@pytest.mark.slow
def test_a_changed_weight_fails_the_parity_check(extra_workspace):
    """The check can fail: the same export with one weight changed no longer predicts alike."""
    from app.export.parity import parity_sample
    from app.keras.builder import load_run_model
    from app.workspace import Workspace

    folder, _ = exported(extra_workspace, "classification")
    model = json.loads((folder / "model.json").read_text())
    (shard,) = model["weightsManifest"][0]["paths"]
    data = bytearray((folder / shard).read_bytes())
    data[-4:] = np.float32(50.0).tobytes()  # the Output's last bias
    (folder / shard).write_bytes(bytes(data))
    run = extra_workspace.runs["classification"]
    dataset = Workspace.current().dataset_of_run(run)
    config, state = dataset.preprocessing()
    sample = parity_sample(dataset, config, state, dataset.source())
    from app.graph.document import load

    checked = tfjs.check_parity(folder, load_run_model(run, "best"), sample, config, state,
                                load(run / "graph.json"))  # fmt: skip
    assert checked["passed"] is False and checked["max_abs_diff"] > 1e-2, checked


def test_a_layer_tfjs_lacks_is_refused_naming_its_node():
    import keras

    from app.keras.builder import build_model

    doc = chain(("x", "Input", {"shape": [6, 8]}),
                ("attend", "MultiHeadAttention", {"num_heads": 2, "key_dim": 4}),
                ("pool", "GlobalAveragePooling1D", {}),
                ("y", "Output", {"units": 2, "activation": "softmax",
                                 "loss": "sparse_categorical_crossentropy"}))  # fmt: skip
    keras.utils.set_random_seed(0)
    with pytest.raises(ExportError) as raised:
        tfjs.layers_model(build_model(doc), doc)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("TensorFlow.js cannot run node attend (a MultiHeadAttention layer")


def test_custom_code_is_refused_naming_its_node_even_when_it_calls_operations():
    import keras

    from app.graph.edit import set_code
    from app.keras.builder import build_model
    from tests.graphs import trusted

    doc = chain(("x", "Input", {"shape": [4]}), ("mine", "Custom", {}),
                ("y", "Output", {"units": 2, "activation": "softmax",
                                 "loss": "sparse_categorical_crossentropy"}))  # fmt: skip
    doc = trusted(set_code(doc, "mine", "return keras.ops.relu(inputs[0]) * 2.0"))
    keras.utils.set_random_seed(0)
    with pytest.raises(ExportError) as raised:  # its operations are no layers of the model
        tfjs.layers_model(build_model(doc), doc)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("TensorFlow.js cannot run node mine (Custom code")


def test_normalization_becomes_a_dense_layer_that_computes_it():
    import keras

    layer = keras.layers.Normalization(mean=[1.0, -2.0, 3.0], variance=[4.0, 0.25, 1.0])
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, layer(inputs))
    topology, weights = tfjs.layers_model(model)
    dense = topology["config"]["layers"][1]
    assert dense["class_name"] == "Dense" and dense["config"]["units"] == 3
    kernel, bias = (array for _, array in weights)
    x = np.array([[0.5, 1.0, -4.0], [3.0, -2.0, 3.0]], dtype=np.float32)
    np.testing.assert_allclose(x @ kernel + bias, model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.slow
def test_the_demo_page_predicts_in_chromium_as_layerflow_does(extra_workspace):
    from playwright.sync_api import sync_playwright

    folder, meta = exported(extra_workspace, "classification")
    assert (folder / "tf.min.js").is_file(), "the page runs with no network"
    rows = json.loads((folder / "preprocessing.json").read_text())
    features = rows["inputs"]["features"]["features"]

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox", "--headless", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/index.html")
            page.wait_for_selector("#status[data-ready=true]", timeout=60_000)
            before = page.locator("#answer").get_attribute("data-values")
            row = {}
            for index, feature in enumerate(features):  # a new flower, typed in
                value = round(float(np.asarray(feature["mean"]).reshape(-1)[0]) * 1.3, 2)
                page.locator("input[data-column]").nth(index).fill(str(value))
                row[feature["column"]] = value
            page.get_by_role("button", name="Predict").click()
            page.wait_for_function(
                "before => document.getElementById('answer').dataset.values !== before",
                arg=before)  # fmt: skip
            shown = json.loads(page.locator("#answer").get_attribute("data-values"))
            label = page.locator("#answer").get_attribute("data-label")
            browser.close()
    finally:
        server.shutdown()
    expected = layerflow_prediction(extra_workspace, "classification", row)
    np.testing.assert_allclose(shown, expected, atol=1e-4)
    assert label == meta["classes"][int(np.argmax(expected))]


def layerflow_prediction(workspace, run: str, row: dict) -> np.ndarray:
    """LayerFlow's own prediction of one raw row: the run's model behind its preprocessing."""
    from app.export.exporter import run_predictor

    predictor = run_predictor(workspace.runs[run])
    return np.asarray(predictor.predict({column: [value] for column, value in row.items()}))[0]


def test_layers_tfjs_computes_otherwise_are_refused_and_weights_named_as_tfjs_reads_them():
    import keras

    def model_of(layer, shape):
        inputs = keras.Input(shape, name="x")
        return keras.Model(inputs, layer(inputs))

    refused = {
        "a GRU layer": keras.layers.GRU(3, name="gru"),  # reset_after, which TF.js lacks
        "gelu activation": keras.layers.Dense(2, activation="gelu", name="d"),
        "bilinear UpSampling2D": keras.layers.UpSampling2D(interpolation="bilinear", name="u"),
    }
    shapes = {"a GRU layer": (4, 2), "gelu activation": (3,), "bilinear UpSampling2D": (4, 4, 1)}
    for says, layer in refused.items():
        with pytest.raises(ExportError, match=says):
            tfjs.layers_model(model_of(layer, shapes[says]))
    topology, weights = tfjs.layers_model(
        model_of(keras.layers.DepthwiseConv2D(3, name="dw", activation="silu"), (5, 5, 2)))
    assert [name for name, _ in weights] == ["dw/depthwise_kernel", "dw/bias"]
    assert topology["config"]["layers"][1]["config"]["activation"] == "swish"


def test_python_prediction_of_a_tfjs_export_says_where_it_runs(tmp_path):
    from app.runtime.predictor import METADATA, Predictor

    (tmp_path / METADATA).write_text(json.dumps({"format": "tfjs", "inputs": [], "outputs": []}))
    with pytest.raises(ValueError) as raised:
        Predictor.of_export(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path}: a TensorFlow.js export runs in a browser")
    assert "predict.js" in str(raised.value)


def test_the_demo_file_server_answers_then_stops_when_idle(tmp_path):
    import time
    import urllib.request

    from app.export.demo import DEMO, open_demo
    from app.workspace.runs import alive

    folder = tmp_path / "run-tfjs"
    folder.mkdir()
    (folder / "index.html").write_text("<p>demo</p>")
    url = open_demo(folder, idle=2.0)
    assert url.startswith("http://127.0.0.1:")
    assert open_demo(folder, idle=2.0) == url  # found again while it runs
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.read() == b"<p>demo</p>"
    pid = json.loads((tmp_path / f"run-tfjs{DEMO}").read_text())["pid"]
    deadline = time.monotonic() + 30
    while alive(pid, None) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(pid, None)  # stopped after 2 s with no request
    again = open_demo(folder, idle=2.0)  # asked again: a new server
    with urllib.request.urlopen(again, timeout=5) as answer:
        assert answer.read() == b"<p>demo</p>"


def test_a_refused_layer_is_named_by_the_node_that_makes_it():
    from tests.test_fold import last_steps

    doc = last_steps({"last": ["tail"]})
    assert tfjs._node_of("seq", doc) == "node seq"
    assert tfjs._node_of("seq_crop", doc) == "node seq (its layer seq_crop)"
    assert tfjs._node_of("tail_crop", doc) == "node cells (its layer tail_crop)"
    assert tfjs._node_of("dense_1", doc) == "layer dense_1"  # Keras named it: Custom code's
