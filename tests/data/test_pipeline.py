import numpy as np
import pandas as pd
import pytest
from PIL import Image

from app.data.sources import Source, read_source
from app.keras import pipeline
from app.keras.pipeline import make_dataset
from app.runtime.config import FeatureSpec, PreprocessConfig, WindowSpec
from app.runtime.fit import fit
from app.runtime.transform import input_spec, transform


def table(tmp_path, frame: pd.DataFrame, name: str = "data.csv") -> Source:
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return read_source(path)


def batches(dataset) -> list:
    return [
        (
            {name: np.asarray(value) for name, value in inputs.items()},
            np.asarray(targets),
        )
        for inputs, targets in dataset
    ]


def assert_same_batches(first: list, second: list) -> None:
    assert len(first) == len(second)
    for (inputs_a, targets_a), (inputs_b, targets_b) in zip(first, second, strict=True):
        assert inputs_a.keys() == inputs_b.keys()
        for name in inputs_a:
            np.testing.assert_allclose(inputs_a[name], inputs_b[name], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(targets_a, targets_b)


def mixed_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "gamma", "delta", "Epsilon!", "zeta,"]
    frame = pd.DataFrame(
        {
            "x": rng.normal(0, 3, rows).round(5),
            "y": rng.uniform(-1, 1, rows),
            "colour": rng.choice(["red", "green", "blue", "teal"], rows),
            "grade": rng.choice([1, 2, 3, 7], rows),
            "note": [" ".join(rng.choice(words, rng.integers(1, 9))) for _ in range(rows)],
            "label": rng.choice([3, 5, 8], rows),
        }
    )
    frame.loc[::17, "x"] = np.nan
    frame.loc[::23, "colour"] = None
    return frame


MIXED = PreprocessConfig(
    features=[
        FeatureSpec(column="x", kind="numeric", method="standardize"),
        FeatureSpec(column="y", kind="numeric", method="minmax"),
        FeatureSpec(column="colour", kind="categorical", method="onehot"),
        FeatureSpec(column="grade", kind="categorical", method="integer"),
        FeatureSpec(column="note", kind="text", vocab_size=6, sequence_length=5),
    ],
    target="label",
    target_kind="classes",
)


def test_batches_have_the_shapes_of_input_spec(tmp_path):
    source = table(tmp_path, mixed_frame())
    state = fit(MIXED, source, range(200))

    inputs, targets = next(iter(make_dataset(MIXED, state, source, range(200), batch_size=16)))

    for name, (shape, dtype) in input_spec(MIXED, state).items():
        assert inputs[name].shape == (16, *shape)
        assert inputs[name].dtype.name == dtype
    assert targets.shape == (16,)


def test_in_memory_batches_are_those_of_transform(tmp_path):
    source = table(tmp_path, mixed_frame())
    state = fit(MIXED, source, range(200))
    index = list(range(200, 300))

    found = batches(make_dataset(MIXED, state, source, index, batch_size=64))
    inputs, targets = transform(MIXED, state, source, index)

    assert [len(t) for _, t in found] == [64, 36]
    np.testing.assert_array_equal(
        np.concatenate([i["features"] for i, _ in found]), inputs["features"]
    )
    np.testing.assert_array_equal(np.concatenate([t for _, t in found]), targets)


def test_streamed_csv_gives_the_batches_of_the_in_memory_path(tmp_path):
    source = table(tmp_path, mixed_frame())
    state = fit(MIXED, source, range(0, 300, 2))
    index = list(range(1, 300, 3))

    in_memory = batches(make_dataset(MIXED, state, source, index, batch_size=10))
    streamed = batches(
        make_dataset(MIXED, state, source, index, batch_size=10, memory_limit_bytes=1)
    )

    assert_same_batches(streamed, in_memory)


def test_streamed_csv_joins_lines_cut_by_the_ends_of_blocks(tmp_path, monkeypatch):
    source = table(tmp_path, mixed_frame())
    state = fit(MIXED, source, range(200))
    monkeypatch.setattr(pipeline, "CSV_BLOCK_BYTES", 333)  # many blocks, and a shorter last one

    streamed = batches(make_dataset(MIXED, state, source, range(300), 50, memory_limit_bytes=1))

    assert_same_batches(streamed, batches(make_dataset(MIXED, state, source, range(300), 50)))


def test_streamed_csv_reads_windows_line_ends_and_skips_blank_lines(tmp_path):
    frame = mixed_frame(rows=40)
    text = frame.to_csv(index=False, lineterminator="\r\n")
    lines = text.split("\r\n")
    (tmp_path / "data.csv").write_text("\r\n".join([*lines[:10], "", *lines[10:]]))
    source = read_source(tmp_path / "data.csv")
    state = fit(MIXED, source, range(40))

    streamed = batches(make_dataset(MIXED, state, source, range(40), 8, memory_limit_bytes=1))

    assert len(source.frame) == 40
    assert_same_batches(streamed, batches(make_dataset(MIXED, state, source, range(40), 8)))


def test_a_sampled_table_streams_all_its_rows_from_disk(tmp_path):
    frame = mixed_frame()
    whole = table(tmp_path, frame)
    sample = read_source(tmp_path / "data.csv", max_rows=20)
    state = fit(MIXED, sample, range(250))  # fitting streams the rows past the sample too

    assert state == fit(MIXED, whole, range(250))
    streamed = batches(make_dataset(MIXED, state, sample, range(250, 300), batch_size=8))
    in_memory = batches(make_dataset(MIXED, state, whole, range(250, 300), batch_size=8))
    assert_same_batches(streamed, in_memory)


def test_streamed_parquet_gives_the_batches_of_the_in_memory_path(tmp_path):
    source = table(tmp_path, mixed_frame(), name="data.parquet")
    state = fit(MIXED, source, range(150))
    index = list(range(150, 300))

    in_memory = batches(make_dataset(MIXED, state, source, index, batch_size=32))
    streamed = batches(
        make_dataset(MIXED, state, source, index, batch_size=32, memory_limit_bytes=1)
    )

    assert_same_batches(streamed, in_memory)


def test_training_shuffles_the_same_way_for_the_same_seed(tmp_path, monkeypatch):
    frame = pd.DataFrame({"x": np.arange(100.0), "label": ["a", "b"] * 50})
    source = table(tmp_path, frame)
    config = PreprocessConfig(
        features=[FeatureSpec(column="x", kind="numeric", method="none")],
        target="label",
        target_kind="classes",
    )
    state = fit(config, source, range(100))

    def epochs(seed: int) -> list[list[float]]:
        dataset = make_dataset(
            config, state, source, range(100), batch_size=7, training=True, seed=seed
        )
        return [
            np.concatenate([i["features"][:, 0] for i, _ in dataset]).tolist() for _ in range(2)
        ]

    for limit in (10_000, 10):  # per-row slices, then whole-batch gathers
        monkeypatch.setattr(pipeline, "PER_ROW_LIMIT", limit)
        first, second = epochs(seed=1)
        assert sorted(first) == sorted(second) == list(range(100))
        assert first != second != list(range(100))
        assert epochs(seed=1) == [first, second]
        assert epochs(seed=2)[0] != first


def test_window_batches_are_the_windows_of_transform(tmp_path):
    t = np.arange(120)
    source = table(tmp_path, pd.DataFrame({"t": t, "value": np.cos(t / 7) + 0.1 * t}))
    config = PreprocessConfig(
        features=[FeatureSpec(column="value", kind="numeric")],
        target="value",
        target_kind="values",
        window=WindowSpec(size=12, horizon=2, column="value"),
    )
    state = fit(config, source, range(84))
    index = list(range(84, 120))

    found = batches(make_dataset(config, state, source, index, batch_size=8))
    inputs, targets = transform(config, state, source, index)

    assert found[0][0]["features"].shape == (8, 12, 1)
    np.testing.assert_array_equal(
        np.concatenate([i["features"] for i, _ in found]), inputs["features"]
    )
    np.testing.assert_array_equal(np.concatenate([t for _, t in found]), targets)


# Images


def image_folder(tmp_path, size: tuple[int, int] = (6, 5)) -> tuple[Source, np.ndarray]:
    """Two class folders of RGB PNGs whose pixels are known."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (10, *size, 3), dtype=np.uint8)
    for i, image in enumerate(pixels):
        folder = tmp_path / "images" / ("cat" if i % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    source = read_source(tmp_path / "images")
    order = [int(p.split("/")[-1][:2]) for p in source.frame["image"]]
    return source, pixels[order]


def image_config(**settings) -> PreprocessConfig:
    spec = FeatureSpec(column="image", kind="image", **{"height": 6, "width": 5, **settings})
    return PreprocessConfig(features=[spec], target="label", target_kind="classes")


def test_image_folder_pipeline_decodes_pngs_to_scaled_pixels(tmp_path):
    source, pixels = image_folder(tmp_path)
    config = image_config()
    state = fit(config, source, range(10))

    found = batches(make_dataset(config, state, source, range(10), batch_size=4))

    images = np.concatenate([i["image"] for i, _ in found])
    labels = np.concatenate([t for _, t in found])
    assert found[0][0]["image"].shape == (4, 6, 5, 3)
    np.testing.assert_allclose(images, pixels / 255, atol=1e-6)
    assert labels.tolist() == [1 if name == "dog" else 0 for name in source.frame["label"]]


def test_images_are_resized_and_made_grayscale(tmp_path):
    source, _ = image_folder(tmp_path)
    config = image_config(height=3, width=4, grayscale=True, normalize=False)
    state = fit(config, source, range(10))

    inputs, _ = next(iter(make_dataset(config, state, source, range(10), batch_size=10)))

    assert inputs["image"].shape == (10, 3, 4, 1)
    assert 1 < float(np.max(inputs["image"])) <= 255


def test_images_decoded_from_disk_equal_those_held_in_memory(tmp_path):
    source, _ = image_folder(tmp_path)
    config = image_config(height=4, width=4)
    state = fit(config, source, range(10))

    in_memory = batches(make_dataset(config, state, source, range(10), batch_size=3))
    from_disk = batches(
        make_dataset(config, state, source, range(10), batch_size=3, memory_limit_bytes=0)
    )

    assert_same_batches(from_disk, in_memory)


def test_augmentation_happens_only_in_training(tmp_path):
    source, pixels = image_folder(tmp_path)
    config = image_config(flip=True)
    state = fit(config, source, range(10))

    plain = np.concatenate([i["image"] for i, _ in make_dataset(config, state, source, range(10))])
    trained = make_dataset(config, state, source, range(10), training=True)
    augmented = np.concatenate([i["image"] for i, _ in trained])

    np.testing.assert_allclose(plain, pixels / 255, atol=1e-6)

    def among(image: np.ndarray, images: np.ndarray) -> bool:
        return any(np.allclose(image, other, atol=1e-6) for other in images)

    mirrored = [among(image, plain[:, :, ::-1]) and not among(image, plain) for image in augmented]
    assert all(among(image, plain) or flip for image, flip in zip(augmented, mirrored, strict=True))
    assert any(mirrored)


def segmentation_folder(tmp_path) -> Source:
    """Images whose red channel says where the mask is 255 and elsewhere 0."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        mask = (rng.random((8, 8)) < 0.4).astype(np.uint8) * 255
        image = np.zeros((8, 8, 3), np.uint8)
        image[..., 0] = mask
        Image.fromarray(image).save(tmp_path / "images" / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i}.png")
    return read_source(tmp_path)


def test_segmentation_batches_pair_images_with_mask_class_ids(tmp_path):
    source = segmentation_folder(tmp_path)
    spec = FeatureSpec(column="image", kind="image", height=8, width=8)
    config = PreprocessConfig(features=[spec], target="mask", target_kind="mask")
    state = fit(config, source, range(6))

    for limit in (2**30, 0):  # in memory, and decoded from disk
        inputs, masks = next(
            iter(
                make_dataset(
                    config, state, source, range(6), batch_size=6, memory_limit_bytes=limit
                )
            )
        )

        assert masks.dtype.name == "int32"
        np.testing.assert_array_equal(np.asarray(masks), np.asarray(inputs["image"])[..., 0] > 0.5)


def test_segmentation_augmentation_moves_mask_and_image_together(tmp_path):
    source = segmentation_folder(tmp_path)
    spec = FeatureSpec(column="image", kind="image", height=8, width=8, flip=True, rotation=0.2)
    config = PreprocessConfig(features=[spec], target="mask", target_kind="mask")
    state = fit(config, source, range(6))
    plain = next(iter(make_dataset(config, state, source, range(6), batch_size=6)))

    inputs, masks = next(
        iter(make_dataset(config, state, source, range(6), batch_size=6, training=True))
    )

    assert not np.array_equal(np.asarray(masks), np.asarray(plain[1]))
    np.testing.assert_array_equal(np.asarray(masks), np.asarray(inputs["image"])[..., 0] > 0.5)


# Bad settings


@pytest.mark.parametrize(("name", "value"), [("batch_size", 0), ("memory_limit_bytes", -1)])
def test_invalid_pipeline_settings_are_refused_naming_the_setting(tmp_path, name, value):
    source = table(tmp_path, mixed_frame(rows=20))
    state = fit(MIXED, source, range(20))

    with pytest.raises(ValueError, match=rf"`{name}`.*Received: {name}={value}"):
        make_dataset(MIXED, state, source, range(20), **{name: value})
