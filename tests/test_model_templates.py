"""The model templates: nine documented starting points, each a valid graph whose analysis
agrees node by node with the Keras model it builds."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from app.data import autoconfig
from app.data.preprocess_config import default_config
from app.data.profile import profile
from app.data.samples import SAMPLES, make_sample
from app.data.sources import read_source
from app.graph.analysis import analyze
from app.graph.model_templates import (
    TEMPLATES_DIR,
    list_templates,
    load_template,
    new_from_template,
    template_names,
)
from app.keras.builder import build_model, node_layers
from app.runtime.fit import fit
from app.runtime.transform import input_spec

TEMPLATES = [
    "anomaly_autoencoder", "image_classification", "image_segmentation", "resnet_blocks",
    "tabular_classification", "tabular_regression", "text_classification",
    "time_series_forecasting", "transfer_learning",
]  # fmt: skip
# The autoencoder reconstructs its input, so it expects features standardized beforehand.
DELIBERATE_TIPS = {"anomaly_autoencoder": {"no_normalization"}}
# Nothing is downloaded: the transfer template's backbone is random until given local weights.
DELIBERATE_WARNINGS = {"transfer_learning": {"random_backbone"}}


def test_the_nine_templates_are_listed_with_their_meta():
    infos = list_templates()
    assert [info.name for info in infos] == TEMPLATES
    for info in infos:
        assert info.title.strip() and info.task.strip(), info.name
        assert info.description.strip() and info.expects.strip(), info.name
        assert info.nodes == len(load_template(info.name).nodes) > 1, info.name


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_nodes_have_labels_and_flow_top_to_bottom(name):
    doc = load_template(name)
    graphs = [(doc.nodes, doc.edges), *((b.nodes, b.edges) for b in doc.blocks.values())]
    for nodes, edges in graphs:
        by_id = {node.id: node for node in nodes}
        assert all(node.label for node in nodes), name
        for edge in edges:
            source, target = by_id[edge.source], by_id[edge.target]
            assert source.position.y < target.position.y, f"{name}: {edge}"


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_analyzes_without_errors_or_warnings(name):
    problems = analyze(load_template(name)).problems
    codes = {level: {p.code for p in problems if p.level == level} for level in ("warning", "tip")}
    assert [p.message for p in problems if p.level == "error"] == []
    assert codes["warning"] == DELIBERATE_WARNINGS.get(name, set())
    assert codes["tip"] == DELIBERATE_TIPS.get(name, set())


def weight_count(weights) -> int:
    return sum(math.prod(int(d) for d in w.shape) for w in weights)


@pytest.mark.slow
@pytest.mark.parametrize("name", TEMPLATES)
def test_template_analysis_matches_its_keras_model(name):
    import keras

    keras.backend.clear_session()
    analysis = analyze(load_template(name))
    model = build_model(analysis)
    for node in analysis.doc.nodes:
        info = analysis.infos[node.id]
        layers = node_layers(model, analysis.doc, node.id)
        assert layers, f"{name}: no Keras layer for node {node.id!r}"
        if node.component == "Block":
            block = analysis.doc.blocks[node.settings["block"]]
            inner = [n for n in block.nodes if n.component != "BlockInput"]
            assert len(layers) == node.settings["repeat"] * len(inner), f"{name}: {node.id}"
        assert tuple(layers[-1].output.shape) == info.shape, f"{name}: {node.id}"
        trainable = sum(weight_count(layer.trainable_weights) for layer in layers)
        non_trainable = sum(weight_count(layer.non_trainable_weights) for layer in layers)
        assert (trainable, non_trainable) == (info.trainable, info.non_trainable), (
            f"{name}: {node.id}")  # fmt: skip
    assert model.count_params() == analysis.totals()["params"], name


def test_unknown_template_names_the_available_ones():
    with pytest.raises(ValueError) as err:
        load_template("image_clasification")
    message = str(err.value)
    assert "\n" not in message
    assert "'image_clasification'" in message
    assert all(name in message for name in TEMPLATES)


@pytest.mark.parametrize("name", [
    "../model_templates/image_classification", "model_templates/image_classification",
    "image_classification/..", "..\\image_classification", "/etc/passwd",
    "image_classification.json", ".hidden", "",
])  # fmt: skip
def test_template_names_with_paths_are_refused(name):
    with pytest.raises(ValueError, match="expected one of the model templates"):
        load_template(name)


def test_new_from_template_takes_the_new_name_and_keeps_the_rest():
    template = load_template("tabular_regression")
    doc = new_from_template("tabular_regression", "  house prices  ")
    assert doc.meta.name == "house prices"
    assert doc.meta.model_dump(exclude={"name"}) == template.meta.model_dump(exclude={"name"})
    assert doc.nodes == template.nodes and doc.edges == template.edges


def test_new_from_template_without_a_name_keeps_the_title():
    assert new_from_template("image_classification").meta.name == (
        load_template("image_classification").meta.name)  # fmt: skip


def test_new_from_template_refuses_an_empty_name():
    with pytest.raises(ValueError, match="graph_name"):
        new_from_template("image_classification", "   ")


def test_each_load_gives_an_independent_document():
    first = new_from_template("resnet_blocks")
    first.nodes[0].settings["shape"] = [8, 8, 3]
    assert load_template("resnet_blocks").nodes[0].settings["shape"] == [32, 32, 3]


def test_templates_dir_holds_only_loadable_templates():
    assert sorted(p.stem for p in TEMPLATES_DIR.glob("*.json")) == template_names()


def test_listing_templates_does_not_import_tensorflow():
    code = ("import sys\nfrom app.graph.model_templates import list_templates\nlist_templates()\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=TEMPLATES_DIR.parent)  # fmt: skip
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def sample_path(tmp_path_factory):
    """name -> the path of that sample, made once for this module."""
    folder, made = tmp_path_factory.mktemp("samples"), {}

    def path(name: str):
        if name not in made:
            made[name] = make_sample(name, folder / name)
        return made[name]

    return path


def data_of(path):
    """What `data configure` fits a graph to, from the table at `path` (as `layerflow data
    add` would fit it, on every row): its input spec, and its (task, target, classes)."""
    source = read_source(path)
    prof = profile(source)
    config = default_config(prof)
    spec = input_spec(config, fit(config, source, range(prof.rows)))
    return spec, (prof.task, prof.target, prof.classes)


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_names_its_sample_and_fits_it_once_configured(name, sample_path):
    """`data configure` of a template's own sample gives a graph with no errors and nothing
    left that disagrees with the data (as `layerflow data add` would fit it, on every row)."""
    doc = load_template(name)
    assert doc.meta.sample in SAMPLES, f"{name}: meta.sample={doc.meta.sample!r}"
    spec, head = data_of(sample_path(doc.meta.sample))
    configured, _ = autoconfig.configure(doc, spec, *head)
    assert configured.meta.task == doc.meta.task, name  # its own sample: as the template says
    assert [p.message for p in analyze(configured).errors] == [], name
    assert [p.message for p in autoconfig.mismatches(configured, spec, *head)] == [], name


@pytest.mark.parametrize("said, task, now", [
    ("binary_classification", "multiclass", "multiclass_classification"),
    ("binary_classification", "regression", "regression"),
    ("image_classification", "binary", "image_classification"),
    ("image_classification", "multiclass", "image_classification"),
    ("regression", "binary", "binary_classification"),
    ("anomaly_detection", "binary", "anomaly_detection"),
    (None, "forecasting", "forecasting"),
])  # fmt: skip
def test_configuring_for_other_data_says_the_datas_task(said, task, now):
    assert autoconfig.described_task(said, task) == now


def test_data_configure_of_a_binary_template_for_iris_says_multiclass(tmp_path):
    doc = next(load_template(n) for n in TEMPLATES
               if load_template(n).meta.task == "binary_classification")  # fmt: skip
    spec, head = data_of(make_sample("iris", tmp_path / "iris"))
    configured, changes = autoconfig.configure(doc, spec, *head)
    assert configured.meta.task == "multiclass_classification"
    assert "meta.task: 'binary_classification' -> 'multiclass_classification'" in changes
