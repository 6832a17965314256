"""The pure-Python shape rules agree with Keras: randomized single-component graphs.

For every component, random settings drawn from its spec and random input shapes of a rank it
takes. Where our rule says the shapes fit, Keras must build the same output shape and the same
trainable and non-trainable parameter counts; where our rule refuses, Keras must refuse too.
"""

from __future__ import annotations

import math
import random

import pytest

from app.graph.analysis import analyze
from app.graph.codegen import generate_module
from app.graph.components import CATALOGUE, Setting
from app.keras.builder import load_module, node_layers
from tests.graphs import single

SAMPLES = 7

# Input ranks (batch excluded) and dtype each component is tried on; merges get several inputs.
INPUT_RANKS = {
    "Dense": (1, 2, 3),
    "Activation": (1, 3),
    "Dropout": (1, 3),
    "SpatialDropout2D": (3,),
    "Flatten": (1, 2, 3),
    "Reshape": (1, 3),
    "Permute": (2, 3),
    "BatchNormalization": (1, 3),
    "LayerNormalization": (1, 2),
    "Embedding": (1,),
    "Conv1D": (2,),
    "Conv2D": (3,),
    "Conv3D": (4,),
    "Conv2DTranspose": (3,),
    "SeparableConv2D": (3,),
    "DepthwiseConv2D": (3,),
    "MaxPooling1D": (2,),
    "AveragePooling1D": (2,),
    "MaxPooling2D": (3,),
    "AveragePooling2D": (3,),
    "GlobalMaxPooling1D": (2,),
    "GlobalAveragePooling1D": (2,),
    "GlobalMaxPooling2D": (3,),
    "GlobalAveragePooling2D": (3,),
    "UpSampling2D": (3,),
    "ZeroPadding2D": (3,),
    "Cropping2D": (3,),
    "SimpleRNN": (2,),
    "GRU": (2,),
    "LSTM": (2,),
    "Bidirectional": (2,),
    "LastStep": (1, 2),
    "MultiHeadAttention": (2,),
    "Add": (2,),
    "Subtract": (1,),
    "Multiply": (3,),
    "Average": (2,),
    "Concatenate": (2,),
    "Rescaling": (1, 3),
    "Normalization": (1, 2),
    "Resizing": (3,),
    "RandomFlip": (3,),
    "RandomRotation": (3,),
    "RandomZoom": (3,),
}
NOT_SINGLE_LAYER = {"Input", "Output", "Block", "BlockInput", "Custom", "KerasLayer", "Backbone"}


def test_every_layer_component_is_sampled():
    assert set(CATALOGUE) - NOT_SINGLE_LAYER == set(INPUT_RANKS)


def random_value(spec: Setting, rng: random.Random):
    if spec.optional and rng.random() < 0.25:
        return None
    if spec.kind == "choice":
        return rng.choice(spec.choices)
    if spec.kind == "bool":
        return rng.random() < 0.5
    if spec.kind == "int":
        low = int(spec.min if spec.min is not None else -2)
        high = int(min(spec.max if spec.max is not None else low + 6, low + 6))
        return rng.randint(max(low, 1) if spec.name != "axis" else low, max(high, 1))
    if spec.kind == "float":
        low = spec.min if spec.min is not None else -1.0
        high = spec.max if spec.max is not None else low + 2.0
        return round(rng.uniform(low, min(high, low + 1.0)), 3)
    if spec.kind == "ints":
        low = int(spec.min or 0)
        if spec.pairs and rng.random() < 0.5:  # [[top, bottom], [left, right]]
            return [[rng.randint(low, low + 2) for _ in range(2)] for _ in range(spec.length or 1)]
        return [rng.randint(low, low + 2) for _ in range(spec.length or 1)]
    return spec.default


def random_case(component: str, rng: random.Random):
    spec = CATALOGUE[component]
    settings = {s.name: random_value(s, rng) for s in spec.settings}
    rank = rng.choice(INPUT_RANKS[component])
    shape = [rng.randint(3, 9) for _ in range(rank)]
    dtype = "float32"
    count = (
        spec.inputs[0]
        if spec.inputs[1] == spec.inputs[0]
        else rng.randint(spec.inputs[0], min(spec.inputs[1] or 3, 3))
    )
    shapes = [list(shape) for _ in range(count)]
    if component == "Embedding":
        dtype = "int32"
    elif component == "Permute":
        settings["dims"] = rng.sample(range(1, rank + 1), rank)
    elif component == "Reshape":
        total = math.prod(shape)
        first = rng.choice([d for d in range(1, total + 1) if total % d == 0])
        settings["target_shape"] = rng.choice([[first, -1], [-1], [first, total // first]])
    elif component == "Concatenate":
        settings["axis"] = rng.choice([-1, 1, rank])
        for other in shapes[1:]:
            other[settings["axis"] - 1 if settings["axis"] > 0 else -1] = rng.randint(1, 5)
    elif component in ("Add", "Subtract", "Multiply", "Average"):
        mode = rng.choice(["same", "ones", "lower_rank", "mismatch"])
        other = shapes[-1]
        if mode == "ones":
            other[rng.randrange(len(other))] = 1
        elif mode == "lower_rank" and len(other) > 1:
            shapes[-1] = other[1:]
        elif mode == "mismatch":
            other[-1] += 1
    elif component == "MultiHeadAttention" and count == 2:
        shapes[1] = [rng.randint(2, 6), rng.randint(2, 6)]
    elif component == "Conv3D":
        shapes = [[rng.randint(3, 6) for _ in range(3)] + [rng.randint(1, 3)]]
    return settings, shapes, dtype


def keras_counts(layers) -> tuple[int, int]:
    def count(weights):
        return sum(math.prod(int(d) for d in w.shape) for w in weights)

    return (
        sum(count(layer.trainable_weights) for layer in layers),
        sum(count(layer.non_trainable_weights) for layer in layers),
    )


@pytest.mark.slow
@pytest.mark.parametrize("component", sorted(INPUT_RANKS))
def test_shape_rule_matches_keras(component):
    import keras

    rng = random.Random(f"layerflow-{component}")
    for _ in range(SAMPLES):
        settings, shapes, dtype = random_case(component, rng)
        doc = single(component, settings, shapes, dtype)
        analysis = analyze(doc)
        case = f"{component} settings={settings} inputs={shapes}"
        setting_errors = [p for p in analysis.errors if p.code != "shape"]
        assert not setting_errors, f"{case}: {setting_errors}"
        ours = analysis.infos.get("under_test")
        keras.backend.clear_session()
        try:
            model = load_module(generate_module(analysis, require_valid=False))["build_model"]()
        except Exception as err:  # Keras refused these shapes
            assert ours is None, f"{case}: we inferred {ours} but Keras failed: {err}"
            continue
        assert ours is not None, f"{case}: Keras built it but we said {analysis.errors}"
        layers = node_layers(model, analysis.doc, "under_test")
        assert tuple(layers[-1].output.shape) == ours.shape, case
        assert keras_counts(layers) == (ours.trainable, ours.non_trainable), case


def test_last_step_is_kept_by_a_keras_save_and_load(tmp_path):
    """LastStep is made of Keras' own layers: a saved model loads in safe mode, as exports and
    exported projects load it, and gives each window's last step."""
    import keras
    import numpy as np

    model = load_module(generate_module(single("LastStep", {}, [[5, 2]])))["build_model"]()
    model.save(tmp_path / "last.keras")
    loaded = keras.saving.load_model(tmp_path / "last.keras", compile=False)
    windows = np.random.default_rng(0).normal(size=(3, 5, 2)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(windows, verbose=0), windows[:, -1, :])
