"""Profiling: analytic memory equal to what Keras allocates, the what-if line and its parsing of
budgets, per-node times that add up to the whole model's, a fit that predicts a batch size it
did not measure, a Custom node measured as one unit, `layerflow profile`, and the profiling
process that leaves the last good report when it fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from app.cli.main import main
from app.graph.analysis import analyze
from app.graph.model_templates import load_template
from app.profile import fit, launch
from app.profile.memory import node_memory


@pytest.mark.parametrize("template", ["image_classification", "tabular_classification"])
def test_weights_memory_is_what_keras_allocates(template):
    from app.keras.builder import build_model

    analysis = analyze(load_template(template))
    memory = node_memory(analysis, batch_size=32)
    model = build_model(analysis)
    weights = sum(m["weights"] for m in memory.values())
    assert weights == model.count_params() * 4
    # every float32 weight Keras allocates, to the byte; other values (a Normalization's int64
    # count) are counted as parameters of 4 bytes
    floats = sum(int(np.prod(w.shape)) * 4 for w in model.weights if w.dtype == "float32")
    others = sum(int(np.prod(w.shape)) for w in model.weights if w.dtype != "float32")
    assert weights == floats + 4 * others
    for node_id, figures in memory.items():
        info = analysis.infos[node_id]
        assert figures["weights"] == info.params * 4
        assert figures["gradients"] == info.trainable * 4
        assert figures["optimizer"] == info.trainable * 4 * 2  # Adam: two slots per weight
        assert figures["activations"] == int(np.prod(info.shape[1:])) * 32 * 4
    sgd = node_memory(analysis, 32, optimizer="SGD")
    assert all(m["optimizer"] == 0 for m in sgd.values())
    half = node_memory(analysis, 32, dtype="float16")
    assert all(half[n]["weights"] * 2 == memory[n]["weights"] for n in memory)


def test_an_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="optimizer='adamm'"):
        node_memory(analyze(load_template("tabular_classification")), 8, optimizer="adamm")


def test_the_what_if_line_predicts_and_finds_the_largest_batch_within_a_budget():
    line = fit.line([1, 8, 32, 128], [3 + 0.5 * b for b in (1, 8, 32, 128)])
    assert line == pytest.approx((3.0, 0.5))
    assert fit.predict(line, 64) == pytest.approx(35.0)
    assert fit.largest_batch((1000.0, 10.0), 2000) == 100
    assert fit.largest_batch((1000.0, 10.0), 1005) is None  # one sample is over it
    with pytest.raises(ValueError, match="two batch sizes"):
        fit.line([8, 8], [1, 2])


@pytest.mark.parametrize("text, expected", [("8GB", 8 * 10**9), ("512 MiB", 512 * 2**20),
                                            ("1e6", 10**6), ("2gib", 2 * 2**30)])  # fmt: skip
def test_memory_budgets_are_read_with_their_units(text, expected):
    assert fit.parse_bytes(text) == expected


def test_one_batch_size_still_answers_the_memory_budget_from_the_analytic_line():
    from app.profile.profiler import _fits

    whole = [{"batch": 8, "peak_rss_bytes": 1_000_000, "memory_bytes": 200_000}]
    found = _fits([8], whole, memory_line=(40_000.0, 20_000.0), budget=3_000_000)
    # the runtime holds 1,000,000 - 200,000; a batch of b peaks at 840,000 + 20,000 b
    assert found["budget"] == {"bytes": 3_000_000, "largest_batch": 108,
                               "runtime_bytes": 800_000}  # fmt: skip
    assert found["whatif"] == []  # time needs two sizes


def test_a_bad_memory_budget_is_named():
    with pytest.raises(ValueError, match="'8 bananas'"):
        fit.parse_bytes("8 bananas")


# Measured (TensorFlow)


TIMES = """
import json, sys
from app.graph.analysis import analyze
from app.graph.model_templates import load_template
from app.profile.measure import profile_times
found = profile_times(analyze(load_template(sys.argv[1])), json.loads(sys.argv[2]))
found.pop("model")
print(json.dumps(found))
"""


def times_in_a_profiling_process(template: str, sizes: list[int]) -> dict:
    """profile_times of a template in a process of its own, as `layerflow profile` runs it (one
    inter-op thread: launch.ENVIRONMENT)."""
    done = subprocess.run(
        [sys.executable, "-c", TIMES, template, json.dumps(sizes)],
        env={**os.environ, **launch.ENVIRONMENT, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("template", ["image_classification", "tabular_classification"])
def test_the_nodes_own_nearly_all_of_the_traced_forwards_time(template):
    """Attribution, not the clock: the nodes' forward times and the traced forward's ops come
    from one trace, so the share holds on a busy machine. How close the nodes come to the
    wall-clock forward is bench/bench_profile.py's to measure (README, Profile)."""
    found = times_in_a_profiling_process(template, [256])
    (whole,) = found["whole"]
    total = sum(n["forward_ms"][0] for n in found["nodes"].values() if n["forward_ms"])
    assert 0.9 * whole["traced_forward_ms"] <= total <= whole["traced_forward_ms"] * 1.0001
    weighted = [n.id for n in load_template(template).nodes if n.component in ("Conv2D", "Dense")]
    assert weighted and all(found["nodes"][node]["forward_ms"][0] > 0 for node in weighted)


CUSTOM = "x = layers.Dense(16, activation='relu')(inputs[0])\nreturn layers.Dense(8)(x)"


def test_a_custom_node_is_measured_as_one_unit(workspace):
    from app.profile.profiler import profile_graph
    from tests.test_probe import custom

    report = profile_graph(custom(CUSTOM), [4, 16], tflite=False, repeats=5)
    mine = next(n for n in report["nodes"] if n["id"] == "mine")
    assert mine["layers"] == 3  # both Dense layers of its code, and the Identity naming it
    assert all(t > 0 for t in mine["forward_ms"] + mine["backward_ms"])
    assert mine["memory"][1]["weights"] == (6 * 16 + 16 + 16 * 8 + 8) * 4  # 6 features in
    assert "partial" not in mine


def test_a_custom_node_of_bare_keras_ops_is_said_to_be_measured_in_part(workspace):
    from app.profile.profiler import profile_graph
    from tests.test_probe import custom

    report = profile_graph(custom("return keras.ops.relu(inputs[0])"), [4, 8], tflite=False,
                           repeats=5)  # fmt: skip
    mine = next(n for n in report["nodes"] if n["id"] == "mine")
    assert "keras.ops functions" in mine["partial"]


def test_cli_profile_prints_nodes_by_time_and_names_bad_batch_sizes(tmp_path, capsys):
    graph = tmp_path / "tabular.json"
    assert main(["new", "--template", "tabular_classification", "-o", str(graph)]) == 0
    capsys.readouterr()
    assert main(["profile", str(graph), "--batch-sizes", "8,x"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == ("layerflow: error: --batch-sizes: expected whole numbers >= 1 such as "
                     "1,8,32,128, received '8,x'")  # fmt: skip
    assert main(["profile", str(graph), "--batch-sizes", "4,16", "--no-tflite", "--json",
                 "--memory-budget", "64GB"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["batch_sizes"] == [4, 16]
    assert [n["id"] for n in report["nodes"]] == ["normalize", "dense1", "dense2", "dropout",
                                                  "label"]  # fmt: skip
    # the process's peak counts TensorFlow's own memory: a smaller batch than the model's
    # memory alone would allow
    budget, memory = report["budget"], report["fits"]["memory_bytes"]
    alone = fit.largest_batch((memory["intercept"], memory["slope"]), 64e9)
    assert 16 < budget["largest_batch"] < alone


def test_the_profiling_process_reports_and_a_killed_one_leaves_the_last_report(workspace):
    from app.workspace import Workspace

    root = Workspace.current().root
    doc = load_template("tabular_classification")
    folder = workspace / "profile-here"
    assert launch.start(folder, doc, root, [4, 8])
    assert not launch.start(folder, doc, root, [4, 8])  # one at a time
    deadline = time.monotonic() + 300
    while launch.state(folder)["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert launch.state(folder)["state"] == "done", (folder / launch.LOG).read_text()[-2000:]
    first = launch.report(folder)
    assert first["graph_key"] == doc.content_key() and first["batch_sizes"] == [4, 8]
    assert launch.start(folder, doc, root, [4, 8, 16])
    while launch.state(folder).get("fraction", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(launch.state(folder)["pid"], signal.SIGKILL)
    time.sleep(1)
    state = launch.state(folder)
    assert state["state"] == "failed" and "ended early" in state["message"]
    assert launch.report(folder) == first


def test_the_model_page_draws_a_profile_and_tints_the_canvas_by_it(workspace):
    from app.profile.profiler import profile_graph
    from app.workspace import Workspace
    from tests.test_app import new_project, page
    from ui.profile import folder_of

    new_project()  # "digits": the image classification template
    project = Workspace.current().project("digits")
    doc = project.graph()
    found = profile_graph(doc, [4, 16], tflite=False, repeats=5)
    found["graph_key"] = doc.content_key()
    folder = folder_of(project)
    folder.mkdir()
    (folder / launch.REPORT).write_text(json.dumps(found))
    app = page("model", "digits")
    app.session_state["model:tab"] = "Profile"
    app.run()
    assert not app.error, [e.value for e in app.error]
    table = next(d.value for d in app.dataframe if "time ms" in d.value.columns)
    measured = table["time ms"].dropna().tolist()
    assert measured == sorted(measured, reverse=True) and len(measured) == len(doc.nodes) - 1
    assert {m.label for m in app.metric} >= {"Training step", "Throughput", "Inference"}
    slowest = table["node"].iloc[0]
    next(s for s in app.selectbox if s.label == "Selected node").select(slowest).run()
    app.session_state["model:tab"] = "Code"
    app.session_state["model:code"] = "Selected node"
    app.run()
    assert any(c.value.startswith("Profile at batch 16: forward") for c in app.caption)
    flow = app.session_state["canvas"].state  # filled by category, not by the profile
    assert not any(n.style["background"].startswith("rgba") for n in flow.nodes)
    app.session_state["canvas:colour"] = "time"
    app.run()
    tinted = {n.id: n.style.get("background") for n in app.session_state["canvas"].state.nodes}
    assert tinted[slowest] == "rgba(230, 80, 30, 0.90)"  # the slowest node: the darkest
