"""The model server: TF Serving's REST bodies, answers equal to the Predictor in process for each
kind of task, 400s that name the field, the warm server's record and idle stop, a load test, and
`layerflow serve` / `layerflow predict`."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli.main import main
from app.jsonable import json_ready
from app.serve import client, protocol
from app.serve.client import ServeError

IRIS = [{"name": c, "column": c, "shape": [1], "dtype": "float32"} for c in ("a", "b")]


def no_decoder(data, height, width, channels):
    raise AssertionError("no image here")


# The protocol, without a server


def test_rows_and_columns_give_the_same_inputs():
    rows, columnar = protocol.parse_request(
        {"instances": [{"a": 1, "b": 2.5}, {"a": None, "b": 0}]}, IRIS, no_decoder
    )
    columns, also = protocol.parse_request(
        {"inputs": {"a": [1, None], "b": [2.5, 0]}}, IRIS, no_decoder
    )
    assert (columnar, also) == (False, True)
    for name in ("a", "b"):
        np.testing.assert_array_equal(rows[name], columns[name])
    assert rows["a"].shape == (2, 1) and np.isnan(rows["a"][1, 0])  # null: a missing number


@pytest.mark.parametrize(
    "body, named",
    [
        ({"instances": [{"a": 1}]}, "`instances[0].b` is missing"),
        ({"instances": [{"a": 1, "b": "x"}]}, "`instances[*].b`: could not convert"),
        ({"instances": [{"a": 1, "b": 2, "c": 3}]}, "`instances[0].c` is not an input"),
        ({"inputs": {"a": [1], "b": [1, 2]}}, "different numbers of rows"),
        ({"inputs": {"a": 1, "b": [1]}}, "`inputs.a` must be a list"),
        ({"instances": []}, "`instances` must be a non-empty list"),
        ({"instances": [1], "inputs": {}}, "one of `instances`"),
        ([1, 2], "one of `instances`"),
        ({"instances": [1, 2]}, "must be an object by input name (a, b)"),
    ],
)
def test_a_bad_request_is_refused_naming_its_field(body, named):
    with pytest.raises(protocol.RequestError, match=None) as refused:
        protocol.parse_request(body, IRIS, no_decoder)
    assert named in str(refused.value)


def test_an_image_comes_as_pixels_or_as_a_base64_file():
    spec = [{"name": "image", "column": "image", "shape": [2, 2, 1], "dtype": "float32"}]
    decoded = []

    def decode(data, height, width, channels):
        decoded.append((data, height, width, channels))
        return np.full((height, width, channels), 7.0, np.float32)

    pixels = [[[1.0], [2.0]], [[3.0], [4.0]]]
    encoded = {"b64": base64.b64encode(b"PNG bytes").decode()}
    feed, _ = protocol.parse_request({"instances": [pixels, encoded]}, spec, decode)
    assert decoded == [(b"PNG bytes", 2, 2, 1)]
    np.testing.assert_array_equal(feed["image"][0, :, :, 0], [[1, 2], [3, 4]])
    assert (feed["image"][1] == 7).all()
    named = r"`instances\[\*\]\.image\[0\]\.b64` is not base64"
    with pytest.raises(protocol.RequestError, match=named):
        protocol.parse_request({"instances": [{"b64": "!!"}]}, spec, decode)


def test_predictions_are_described_with_class_names_and_top_classes():
    softmax = protocol.describe([[0.1, 0.7, 0.2]], ["cat", "dog", "eel"], top=2)
    assert softmax == [
        {"probabilities": {"cat": 0.1, "dog": 0.7, "eel": 0.2}, "top": [["dog", 0.7], ["eel", 0.2]]}
    ]
    sigmoid = protocol.describe([[0.9]], ["benign", "malignant"])[0]
    assert sigmoid["top"][0] == ["malignant", 0.9]
    assert protocol.describe([[3.5]], None) == [{"values": [3.5]}]


def test_metadata_has_tf_servings_signature_shape():
    found = protocol.metadata("iris", IRIS, ["label"], {"classes": {"label": ["x", "y"]}})
    signature = found["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["a"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in signature["inputs"]["a"]["tensor_shape"]["dim"]] == ["-1", "1"]
    assert found["model_spec"]["name"] == "iris"
    assert found["layerflow"]["classes"] == {"label": ["x", "y"]}


# Servers of trained runs


@contextlib.contextmanager
def served_here(folder: Path, **options):
    """The folder's server on a free port, in a thread of this process; its model URL."""
    from app.serve.server import serve

    urls: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=serve, args=(folder,), kwargs={"announce": urls.append, "stop": stop, **options}
    )
    thread.start()
    deadline = time.monotonic() + 120
    while not urls and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert urls, "the server did not start"
        yield urls[0]
    finally:
        stop.set()
        thread.join(timeout=30)


def raw_test_rows(folder: Path, rows: int = 16) -> dict[str, np.ndarray]:
    from app.export.exporter import run_predictor
    from app.runtime.serving import raw_inputs

    predictor = run_predictor(folder)
    source = predictor_source(folder)
    index = sorted(dataset_of(folder).splits["test"])[:rows]
    return predictor, raw_inputs(predictor.config, predictor.state, source, index)


def dataset_of(folder: Path):
    from app.workspace import Workspace, runs

    return Workspace.current().dataset(runs.read_info(folder)["data"]["name"])


def predictor_source(folder: Path):
    return dataset_of(folder).source()


TASKS = ["classification", "binary", "regression", "image", "segmentation"]


@pytest.mark.parametrize("task", [*TASKS, "text", "forecasting"])
def test_the_server_answers_what_the_predictor_in_process_gives(request, task):
    fixture = "extra_workspace" if task in ("text", "forecasting") else "trained_workspace"
    folder = request.getfixturevalue(fixture).runs[task]
    predictor, raw = raw_test_rows(folder, rows=40 if task == "forecasting" else 16)
    expected = predictor.predict_all(raw)
    with served_here(folder) as url:
        body = {"inputs": {name: json_ready(value) for name, value in raw.items()}}
        answer = client.ask(url + ":predict", body)
        first_row = {name: json_ready(value[0]) for name, value in raw.items()}
        one = client.ask(url + ":predict", {"instances": [first_row]})
    (name,) = predictor.outputs
    found = np.asarray(answer["outputs"], dtype=np.float32)
    # within 1e-6, relative above 1: a forecast of 28.5 is one float32 step (1.9e-6) from the
    # eager call's when the compiled call orders its sums otherwise
    np.testing.assert_allclose(found, expected[name], rtol=1e-6, atol=1e-6)
    one = np.asarray(one["predictions"])
    np.testing.assert_allclose(one, expected[name][:1], rtol=1e-6, atol=1e-6)
    assert found.shape == expected[name].shape


def png_of(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_an_image_file_is_decoded_as_training_decodes_it(trained_workspace):
    folder = trained_workspace.runs["segmentation"]  # the shapes sample: 64x64 RGB PNG files
    predictor, raw = raw_test_rows(folder, rows=2)
    image = raw[predictor.inputs[0]["name"]]
    with served_here(folder) as url:
        answer = client.ask(url + ":predict", {"instances": [{"b64": png_of(image[0])}]})
    expected = predictor.predict(image[:1])
    np.testing.assert_allclose(np.asarray(answer["predictions"]), expected, atol=1e-6)


def test_bad_requests_get_400_naming_the_field_and_big_ones_413(trained_workspace, monkeypatch):
    monkeypatch.setenv("LAYERFLOW_SERVE_MAX_BYTES", "2000")
    folder = trained_workspace.runs["classification"]
    with served_here(folder) as url:
        status = client.ask(url)
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        columns = [s["column"] for s in client.ask(url + "/metadata")["layerflow"]["inputs"]]
        row = dict.fromkeys(columns, 5.0)
        with pytest.raises(ServeError, match=f"`instances\\[0\\].{columns[0]}` is missing"):
            client.ask(url + ":predict", {"instances": [{c: 1 for c in columns[1:]}]})
        with pytest.raises(ServeError, match=f"`instances\\[\\*\\].{columns[1]}`: could not"):
            client.ask(url + ":predict", {"instances": [{**row, columns[1]: "tall"}]})
        with pytest.raises(ServeError, match="over the limit of 2,000 bytes"):
            client.ask(url + ":predict", {"instances": [row] * 100})
        with pytest.raises(ServeError, match="Servable not found"):
            client.ask(url.rsplit("/", 1)[0] + "/other:predict", {"instances": [row]})
        request = urllib.request.Request(url + ":predict", b"{not json")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400
        assert "not JSON" in json.loads(refused.value.read())["error"]
        assert len(client.ask(url + ":predict", {"instances": [row]})["predictions"]) == 1


def test_the_warm_server_takes_8_clients_for_10_seconds_without_an_error(trained_workspace):
    folder = trained_workspace.runs["classification"]
    record = client.start(folder)
    try:
        assert client.start(folder)["pid"] == record["pid"]  # one server per folder
        assert record["host"] == "127.0.0.1"
        columns = [s["column"] for s in client.metadata(record)["layerflow"]["inputs"]]
        body = {"instances": [dict.fromkeys(columns, 5.0)]}
        expected = client.predict(record, body)["predictions"]
        deadline = time.monotonic() + 10

        def hammer() -> tuple[list[float], int]:
            times, errors = [], 0
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    if client.predict(record, body)["predictions"] != expected:
                        errors += 1
                except ServeError:
                    errors += 1
                times.append(time.perf_counter() - started)
            return times, errors

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: hammer(), range(8)))
        times = sorted(t for found, _ in results for t in found)
        errors = sum(e for _, e in results)
        p50, p95 = statistics.median(times), times[int(0.95 * len(times))]
        print(f"\nload: {len(times)} requests in 10 s by 8 clients, {errors} errors, "
              f"p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")  # fmt: skip
        assert errors == 0
        assert len(times) > 100
    finally:
        client.stop(folder)
    assert not (folder / client.RECORD).exists()  # the record goes with the server


def test_an_idle_warm_server_stops_by_itself_and_forgets_its_record(trained_workspace):
    folder = trained_workspace.runs["regression"]
    record = client.start(folder, idle=1)
    deadline = time.monotonic() + 30
    while client.running(folder) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.running(folder) is None
    assert not (folder / client.RECORD).exists()
    with pytest.raises(ServeError, match="no answer"):
        client.metadata(record, timeout=2)


def test_cli_predict_reads_rows_of_a_csv_and_names_a_missing_column(
    trained_workspace, tmp_path, capsys
):
    folder = trained_workspace.runs["classification"]
    frame = dataset_of(folder).source().frame.head(3)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    assert main(["predict", str(folder), str(tmp_path / "rows.csv"), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    predictor, _ = raw_test_rows(folder)
    expected = predictor.predict(frame)
    classes = predictor.state.classes
    found = [[row["probabilities"][c] for c in classes] for row in shown["predictions"]]
    np.testing.assert_allclose(found, expected, atol=1e-6)
    assert "in this process" in shown["source"]
    frame.drop(columns=[frame.columns[0]]).to_csv(tmp_path / "short.csv", index=False)
    assert main(["predict", str(folder), str(tmp_path / "short.csv")]) == 1
    assert f"short.csv: no column '{frame.columns[0]}'" in capsys.readouterr().err


def test_cli_serve_prints_the_model_url_first_and_predict_uses_it(trained_workspace, tmp_path):
    folder = trained_workspace.runs["image"]
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "serve", str(folder), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        first = process.stdout.readline().strip()
        assert first.startswith("http://127.0.0.1:") and first.endswith(f"/v1/models/{folder.name}")
        pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) % 17
        Image.fromarray(pixels).save(tmp_path / "digit.png")
        command = ["predict", str(folder), str(tmp_path / "digit.png")]
        out = subprocess.run(
            [sys.executable, "-m", "app.cli.main", *command],
            capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert f"from {first}" in out.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert not (folder / client.RECORD).exists()


def test_an_export_is_served_as_it_predicts_in_process(trained_workspace):
    from app.export.exporter import export_run
    from app.runtime.predictor import Predictor

    run = trained_workspace.runs["classification"]
    folder = export_run(run, "savedmodel", force=True)
    _, raw = raw_test_rows(run)
    expected = Predictor.of_export(folder).predict(raw)
    assert client.target_folder(folder.relative_to(trained_workspace.root)) == folder.resolve()
    with served_here(folder) as url:
        assert url.endswith(f"/v1/models/{folder.name}")
        body = {"inputs": {name: json_ready(value) for name, value in raw.items()}}
        answer = client.ask(url + ":predict", body)
        classes = client.ask(url + "/metadata")["layerflow"]["classes"]
    np.testing.assert_allclose(np.asarray(answer["outputs"]), expected, atol=1e-6)
    assert list(classes.values()) == [["setosa", "versicolor", "virginica"]]


def test_a_folder_already_served_is_not_served_twice(trained_workspace):
    from app.serve.server import serve

    folder = trained_workspace.runs["classification"]
    with served_here(folder) as url:
        with pytest.raises(ValueError) as refused:
            serve(folder, port=0)
        record = client.read_record(folder)
    assert str(refused.value) == (
        f"{folder.name} is already served at {url} (pid {record['pid']}); ask that server, or "
        "stop it first"
    )
    assert record["url"] == url  # the first server's record stands
