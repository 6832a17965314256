import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import app.runtime
from app.data.preprocess_config import check_against_profile, default_config
from app.data.profile import profile
from app.data.sources import DataError, Source, read_source
from app.runtime.config import FeatureSpec, FittedState, PreprocessConfig, WindowSpec, check_config
from app.runtime.fit import fit
from app.runtime.layers import keras_preprocessing, keras_preprocessing_model, raw_input_spec
from app.runtime.transform import input_spec, transform


def table(tmp_path, frame: pd.DataFrame, name: str = "data.csv") -> Source:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return read_source(path)


def numeric(column: str, method: str = "standardize") -> FeatureSpec:
    return FeatureSpec(column=column, kind="numeric", method=method)


def mixed_frame(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "height": rng.normal(170, 10, rows).round(2),
            "weight": rng.uniform(50, 100, rows).round(2),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "size": rng.choice([1, 2, 3, 4], rows),
            "label": rng.choice(["yes", "no"], rows),
        }
    )


MIXED = PreprocessConfig(
    features=[
        numeric("height"),
        numeric("weight", "minmax"),
        FeatureSpec(column="colour", kind="categorical", method="onehot"),
        FeatureSpec(column="size", kind="categorical", method="integer"),
    ],
    target="label",
    target_kind="classes",
)


# Fitting


def test_fit_ignores_the_values_of_rows_outside_train(tmp_path):
    values = np.r_[np.random.default_rng(0).normal(0, 1, 80), np.full(20, 1e6)]
    source = table(tmp_path, pd.DataFrame({"x": values}))
    config = PreprocessConfig(features=[numeric("x")])

    state = fit(config, source, list(range(80)))

    assert state.columns["x"].mean == pytest.approx(values[:80].mean())
    assert state.columns["x"].max < 1e3
    assert state.rows == 80


def test_standardized_train_rows_have_zero_mean_and_unit_std(tmp_path):
    source = table(tmp_path, mixed_frame())
    config = PreprocessConfig(features=[numeric("height")])
    train = list(range(0, 60, 2))

    inputs, _ = transform(config, fit(config, source, train), source, train)

    assert inputs["features"].mean() == pytest.approx(0, abs=1e-5)
    assert inputs["features"].std() == pytest.approx(1, abs=1e-5)


def test_minmax_maps_the_train_range_onto_zero_to_one(tmp_path):
    source = table(tmp_path, pd.DataFrame({"x": [2.0, 4.0, 6.0, 10.0, 100.0]}))
    config = PreprocessConfig(features=[numeric("x", "minmax")])
    state = fit(config, source, [0, 1, 2, 3])

    inputs, _ = transform(config, state, source, [0, 1, 3, 4])

    np.testing.assert_allclose(inputs["features"][:, 0], [0.0, 0.25, 1.0, 12.25])


def test_constant_column_maps_to_zero_not_to_a_division_by_zero(tmp_path):
    source = table(tmp_path, pd.DataFrame({"x": [5.0, 5.0, 5.0, 7.0]}))
    config = PreprocessConfig(features=[numeric("x")])
    state = fit(config, source, [0, 1, 2])

    inputs, _ = transform(config, state, source, [0, 3])

    np.testing.assert_allclose(inputs["features"][:, 0], [0.0, 2.0])


def test_missing_number_becomes_the_train_mean(tmp_path):
    source = table(tmp_path, pd.DataFrame({"x": [1.0, 3.0, None, 8.0]}))
    config = PreprocessConfig(features=[numeric("x", "none")])
    state = fit(config, source, [0, 1])

    inputs, _ = transform(config, state, source, [2])

    assert inputs["features"][0, 0] == pytest.approx(2.0)


def test_transform_is_reproducible_from_state_saved_as_json(tmp_path):
    source = table(tmp_path, mixed_frame())
    state = fit(MIXED, source, list(range(40)))
    reloaded = FittedState.model_validate_json(state.model_dump_json())
    config = PreprocessConfig.model_validate(json.loads(MIXED.model_dump_json()))

    first = transform(MIXED, state, source, list(range(40, 60)))
    second = transform(config, reloaded, source, list(range(40, 60)))

    np.testing.assert_array_equal(first[0]["features"], second[0]["features"])
    np.testing.assert_array_equal(first[1], second[1])


# Categories


def test_onehot_gives_an_unseen_category_the_reserved_first_slot(tmp_path):
    frame = pd.DataFrame({"colour": ["red", "green", "blue", "green", "purple", None]})
    source = table(tmp_path, frame)
    config = PreprocessConfig(features=[FeatureSpec(column="colour", kind="categorical")])
    state = fit(config, source, [0, 1, 2, 3])

    inputs, _ = transform(config, state, source, [1, 4, 5])

    assert state.columns["colour"].categories == ["blue", "green", "red"]
    np.testing.assert_array_equal(inputs["features"], [[0, 0, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0]])


def test_integer_encoding_numbers_categories_from_one_and_unseen_as_zero(tmp_path):
    source = table(tmp_path, pd.DataFrame({"size": [30, 10, 20, 10, 99]}))
    config = PreprocessConfig(
        features=[FeatureSpec(column="size", kind="categorical", method="integer")]
    )
    state = fit(config, source, [0, 1, 2, 3])

    inputs, _ = transform(config, state, source, [0, 1, 2, 4])

    assert state.columns["size"].categories == [10, 20, 30]
    np.testing.assert_array_equal(inputs["features"][:, 0], [3, 1, 2, 0])


def test_target_classes_become_ids_in_the_profiles_order(tmp_path):
    source = table(tmp_path, pd.DataFrame({"x": range(6), "label": [10, 2, 2, 10, 1, 2]}))
    config = PreprocessConfig(features=[numeric("x")], target="label", target_kind="classes")
    state = fit(config, source, range(6))

    _, targets = transform(config, state, source, range(6))

    assert state.classes == ["1", "2", "10"]
    np.testing.assert_array_equal(targets, [2, 1, 1, 2, 0, 1])


def test_a_class_train_never_saw_is_an_error_naming_row_and_column(tmp_path):
    source = table(tmp_path, pd.DataFrame({"x": range(4), "label": ["a", "b", "a", "c"]}))
    config = PreprocessConfig(features=[numeric("x")], target="label", target_kind="classes")
    state = fit(config, source, [0, 1, 2])

    with pytest.raises(DataError, match=r"row 4, column 'label': class 'c'"):
        transform(config, state, source, [3])


# Text


TEXTS = pd.DataFrame(
    {
        "review": [
            "Great film, great cast!",
            "A dull film.",
            "great",
            "Ünusual words: GREAT, dull... and a new-word",
        ]
    }
)


def test_text_becomes_word_ids_by_frequency_with_padding_and_unknown(tmp_path):
    source = table(tmp_path, TEXTS)
    spec = FeatureSpec(column="review", kind="text", vocab_size=5, sequence_length=6)
    config = PreprocessConfig(features=[spec])
    state = fit(config, source, [0, 1, 2])

    inputs, _ = transform(config, state, source, [0, 3])

    # great x3, film x2, then a/cast/dull x1 (alphabetical); 5 ids leave room for 3 words.
    assert state.columns["review"].vocabulary == ["great", "film", "a"]
    np.testing.assert_array_equal(inputs["text"], [[2, 3, 2, 1, 0, 0], [1, 1, 2, 1, 1, 4]])


def test_text_matches_keras_text_vectorization(tmp_path):
    source = table(tmp_path, TEXTS)
    config = PreprocessConfig(
        features=[FeatureSpec(column="review", kind="text", vocab_size=50, sequence_length=5)]
    )
    state = fit(config, source, [0, 1, 2])
    inputs, _ = transform(config, state, source, range(4))
    model = keras_preprocessing_model(config, state)

    outputs = model({"text": np.array(TEXTS["review"].tolist())[:, None]})

    np.testing.assert_array_equal(np.asarray(outputs["text"]), inputs["text"])


# Keras layers


def raw_rows(source: Source, config: PreprocessConfig, state: FittedState, rows: list[int]):
    frame = source.frame.iloc[rows]
    raw = {}
    for name, (_, dtype) in raw_input_spec(config, state).items():
        values = frame[name].to_numpy()
        raw[name] = (values.astype(str) if dtype == "string" else values.astype(dtype))[:, None]
    return raw


def test_keras_layers_compute_what_transform_does_on_a_raw_table_row(tmp_path):
    frame = mixed_frame()
    frame.loc[55, "colour"] = "violet"  # a category train never saw
    frame.loc[56, "size"] = 9
    source = table(tmp_path, frame)
    state = fit(MIXED, source, list(range(50)))
    rows = list(range(45, 60))
    inputs, _ = transform(MIXED, state, source, rows)

    outputs = keras_preprocessing_model(MIXED, state)(raw_rows(source, MIXED, state, rows))

    np.testing.assert_allclose(
        np.asarray(outputs["features"]), inputs["features"], rtol=1e-5, atol=1e-6
    )


def test_keras_layers_are_the_expected_preprocessing_layers(tmp_path):
    source = table(tmp_path, mixed_frame())
    state = fit(MIXED, source, list(range(50)))

    layers = keras_preprocessing(MIXED, state)

    names = {column: [type(layer).__name__ for layer in found] for column, found in layers.items()}
    assert names == {
        "height": ["Normalization"],
        "weight": ["Normalization"],
        "colour": ["StringLookup"],
        "size": ["IntegerLookup"],
    }


def test_keras_layers_resize_and_rescale_images_as_transform_does(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 11, 7, 3), dtype=np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    frame = pd.DataFrame({"image": [f"{i}.png" for i in range(3)], "label": ["a", "b", "a"]})
    source = table(tmp_path, frame)
    spec = FeatureSpec(column="image", kind="image", height=5, width=9)
    config = PreprocessConfig(features=[spec], target="label", target_kind="classes")
    state = fit(config, source, [0, 1, 2])
    inputs, _ = transform(config, state, source, [0, 1, 2])

    outputs = keras_preprocessing_model(config, state)({"image": pixels.astype(np.float32)})

    assert inputs["image"].shape == (3, 5, 9, 3)
    np.testing.assert_allclose(np.asarray(outputs["image"]), inputs["image"], atol=1e-6)


def test_input_spec_gives_the_shapes_and_types_transform_produces(tmp_path):
    frame = mixed_frame().assign(review=["a b c d"] * 60)
    source = table(tmp_path, frame)
    text = FeatureSpec(column="review", kind="text", vocab_size=10, sequence_length=7)
    config = MIXED.model_copy(update={"features": [*MIXED.features, text]})
    state = fit(config, source, range(40))

    inputs, _ = transform(config, state, source, range(40, 45))

    # height, weight, colour one-hot (3 + unseen), size id; then 7 word ids.
    assert input_spec(config, state) == {"features": ([7], "float32"), "text": ([7], "int64")}
    for name, (shape, dtype) in input_spec(config, state).items():
        assert list(inputs[name].shape[1:]) == shape
        assert inputs[name].dtype == np.dtype(dtype)


# Windows


def series_source(tmp_path, steps: int = 100) -> Source:
    t = np.arange(steps)
    return table(tmp_path, pd.DataFrame({"t": t, "value": np.sin(t / 5) * 10 + t}))


def test_windows_have_size_rows_and_horizon_targets(tmp_path):
    source = series_source(tmp_path)
    config = PreprocessConfig(
        features=[numeric("value", "none")],
        target="value",
        target_kind="values",
        window=WindowSpec(size=10, horizon=3, column="value"),
    )
    state = fit(config, source, range(100))

    inputs, targets = transform(config, state, source, range(100))

    values = source.frame["value"].to_numpy(dtype=np.float32)
    assert inputs["features"].shape == (88, 10, 1)
    assert targets.shape == (88, 3)
    np.testing.assert_array_equal(inputs["features"][5, :, 0], values[5:15])
    np.testing.assert_array_equal(targets[5], values[15:18])
    assert input_spec(config, state) == {"features": ([10, 1], "float32")}


def test_windows_do_not_span_a_gap_in_the_rows(tmp_path):
    source = series_source(tmp_path)
    config = PreprocessConfig(
        features=[numeric("value")], window=WindowSpec(size=5, horizon=1, column="value")
    )
    rows = [*range(0, 20), *range(50, 60)]
    state = fit(config, source, rows)

    inputs, _ = transform(config, state, source, rows)

    assert len(inputs["features"]) == (20 - 5) + (10 - 5)


def test_window_larger_than_the_series_is_an_error_naming_the_setting(tmp_path):
    source = series_source(tmp_path, steps=30)
    config = PreprocessConfig(
        features=[numeric("value")], window=WindowSpec(size=24, horizon=12, column="value")
    )
    state = fit(config, source, range(30))

    with pytest.raises(DataError, match=r"Window on 'value'.*size=24.*36 consecutive rows"):
        transform(config, state, source, range(30))


# Segmentation


def test_mask_pixel_values_become_class_ids(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    masks = [np.zeros((4, 6), np.uint8) for _ in range(3)]
    masks[0][:2] = 128
    masks[1][:, :3] = 255
    masks[2][1:3, 1:3] = 200  # not seen in train
    for i, mask in enumerate(masks):
        Image.fromarray(np.full((4, 6, 3), 60 * i, np.uint8)).save(tmp_path / "images" / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i}.png")
    source = read_source(tmp_path)
    spec = FeatureSpec(column="image", kind="image", height=4, width=6)
    config = PreprocessConfig(features=[spec], target="mask", target_kind="mask")
    state = fit(config, source, [0, 1])

    _, targets = transform(config, state, source, [0, 1, 2])

    assert state.mask_values == [0, 128, 255]
    np.testing.assert_array_equal(targets[0], (masks[0] == 128) * 1)
    np.testing.assert_array_equal(targets[1], (masks[1] == 255) * 2)
    np.testing.assert_array_equal(targets[2], np.zeros((4, 6)))


# Defaults from the profile


def test_default_config_follows_the_profile(tmp_path):
    rng = np.random.default_rng(0)
    words = ["good", "bad", "fine", "odd", "new", "old", "big", "small", "hot", "cold"]
    frame = pd.DataFrame(
        {
            "price": rng.normal(10, 2, 200),
            "city": rng.choice(["Oslo", "Rome", "Lima"], 200),
            "note": [" ".join(rng.choice(words, 6)) + f" {i}" for i in range(200)],
            "label": rng.choice(["a", "b", "c"], 200),
        }
    )
    source = table(tmp_path, frame)

    config = default_config(profile(source))

    kinds = {spec.column: (spec.kind, spec.method) for spec in config.features}
    assert kinds == {
        "price": ("numeric", "standardize"),
        "city": ("categorical", "onehot"),
        "note": ("text", None),
    }
    assert (config.target, config.target_kind) == ("label", "classes")
    fit(config, source, range(150))  # and the defaults can be fitted


def test_default_config_takes_images_at_their_commonest_size(tmp_path):
    sizes = [(5, 7), (5, 7), (9, 4)]
    for i, (height, width) in enumerate(sizes):
        folder = tmp_path / "images" / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((height, width), np.uint8)).save(folder / f"{i}.png")

    config = default_config(profile(read_source(tmp_path / "images")))

    (spec,) = config.features
    assert (spec.kind, spec.height, spec.width, spec.grayscale) == ("image", 5, 7, True)
    assert (config.target, config.target_kind) == ("label", "classes")


def test_default_config_for_a_time_series_has_a_window(tmp_path):
    config = default_config(profile(series_source(tmp_path)))

    assert config.window == WindowSpec(size=24, horizon=1, column="value")
    assert [spec.column for spec in config.features] == ["value"]


def test_a_time_series_enters_its_windows_unscaled(tmp_path):
    # A forecast adds a predicted change to the window's last value: that value must be the
    # series' own, not standardized over the train split.
    source = series_source(tmp_path)
    config = default_config(profile(source))
    state = fit(config, source, range(len(source.frame)))
    inputs, targets = transform(config, state, source, range(len(source.frame)))
    np.testing.assert_allclose(inputs["features"][1:, -1, 0], targets[:-1, 0])


# Bad settings


def test_standardizing_a_text_column_is_an_error_naming_the_column(tmp_path):
    source = table(tmp_path, pd.DataFrame({"comment": ["nice", "meh", "fine"]}))
    config = PreprocessConfig(features=[numeric("comment")])

    with pytest.raises(DataError, match=r"column 'comment': cannot standardize it, it holds text"):
        fit(config, source, [0, 1, 2])


def test_standardizing_a_text_column_is_caught_against_the_profile(tmp_path):
    frame = pd.DataFrame({"comment": [f"a long comment number {i}" for i in range(60)]})
    prof = profile(table(tmp_path, frame))
    config = PreprocessConfig(features=[numeric("comment")])

    with pytest.raises(ValueError, match=r"Column 'comment' holds text values; cannot standardize"):
        check_against_profile(config, prof)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (FeatureSpec(column="t", kind="text", vocab_size=1), r"`vocab_size`.*vocab_size=1"),
        (FeatureSpec(column="t", kind="text", sequence_length=0), r"`sequence_length`"),
        (FeatureSpec(column="n", kind="numeric", method="onehot"), r"Column 'n'.*`method`"),
        (FeatureSpec(column="i", kind="image", width=8), r"Column 'i'.*`height`.*height=None"),
        (FeatureSpec(column="i", kind="image", height=8, width=8, zoom=1.5), r"`zoom`"),
    ],
)
def test_invalid_settings_are_refused_naming_column_and_setting(spec, message):
    with pytest.raises(ValueError, match=message):
        check_config(PreprocessConfig(features=[spec]))


def test_the_target_cannot_also_be_a_feature():
    config = PreprocessConfig(features=[numeric("y")], target="y", target_kind="values")

    with pytest.raises(ValueError, match="Column 'y' is the target"):
        check_config(config)


def test_a_column_missing_from_the_data_is_named(tmp_path):
    source = table(tmp_path, pd.DataFrame({"x": [1.0, 2.0]}))
    config = PreprocessConfig(features=[numeric("z")])

    with pytest.raises(DataError, match=r"column 'z' of the preprocessing settings is not in"):
        fit(config, source, [0, 1])


def test_importing_the_runtime_and_the_data_store_leaves_tensorflow_unloaded():
    code = (
        "import importlib, pkgutil, sys, app.runtime, app.workspace.datasets, app.keras.pipeline; "
        "[importlib.import_module(m.name) for m in "
        "pkgutil.iter_modules(app.runtime.__path__, 'app.runtime.')]; "
        "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    )

    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert found.stdout.strip() == "[]"


def test_a_copy_of_the_runtime_fits_and_transforms_as_layerflow_does_without_it(tmp_path):
    # An exported project carries app/runtime verbatim, as a package of its own.
    shutil.copytree(Path(app.runtime.__file__).parent, tmp_path / "runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    frame = mixed_frame()
    source = table(tmp_path, frame)
    train = list(range(40))
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from runtime.config import PreprocessConfig\n"
        "from runtime.fit import fit\n"
        "from runtime.rows import read_rows\n"
        "from runtime.transform import transform\n"
        f"config = PreprocessConfig.model_validate_json({MIXED.model_dump_json()!r})\n"
        f"rows = read_rows({str(tmp_path / 'data.csv')!r})\n"
        f"state = fit(config, rows, {train})\n"
        f"inputs, targets = transform(config, state, rows, list(range({len(frame)})))\n"
        "print(json.dumps({'state': state.model_dump(), 'features': inputs['features'].tolist(),"
        " 'targets': targets.tolist(), 'layerflow': sorted(m for m in sys.modules"
        " if m == 'app' or m.startswith('app.'))}))\n"
    )

    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)

    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    state = fit(MIXED, source, train)
    inputs, targets = transform(MIXED, state, source, list(range(len(frame))))
    assert found["layerflow"] == []
    assert found["state"] == state.model_dump()
    assert np.array_equal(np.asarray(found["features"], dtype=np.float32), inputs["features"])
    assert found["targets"] == targets.tolist()
