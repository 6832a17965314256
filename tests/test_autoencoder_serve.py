"""An autoencoder run served: its bottleneck found (and not where a skip connection goes around
it), `:reconstruct` answering each row's input, reconstruction, error and code as the model in
process gives them, with the threshold the test report would set, and `:decode` turning the
codes back into the same reconstructions."""

from __future__ import annotations

import numpy as np
import pytest

from app.graph.document import GraphDocument
from app.graph.model_templates import load_template
from app.jsonable import json_ready
from app.serve import client
from tests.test_serve import dataset_of, raw_test_rows, served_here


def with_skip_connection() -> GraphDocument:
    """The autoencoder template with encode1 joined to decode1's output: the Output no longer
    rests on the bottleneck alone, only on encode1."""
    doc = load_template("anomaly_autoencoder").model_dump()
    doc["nodes"].append({"id": "join", "component": "Concatenate", "settings": {},
                         "position": {"x": 0, "y": 0}})  # fmt: skip
    doc["edges"] = [e for e in doc["edges"] if e["target"] != "reconstruction"] + [
        {"source": "decode1", "target": "join", "slot": 0},
        {"source": "encode1", "target": "join", "slot": 1},
        {"source": "join", "target": "reconstruction", "slot": 0},
    ]
    return GraphDocument.model_validate(doc)


@pytest.mark.parametrize(
    "doc, expected",
    [(load_template("anomaly_autoencoder"), "bottleneck"), (with_skip_connection(), "encode1")],
)
def test_the_bottleneck_is_the_smallest_node_the_output_rests_on_alone(doc, expected):
    from app.keras.autoencoder import bottleneck
    from app.keras.builder import build_model

    trained = build_model(doc)
    node, decoder = bottleneck(trained, doc)
    assert node == expected
    code = np.random.default_rng(0).normal(size=(3, *decoder.inputs[0].shape[1:]))
    assert decoder(code).shape == (3, 30)


def in_process(folder, index):
    """What the run's model gives on test rows `index`, computed here: the preprocessed inputs,
    their reconstructions and errors, and the threshold (the 95th percentile of the errors of
    the normal validation rows)."""
    from app.keras.builder import load_run_model
    from app.runtime.predictor import first_output, keras_predict
    from app.runtime.transform import transform

    dataset = dataset_of(folder)
    config, state = dataset.preprocessing()
    source = dataset.source()
    model = load_run_model(folder)
    inputs, _ = transform(config, state, source, index)
    outputs = first_output(keras_predict(model, inputs))
    given = next(iter(inputs.values()))
    errors = ((outputs.astype(np.float64) - given) ** 2).mean(axis=1)
    validation = sorted(dataset.splits["validation"])
    x, labels = transform(config, state, source, validation)
    normal = np.bincount(transform(config, state, source, sorted(dataset.splits["train"]))[1])
    kept = {name: value[labels == normal.argmax()] for name, value in x.items()}
    out = first_output(keras_predict(model, kept))
    normal_errors = ((out.astype(np.float64) - next(iter(kept.values()))) ** 2).mean(axis=1)
    return given, outputs, errors, float(np.percentile(normal_errors, 95))


def test_reconstruct_and_decode_answer_what_the_model_gives_in_process(extra_workspace):
    folder = extra_workspace.runs["anomaly"]
    _, raw = raw_test_rows(folder, rows=12)
    index = sorted(dataset_of(folder).splits["test"])[:12]
    given, reconstructed, errors, threshold = in_process(folder, index)
    with served_here(folder) as url:
        meta = client.metadata({"url": url})["layerflow"]
        body = {"inputs": {name: json_ready(value) for name, value in raw.items()}}
        answer = client.ask(url + ":reconstruct", body)
        decoded = client.ask(url + ":decode", {"codes": answer["codes"]})
        with pytest.raises(client.ServeError, match=r"`codes` must be finite numbers of shape "
                           r"\(n, 8\), received shape \(1, 3\)"):  # fmt: skip
            client.ask(url + ":decode", {"codes": [[1, 2, 3]]})
    assert meta["bottleneck"] == "bottleneck" and meta["code_shape"] == [8]
    assert meta["threshold"] == pytest.approx(threshold, rel=1e-5)
    assert "normal validation rows" in meta["threshold_from"]
    np.testing.assert_allclose(answer["inputs"], given, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(answer["reconstructions"], reconstructed, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(answer["errors"], errors, rtol=1e-5)
    assert answer["anomalous"] == [bool(e > answer["threshold"]) for e in errors]
    assert np.asarray(answer["codes"]).shape == (12, 8)
    np.testing.assert_allclose(decoded["reconstructions"], reconstructed, rtol=1e-5, atol=1e-5)


def test_a_model_that_is_no_autoencoder_refuses_reconstruct_in_one_line(trained_workspace):
    folder = trained_workspace.runs["classification"]
    with served_here(folder) as url, pytest.raises(client.ServeError) as refused:
        client.ask(url + ":reconstruct", {"instances": [{}]})
    assert str(refused.value) == (
        f"{folder.name} is not an autoencoder run; only those answer :reconstruct"
    )
