"""Which rows of a dataset an autoencoder treats as normal."""

from __future__ import annotations

import numpy as np
import pytest

from app.data.anomaly import normal_class, normal_rows, reconstructs
from app.data.samples import make_sample
from app.graph.model_templates import load_template
from app.workspace import Workspace


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory):
    sample = make_sample("breast_cancer", tmp_path_factory.mktemp("bc"))
    return Workspace(tmp_path_factory.mktemp("workspace")).add_dataset(sample, "bc")


def test_the_normal_class_is_the_most_common_train_class_unless_set():
    classes = ["a", "b", "c"]
    assert normal_class(classes, np.array([0, 2, 2, 1, 2]), None) == 2
    assert normal_class(classes, np.array([0, 2, 2, 1, 2]), "b") == 1
    assert normal_class(None, np.array([0, 1]), None) is None


def test_an_unknown_normal_class_names_the_setting_and_the_classes():
    with pytest.raises(ValueError, match=r"`normal_class`.*\(a, b\).*normal_class='z'"):
        normal_class(["a", "b"], None, "z")


def test_normal_rows_keep_the_benign_rows_of_breast_cancer(breast_cancer):
    config, state = breast_cancer.preprocessing()
    source = breast_cancer.source()
    splits = {k: breast_cancer.splits[k] for k in ("train", "validation")}
    cut, normal = normal_rows(config, state, source, splits, None)
    assert state.classes[normal] == "benign"  # 357 of the 569 tumours
    labels = source.frame["target"]
    for split, rows in splits.items():
        assert sorted(cut[split]) == sorted(r for r in rows if labels.iloc[r] == "benign")
    cut, normal = normal_rows(config, state, source, splits, "malignant")
    assert set(labels.iloc[cut["train"]]) == {"malignant"}


def test_only_graphs_whose_output_reconstructs_an_input_are_autoencoders():
    assert reconstructs(load_template("anomaly_autoencoder")) == "features"
    assert reconstructs(load_template("tabular_classification")) is None
