"""The search space on the graph document (issue #13's first part): it round-trips through the
document, each problem is refused with one message, a beginner's space is proposed from the
graph, and a trial's values make a graph whose shapes the engine checks before any training."""

from __future__ import annotations

import json

import pytest

from app.graph.analysis import analyze
from app.graph.document import Choice, Range, SearchSpace, parse
from app.graph.model_templates import load_template
from app.graph.space import dimensions, propose, space_problems, trial_graph


def image_with(space: dict):
    doc = load_template("image_classification").model_dump(mode="json")
    doc["search"] = space
    return parse(doc)


def test_a_space_round_trips_through_the_document():
    doc = image_with({
        "settings": {"dense": {"units": {"choices": [32, 64, 128]}},
                     "dropout": {"rate": {"low": 0.0, "high": 0.5}}},
        "optional": ["dropout"],
        "training": {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}},
    })  # fmt: skip
    assert doc.search.settings["dense"]["units"] == Choice(choices=[32, 64, 128])
    assert doc.search.training["learning_rate"] == Range(low=1e-4, high=1e-2, log=True)
    again = parse(json.loads(doc.to_json()))
    assert again == doc and space_problems(again) == []
    assert '"search"' not in load_template("image_classification").to_json()  # none, no key


@pytest.mark.parametrize("space, message", [
    ({"settings": {"nowhere": {"units": {"choices": [8]}}}},
     "search.settings: no node with id 'nowhere'"),
    ({"settings": {"dense": {"unit": {"choices": [8]}}}},
     "search.settings.dense.unit: Dense has no setting 'unit' (its settings: units, "),
    ({"settings": {"dense": {"units": {"low": 64, "high": 32}}}},
     "search.settings.dense.units: low (64) must be below high (32)"),
    ({"settings": {"dense": {"units": {"low": 8.5, "high": 32}}}},
     "search.settings.dense.units: units is a whole number: low and high must be too"),
    ({"settings": {"dense": {"activation": {"low": 0, "high": 1}}}},
     "search.settings.dense.activation: a range needs a number setting; activation is choice"),
    ({"settings": {"dense": {"activation": {"choices": ["relu", "sigmoidd"]}}}},
     "search.settings.dense.activation: Received an invalid value for `activation`"),
    ({"settings": {"dropout": {"rate": {"low": 0.0, "high": 1.5}}}},
     "search.settings.dropout.rate: Received an invalid value for `rate`"),
    ({"settings": {"dense": {"units": {"choices": [8, 8]}}}},
     "search.settings.dense.units: the choices repeat a value"),
    ({"optional": ["image"]}, "search.optional: image is an Input; a trial cannot leave it out"),
    ({"training": {"learning_rate": {"low": 0, "high": 0.1, "log": True}}},
     "search.training.learning_rate: a log range needs low above 0, received low=0"),
])  # fmt: skip
def test_each_problem_of_a_space_is_one_message(space, message):
    doc = image_with(space)
    problems = space_problems(doc)
    assert len(problems) == 1
    assert problems[0].message.startswith(message), problems[0].message
    # shown with the graph's problems, as a warning: the graph's own model still builds
    found = analyze(doc)
    assert found.ok and [p.message for p in found.problems if p.code == "search_space"] == [
        problems[0].message
    ]


def test_a_malformed_space_is_refused_by_the_schema():
    from app.graph.problems import GraphError

    with pytest.raises(GraphError):
        image_with({"settings": {"dense": {"units": {"choices": []}}}})


def test_a_space_is_proposed_from_the_graph():
    doc = load_template("image_classification")
    space = propose(doc)
    assert space.settings["dense"]["units"] == Choice(choices=[32, 64, 128])  # 64 halved, doubled
    assert space.settings["conv1"]["filters"] == Choice(choices=[8, 16, 32])
    assert space.settings["dropout"]["rate"] == Range(low=0.0, high=0.5)
    assert space.training["learning_rate"].log
    assert space_problems(doc.model_copy(update={"search": space})) == []
    blocks = propose(load_template("resnet_blocks"))
    repeats = [s["repeat"] for s in blocks.settings.values() if "repeat" in s]
    assert repeats and all(r.low == 1 and r.step == 1 for r in repeats)


def test_a_trial_graph_takes_its_values_and_leaves_out_an_optional_node():
    doc = load_template("image_classification").model_copy(update={"search": SearchSpace(
        settings={"dense": {"units": Choice(choices=[32, 128])}}, optional=["dropout", "pool2"],
    )})  # fmt: skip
    assert set(dimensions(doc.search)) == {"dense.units", "optional.dropout", "optional.pool2"}
    trial = trial_graph(doc, {"dense.units": 128, "optional.dropout": False,
                              "optional.pool2": True})  # fmt: skip
    assert trial.search is None and "dropout" not in [n.id for n in trial.nodes]
    analysis = analyze(trial)
    assert analysis.ok and analysis.infos["dense"].shape == (None, 128)
    assert analysis.totals()["params"] > analyze(doc).totals()["params"]
    # values whose shapes cannot work are found before a single training step: a 9x9 kernel
    # without padding on the 4x4 maps after the first pooling
    searched = doc.model_copy(update={"search": SearchSpace(settings={"conv2": {
        "kernel_size": Choice(choices=[3, 9]), "padding": Choice(choices=["same", "valid"])}})})
    broken = analyze(trial_graph(searched, {"conv2.kernel_size": 9, "conv2.padding": "valid"}))
    assert [p.node for p in broken.errors] == ["conv2"]


def test_the_canvas_shows_what_a_search_varies_on_each_node():
    from app.graph.canvas import elements, markdown

    doc = image_with({"settings": {"dense": {"units": {"choices": [32, 64]}}},
                      "optional": ["dropout"]})  # fmt: skip
    nodes = {node.id: markdown(node.lines) for node in elements(analyze(doc))[0]}
    assert "*units: 32 \\| 64*" in nodes["dense"]  # escaped for the canvas's Markdown
    assert "*optional in a search*" in nodes["dropout"]
    assert "*" not in nodes["conv1"].replace("**", "")


def test_cli_proposes_a_space_writes_it_and_names_each_problem(tmp_path, capsys):
    from app.cli.main import main

    graph, searched = tmp_path / "graph.json", tmp_path / "searched.json"
    assert main(["new", "--template", "image_classification", "-o", str(graph)]) == 0
    assert main(["search", "space", str(graph), "--propose", "-o", str(searched)]) == 0
    out = capsys.readouterr().out
    assert "dense.units             32 | 64 | 128" in out and "training.learning_rate" in out
    data = json.loads(searched.read_text())
    data["search"]["settings"]["dense"]["units"] = {"low": 64, "high": 8}
    data["search"]["optional"] = ["nowhere"]
    searched.write_text(json.dumps(data))
    assert main(["search", "space", str(searched)]) == 1
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error")]
    assert errors == ["error: search.settings.dense.units: low (64) must be below high (8)",
                      "error: search.optional: no node with id 'nowhere'"]  # fmt: skip


def staged(space: dict | None = None):
    """The image template with its second stage (conv2, pool2) made the block 'stage'."""
    from app.graph.edit import make_block

    doc = make_block(load_template("image_classification"), ["conv2", "pool2"], "stage")
    return parse({**doc.model_dump(mode="json"), "search": space}) if space else doc


def test_a_node_inside_a_block_is_searched_for_every_use_of_the_block():
    from app.graph.canvas import elements, markdown

    doc = staged({"settings": {"stage/conv2": {"filters": {"choices": [8, 64]}}}})
    assert space_problems(doc) == [] and set(dimensions(doc.search)) == {"stage/conv2.filters"}
    small = analyze(trial_graph(doc, {"stage/conv2.filters": 8})).totals()["params"]
    large = analyze(trial_graph(doc, {"stage/conv2.filters": 64})).totals()["params"]
    assert small < analyze(doc).totals()["params"] < large
    block = next(n for n in doc.nodes if n.component == "Block")
    content = {node.id: markdown(node.lines) for node in elements(analyze(doc))[0]}[block.id]
    assert "*conv2\\.filters: 8 \\| 64*" in content
    # proposed from the graph: the widths in the blocks it uses as well
    assert propose(staged()).settings["stage/conv2"]["filters"] == Choice(choices=[16, 32, 64])


@pytest.mark.parametrize("key, message", [
    ("nowhere/conv2", "search.settings: nowhere/conv2: no block named 'nowhere' (blocks: stage)"),
    ("stage/conv9", "search.settings: stage/conv9: block stage has no node 'conv9'"),
])  # fmt: skip
def test_a_block_node_that_is_not_there_is_one_message(key, message):
    doc = staged({"settings": {key: {"filters": {"choices": [8, 64]}}}})
    assert [p.message for p in space_problems(doc)] == [message]


def with_params(space: dict | None = None):
    """`staged`, its Block node setting the block's conv2 filters in its params."""
    data = staged().model_dump(mode="json")
    block = next(n for n in data["nodes"] if n["component"] == "Block")
    block["settings"]["params"] = {"conv2": {"filters": 48}}
    block["settings"]["names"] = {"conv2": ["stage_conv"]}
    return parse({**data, "search": space} if space else data), block["id"]


def test_a_setting_that_every_use_sets_in_its_params_is_neither_proposed_nor_searched():
    doc, block = with_params()
    assert "stage/conv2" not in propose(doc).settings  # the params' 48 would win
    doc, _ = with_params({"settings": {"stage/conv2": {"filters": {"choices": [8, 64]}}}})
    (problem,) = space_problems(doc)
    assert problem.message.startswith(
        f"search.settings.stage/conv2.filters: every Block node that uses the block sets it in "
        f"its params ({block})")  # fmt: skip


def test_a_trial_that_gives_a_block_node_another_block_drops_what_it_gave_the_first():
    doc, block = with_params()
    other = doc.blocks["stage"].model_copy(update={"description": "the other"})
    doc = doc.model_copy(update={"blocks": {**doc.blocks, "other": other}})
    trial = trial_graph(doc, {f"{block}.block": "other"})
    assert trial.node(block).settings == {"block": "other", "repeat": 1}
    assert not analyze(trial).errors
    kept = trial_graph(doc, {f"{block}.block": "stage"})  # the same block keeps them
    assert kept.node(block).settings["params"] == {"conv2": {"filters": 48}}


@pytest.mark.parametrize("params", [["a"], "abc", 5, {"conv2": 5}, {"conv2": "filters"}])
def test_odd_params_with_a_search_are_a_problem_not_a_traceback(params):
    doc, block = with_params({"settings": {"stage/conv2": {"filters": {"choices": [8, 64]}}}})
    data = doc.model_dump(mode="json")
    next(n for n in data["nodes"] if n["id"] == block)["settings"]["params"] = params
    doc = parse(data)
    assert analyze(doc).errors  # the params' own error, from check()
    assert not space_problems(doc)  # odd params set nothing: the dimension is searched
    assert "stage/conv2" in propose(doc).settings
