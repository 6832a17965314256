"""Sample data sets: each is made, read back and profiled as the kind, size, target and task it
is meant to be; making one is all or nothing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn import datasets

from app.data import samples
from app.data.profile import profile
from app.data.samples import SAMPLES, make_sample
from app.data.sources import read_source

# name -> kind, rows, target, task, number of classes (None for regression and forecasting)
EXPECTED = {
    "digits": ("image_folder", len(datasets.load_digits().target), "label", "multiclass", 10),
    "digits_csv": ("table", len(datasets.load_digits().target), "label", "multiclass", 10),
    "iris": ("table", len(datasets.load_iris().target), "target", "multiclass", 3),
    "wine": ("table", len(datasets.load_wine().target), "target", "multiclass", 3),
    "breast_cancer": ("table", len(datasets.load_breast_cancer().target), "target", "binary", 2),
    "diabetes": ("table", len(datasets.load_diabetes().target), "target", "regression", None),
    "timeseries": ("table", 1000, "value", "forecasting", None),
    "shapes": ("segmentation", 200, "mask", "segmentation", 3),
    "objects": ("image_folder", 1500, "label", "multiclass", 6),
    "texts": ("table", 2000, "label", "binary", 2),
}


def test_every_listed_sample_is_checked_here():
    assert set(SAMPLES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_reads_back_as_its_kind_rows_target_and_task(tmp_path, name):
    kind, rows, target, task, classes = EXPECTED[name]
    source = read_source(make_sample(name, tmp_path / name))
    prof = profile(source)
    assert (source.kind, prof.rows, prof.target, prof.task) == (kind, rows, target, task)
    assert (len(prof.classes) if prof.classes else None) == classes


def test_digit_pixels_are_scaled_from_0_16_to_0_255(tmp_path):
    folder = make_sample("digits", tmp_path / "digits")
    digits = datasets.load_digits()
    index = 5
    label = digits.target[index]
    pixels = np.asarray(Image.open(folder / str(label) / f"{index:04d}.png"))
    assert pixels.shape == (8, 8)
    np.testing.assert_array_equal(pixels, np.round(digits.images[index] * 255 / 16))


def test_digits_csv_labels_match_the_folders_of_their_images(tmp_path):
    frame = read_source(make_sample("digits_csv", tmp_path / "digits")).frame
    folders = frame["image"].str.split("/").str[1].astype(int)
    assert (folders == frame["label"]).all()


def test_iris_target_holds_species_names(tmp_path):
    frame = read_source(make_sample("iris", tmp_path / "iris")).frame
    assert sorted(frame["target"].unique()) == sorted(datasets.load_iris().target_names)


def test_breast_cancer_target_is_malignant_or_benign(tmp_path):
    frame = read_source(make_sample("breast_cancer", tmp_path / "bc")).frame
    assert set(frame["target"]) == {"malignant", "benign"}


def test_timeseries_has_an_upward_trend(tmp_path):
    frame = read_source(make_sample("timeseries", tmp_path / "ts")).frame
    assert frame.columns.tolist() == ["t", "value"]
    assert frame["value"].iloc[-100:].mean() > frame["value"].iloc[:100].mean()


def test_shapes_masks_mark_the_bright_shapes_in_their_images(tmp_path):
    folder = make_sample("shapes", tmp_path / "shapes")
    image = np.asarray(Image.open(folder / "images" / "0000.png")).mean(axis=2)
    mask = np.asarray(Image.open(folder / "masks" / "0000.png"))
    assert image.shape == mask.shape == (64, 64)
    assert set(np.unique(mask)) <= {0, 1, 2}
    assert image[mask > 0].mean() > image[mask == 0].mean() + 30


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    return make_sample("objects", tmp_path_factory.mktemp("samples") / "objects")


def test_objects_are_32x32_rgb_images_in_one_folder_per_kind_each_as_many(objects):
    folder = objects
    counts = {kind: len(list((folder / kind).glob("*.png"))) for kind in samples.OBJECT_KINDS}
    assert sorted(p.name for p in folder.iterdir()) == sorted(samples.OBJECT_KINDS)
    assert set(counts.values()) == {1500 // len(samples.OBJECT_KINDS)}
    image = np.asarray(Image.open(next((folder / "ring").glob("*.png"))))
    assert (image.shape, image.dtype) == ((32, 32, 3), np.uint8)


def test_objects_vary_in_colour_and_place(objects):
    images = np.stack([np.asarray(Image.open(p), dtype=np.float32)
                       for p in sorted((objects / "circle").glob("*.png"))[:50]])  # fmt: skip
    # Neither a typical colour nor a typical place: the mean image is a blur with no shape left.
    assert images.mean(axis=(1, 2)).std(axis=0).min() > 20
    assert images.mean(axis=0).std() < 0.25 * images.std()


def test_objects_are_the_same_every_time(objects, tmp_path):
    one, two = objects, make_sample("objects", tmp_path / "again")
    files = sorted(p.relative_to(one) for p in one.rglob("*.png"))
    assert files == sorted(p.relative_to(two) for p in two.rglob("*.png"))
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files[::50])


def test_texts_are_sentences_labelled_positive_or_negative(tmp_path):
    prof = profile(read_source(make_sample("texts", tmp_path / "texts")))
    assert prof.column("text").type == "text"
    assert prof.classes == ["negative", "positive"]


def test_texts_hold_negations_and_mixed_verdicts_in_balance(tmp_path):
    frame = read_source(make_sample("texts", tmp_path / "texts")).frame
    text = frame["text"].str.lower()
    negated = text.str.contains(r"\b(?:not|never|hardly)\b")
    mixed = text.str.contains(r"\b(?:but|although)\b")
    assert frame["label"].value_counts().tolist() == [1000, 1000]
    for part in (negated & ~mixed, mixed, ~negated & ~mixed):
        assert part.mean() > 0.2
        assert frame["label"][part].value_counts(normalize=True).min() > 0.4


def test_texts_mixed_verdicts_follow_the_clause_after_but(tmp_path):
    frame = read_source(make_sample("texts", tmp_path / "texts")).frame
    plain = frame[~frame["text"].str.contains(r"\b(?:not|never|hardly|although)\b")]
    mixed = plain[plain["text"].str.contains(" but ")]
    last_words = mixed["text"].str.rstrip(".").str.split().str[-1]
    # Typos aside, the last word of "<aside> but <verdict>" carries the label.
    positive = last_words.isin(samples._POSITIVE)
    negative = last_words.isin(samples._NEGATIVE)
    assert (positive | negative).mean() > 0.8
    assert (mixed["label"][positive] == "positive").all()
    assert (mixed["label"][negative] == "negative").all()


def test_generated_samples_are_the_same_every_time(tmp_path):
    first = make_sample("texts", tmp_path / "one").read_bytes()
    assert make_sample("texts", tmp_path / "two").read_bytes() == first


def test_unknown_sample_name_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="digits, digits_csv, iris") as caught:
        make_sample("mnist", tmp_path / "mnist")
    assert "name='mnist'" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_refused_and_left_alone(tmp_path):
    keep = tmp_path / "iris" / "mine.txt"
    keep.parent.mkdir()
    keep.write_text("my data")
    with pytest.raises(FileExistsError, match="iris: already exists"):
        make_sample("iris", tmp_path / "iris")
    assert [p.name for p in (tmp_path / "iris").iterdir()] == ["mine.txt"]


def test_empty_existing_folder_receives_the_sample(tmp_path):
    (tmp_path / "iris").mkdir()
    assert make_sample("iris", tmp_path / "iris") == tmp_path / "iris" / "iris.csv"


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def half_then_fail(folder):
        (folder / "half.csv").write_text("a\n1\n")
        raise OSError("disk full")

    monkeypatch.setitem(samples._WRITERS, "iris", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        make_sample("iris", tmp_path / "iris")
    assert list(tmp_path.iterdir()) == []
