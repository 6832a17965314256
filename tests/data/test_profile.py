"""Profiling data sets: column types and their overrides, statistics, target and task, and
streaming through a table too large to read whole."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from app.data.profile import COLUMN_TYPES, default_target, profile
from app.data.sources import DataError, read_source


def write_png(path: Path, height: int = 8, width: int = 8, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (height, width) if channels == 1 else (height, width, channels)
    Image.fromarray(np.zeros(shape, dtype=np.uint8)).save(path)
    return path


def table(tmp_path: Path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read_source(path)


TINY = """x,colour,label,note
1.5,red,0,the cat sat
2,blue,1,a dog
,red,1,the the bird sang loudly
4,green,0,
7,red,1,fish
"""


# Statistics on a small table


def test_numeric_stats_match_plain_python(tmp_path):
    x = [1.5, 2.0, 4.0, 7.0]
    stats = profile(table(tmp_path, TINY)).column("x").stats
    assert stats["mean"] == pytest.approx(statistics.mean(x))
    assert stats["std"] == pytest.approx(statistics.stdev(x))
    assert (stats["min"], stats["max"]) == (min(x), max(x))


def test_missing_values_are_counted_per_column(tmp_path):
    prof = profile(table(tmp_path, TINY))
    assert {c.name: c.missing for c in prof.columns} == {
        "x": 1,
        "colour": 0,
        "label": 0,
        "note": 1,
    }
    assert "Column 'x' has 1 missing values." in prof.warnings


def test_categorical_counts_are_given_per_class(tmp_path):
    colours = ["red", "blue", "red", "green", "red", "blue", "red", "green"]
    source = table(tmp_path, "colour,y\n" + "".join(f"{c},{i}\n" for i, c in enumerate(colours)))
    column = profile(source, target="y").column("colour")
    assert column.type == "categorical"
    assert column.stats["counts"] == {c: colours.count(c) for c in set(colours)}
    assert column.unique == len(set(colours))


def test_text_stats_give_mean_length_and_vocabulary(tmp_path):
    notes = ["the cat sat", "a dog", "the the bird sang loudly", "fish"]
    stats = profile(table(tmp_path, TINY), overrides={"note": "text"}).column("note").stats
    assert stats["mean_length"] == pytest.approx(statistics.mean(len(n) for n in notes))
    assert stats["vocab_size"] == len({w for n in notes for w in n.split()})


def test_class_balance_counts_rows_per_class_of_the_target(tmp_path):
    prof = profile(table(tmp_path, TINY), target="label")
    assert prof.classes == ["0", "1"]
    assert prof.class_balance == {"0": 2, "1": 3}


def test_preview_holds_the_first_rows_as_json(tmp_path):
    prof = profile(table(tmp_path, TINY))
    assert prof.preview[0] == {"x": 1.5, "colour": "red", "label": 0, "note": "the cat sat"}
    assert prof.preview[2]["x"] is None
    assert len(prof.preview) == 5


def test_profile_as_dict_is_strict_json(tmp_path):
    prof = profile(table(tmp_path, TINY))
    assert json.loads(json.dumps(prof.to_dict(), allow_nan=False))["rows"] == 5


def test_unknown_column_lookup_names_the_columns(tmp_path):
    with pytest.raises(KeyError, match="columns: x, colour, label, note"):
        profile(table(tmp_path, TINY)).column("nope")


# Type inference


def test_numeric_column_with_two_values_is_binary(tmp_path):
    source = table(tmp_path, "flag,v\n0,1.5\n1,2.5\n1,3.5\n0,4.5\n")
    assert profile(source).column("flag").type == "binary"


def test_small_integer_label_column_is_categorical(tmp_path):
    source = table(tmp_path, "v,label\n" + "".join(f"{i * 0.5},{i % 4}\n" for i in range(12)))
    assert profile(source).column("label").type == "categorical"


def test_integer_column_with_an_ordinary_name_is_numeric(tmp_path):
    source = table(tmp_path, "rooms,y\n" + "".join(f"{i % 4},{i}\n" for i in range(12)))
    assert profile(source, target="y").column("rooms").type == "numeric"


def test_image_and_mask_path_columns_are_recognised(tmp_path):
    mask = np.eye(8, dtype=np.uint8)
    for name in ("a", "b"):
        write_png(tmp_path / "img" / f"{name}.png")
        Image.fromarray(mask).save(tmp_path / "img" / f"{name}-mask.png")
    source = table(tmp_path, "photo,mask\nimg/a.png,img/a-mask.png\nimg/b.png,img/b-mask.png\n")
    prof = profile(source)
    assert [c.type for c in prof.columns] == ["image_path", "mask_path"]


def test_long_sentences_are_text(tmp_path):
    rows = "".join(f"sentence number {i} is here,{i % 2}\n" for i in range(10))
    assert profile(table(tmp_path, "review,y\n" + rows)).column("review").type == "text"


# Overrides


def test_override_changes_the_type_and_keeps_the_inferred_one(tmp_path):
    column = profile(table(tmp_path, TINY), overrides={"label": "numeric"}).column("label")
    assert (column.type, column.inferred) == ("numeric", "binary")
    assert column.stats["mean"] == pytest.approx(statistics.mean([0, 1, 1, 0, 1]))


def test_override_to_numeric_on_words_names_the_column_and_row(tmp_path):
    source = table(tmp_path, TINY)
    with pytest.raises(DataError, match=r"data.csv, row 1, column 'colour': cannot be numeric"):
        profile(source, overrides={"colour": "numeric"})


def test_override_to_binary_on_three_values_is_refused(tmp_path):
    with pytest.raises(DataError, match="column 'colour': cannot be binary, it holds 3"):
        profile(table(tmp_path, TINY), overrides={"colour": "binary"})


def test_override_to_an_unknown_type_lists_the_types(tmp_path):
    with pytest.raises(DataError, match=", ".join(COLUMN_TYPES)):
        profile(table(tmp_path, TINY), overrides={"x": "float"})


def test_override_of_an_unknown_column_lists_the_columns(tmp_path):
    with pytest.raises(DataError, match="no column 'age' .*columns: x, colour, label, note"):
        profile(table(tmp_path, TINY), overrides={"age": "numeric"})


def test_override_to_image_path_needs_the_images(tmp_path):
    with pytest.raises(DataError, match=r"row 1, column 'colour': image 'red' not found"):
        profile(table(tmp_path, TINY), overrides={"colour": "image_path"})


# Target and task


def test_missing_target_names_it_and_the_available_columns(tmp_path):
    with pytest.raises(DataError) as caught:
        profile(table(tmp_path, TINY), target="price")
    assert str(caught.value) == (
        f"{tmp_path / 'data.csv'}: no target column 'price'; columns: x, colour, label, note"
    )


def test_target_with_one_class_is_refused(tmp_path):
    source = table(tmp_path, "x,label\n1,a\n2,a\n3,a\n")
    with pytest.raises(DataError, match="column 'label': the target has one class only"):
        profile(source)


def test_default_target_is_a_column_named_like_one(tmp_path):
    assert default_target(table(tmp_path, "class,x,z\na,1,2\nb,3,4\n")) == "class"


def test_default_target_is_otherwise_the_last_column(tmp_path):
    assert default_target(table(tmp_path, "x,z,kind\n1,2,a\n3,4,b\n")) == "kind"


def test_categorical_target_makes_a_multiclass_task(tmp_path):
    prof = profile(table(tmp_path, TINY), target="colour")
    assert (prof.task, prof.classes) == ("multiclass", ["blue", "green", "red"])


def test_numeric_target_makes_a_regression_task(tmp_path):
    prof = profile(table(tmp_path, TINY), target="x")
    assert (prof.task, prof.classes) == ("regression", None)


def test_time_column_and_one_value_column_make_a_forecasting_task(tmp_path):
    rows = "".join(f"2024-01-{day:02d},{day * 1.5}\n" for day in range(1, 21))
    prof = profile(table(tmp_path, "when,sales\n" + rows))
    assert (prof.target, prof.task) == ("sales", "forecasting")
    assert prof.column("when").stats["time_like"] is True


def test_image_folder_with_two_classes_is_binary(tmp_path):
    for label in ("cats", "dogs"):
        write_png(tmp_path / label / "1.png")
    prof = profile(read_source(tmp_path))
    assert (prof.target, prof.task, prof.classes) == ("label", "binary", ["cats", "dogs"])


def test_image_folder_with_one_class_is_refused(tmp_path):
    write_png(tmp_path / "cats" / "1.png")
    write_png(tmp_path / "cats" / "2.png")
    with pytest.raises(DataError, match="the target has one class only \\('cats'\\)"):
        profile(read_source(tmp_path))


def test_images_of_different_sizes_are_reported_not_refused(tmp_path):
    write_png(tmp_path / "a" / "1.png", 8, 8)
    write_png(tmp_path / "a" / "2.png", 8, 8)
    write_png(tmp_path / "b" / "1.png", 16, 12, channels=3)
    prof = profile(read_source(tmp_path))
    assert prof.column("image").stats["sizes"] == [
        {"size": [8, 8, 1], "count": 2},
        {"size": [16, 12, 3], "count": 1},
    ]
    assert any("images come in 2 sizes" in warning for warning in prof.warnings)


def test_segmentation_classes_are_the_mask_values(tmp_path):
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[:2] = 3
    for name in ("a.png", "b.png"):
        write_png(tmp_path / "images" / name)
        Image.fromarray(mask).save(write_png(tmp_path / "masks" / name))
    prof = profile(read_source(tmp_path))
    assert (prof.task, prof.classes) == ("segmentation", ["0", "3"])
    assert prof.class_balance == {"0": 2 * 48, "3": 2 * 16}


def test_npz_profile_describes_arrays_and_finds_the_target(tmp_path):
    x = np.random.default_rng(0).normal(size=(12, 4, 4))
    y = np.arange(12) % 3
    np.savez(tmp_path / "data.npz", x=x, y=y)
    prof = profile(read_source(tmp_path / "data.npz"))
    assert (prof.rows, prof.target, prof.task) == (12, "y", "multiclass")
    assert prof.column("x").stats["shape"] == [4, 4]
    assert prof.column("x").stats["mean"] == pytest.approx(x.mean())


def test_masks_of_another_size_than_their_images_are_reported(tmp_path):
    mask = np.eye(8, dtype=np.uint8)
    write_png(tmp_path / "images" / "a.png", 8, 8)
    write_png(tmp_path / "images" / "b.png", 16, 16)
    for name in ("a.png", "b.png"):
        Image.fromarray(mask).save(write_png(tmp_path / "masks" / name))
    prof = profile(read_source(tmp_path))
    assert "1 masks differ in size from their images." in prof.warnings


def test_npz_target_overridden_to_numeric_makes_a_regression_task(tmp_path):
    np.savez(tmp_path / "data.npz", x=np.zeros((6, 2)), y=np.arange(6) % 3)
    prof = profile(read_source(tmp_path / "data.npz"), overrides={"y": "numeric"})
    assert (prof.column("y").inferred, prof.task) == ("categorical", "regression")


# Streaming a table too large to read whole


@pytest.fixture
def large_csv(tmp_path) -> tuple[Path, pd.DataFrame]:
    rng = np.random.default_rng(0)
    rows = 300_000
    frame = pd.DataFrame({"x": rng.normal(size=rows).round(3), "label": rng.integers(0, 2, rows)})
    frame.loc[[250_000, 299_998], "x"] = np.nan  # missing values well past the sample
    frame.loc[299_999, "x"] = 1000.0  # and the maximum at the very end
    path = tmp_path / "large.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_large_table_is_profiled_by_streaming_it_in_chunks(large_csv, monkeypatch):
    path, frame = large_csv
    calls = []
    read_csv = pd.read_csv

    def recording_read_csv(*args, **kwargs):
        calls.append(kwargs)
        return read_csv(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", recording_read_csv)
    source = read_source(path, max_rows=100)
    prof = profile(source)
    assert calls and all(call.get("chunksize") for call in calls)
    assert len(source.frame) == 100
    assert (prof.rows, prof.sampled) == (len(frame), True)
    column = prof.column("x")
    assert column.missing == frame["x"].isna().sum()
    assert column.stats["max"] == frame["x"].max()
    assert prof.class_balance == {str(k): v for k, v in frame["label"].value_counts().items()}
    assert prof.warnings[0].startswith("Read the first 100 of 300,000 rows")


def test_bad_value_beyond_the_sample_is_reported_by_the_streamed_pass(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("x,y\n" + "1,0\n2,1\n" * 100 + "oops,1\n")
    source = read_source(path, max_rows=10)
    with pytest.raises(DataError, match="row 201, column 'x': 'oops' is not a number"):
        profile(source)
