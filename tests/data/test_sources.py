"""Reading data sets: each kind of source, and each kind of bad input as one DataError line
naming the file (and the row and column where there is one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from app.data.sources import DataError, read_source
from app.runtime.tables import iter_table_chunks


def write_png(path: Path, height: int = 8, width: int = 8, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width), value, dtype=np.uint8)).save(path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, **options) -> str:
    with pytest.raises(DataError) as caught:
        read_source(path, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


# Each kind of source


def test_csv_with_image_paths_is_a_table_listing_its_images(tmp_path):
    write_png(tmp_path / "imgs" / "a.png")
    write_png(tmp_path / "imgs" / "b.png")
    table = write_text(tmp_path / "data.csv", "image,label\nimgs/a.png,cat\nimgs/b.png,dog\n")
    source = read_source(table)
    assert source.kind == "table"
    assert source.frame["label"].tolist() == ["cat", "dog"]
    assert source.files == [
        table.resolve(),
        (tmp_path / "imgs" / "a.png").resolve(),
        (tmp_path / "imgs" / "b.png").resolve(),
    ]


def test_tsv_is_split_on_tabs(tmp_path):
    table = write_text(tmp_path / "data.tsv", "a\tb\n1\tx,y\n2\tz\n")
    frame = read_source(table).frame
    assert frame.columns.tolist() == ["a", "b"]
    assert frame["b"].tolist() == ["x,y", "z"]


def test_parquet_is_read_as_a_table(tmp_path):
    expected = pd.DataFrame({"x": [1.0, 2.5, 3.0], "label": ["a", "b", "a"]})
    expected.to_parquet(tmp_path / "data.parquet")
    source = read_source(tmp_path / "data.parquet")
    assert source.kind == "table"
    pd.testing.assert_frame_equal(source.frame, expected, check_dtype=False)


def test_npz_arrays_are_read_by_name(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    y = np.array([0, 1, 0, 1, 1, 0])
    np.savez(tmp_path / "data.npz", x=x, y=y)
    source = read_source(tmp_path / "data.npz")
    assert source.kind == "npz"
    assert len(source.frame) == 6
    np.testing.assert_array_equal(source.arrays["x"], x)
    np.testing.assert_array_equal(source.arrays["y"], y)


def test_class_sub_folders_give_an_image_folder_labelled_by_folder(tmp_path):
    write_png(tmp_path / "cats" / "1.png")
    write_png(tmp_path / "cats" / "2.png")
    write_png(tmp_path / "dogs" / "1.png")
    source = read_source(tmp_path)
    assert source.kind == "image_folder"
    assert source.frame.to_dict("list") == {
        "image": ["cats/1.png", "cats/2.png", "dogs/1.png"],
        "label": ["cats", "cats", "dogs"],
    }
    assert len(source.files) == 3


def test_hidden_files_in_class_folders_are_not_samples(tmp_path):
    write_png(tmp_path / "cats" / "1.png")
    write_text(tmp_path / "cats" / ".DS_Store", "finder metadata")
    assert read_source(tmp_path).frame["image"].tolist() == ["cats/1.png"]


def test_images_and_masks_folders_give_segmentation_pairs(tmp_path):
    for name in ("a.png", "b.png"):
        write_png(tmp_path / "images" / name)
        write_png(tmp_path / "masks" / name)
    source = read_source(tmp_path)
    assert source.kind == "segmentation"
    assert source.frame.to_dict("list") == {
        "image": ["images/a.png", "images/b.png"],
        "mask": ["masks/a.png", "masks/b.png"],
    }
    assert len(source.files) == 4


def test_a_jpeg_image_pairs_with_a_png_mask_of_the_same_name(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.jpg")
    (tmp_path / "images").mkdir()
    (tmp_path / "photo.jpg").rename(tmp_path / "images" / "photo.jpg")
    write_png(tmp_path / "masks" / "photo.png")
    assert read_source(tmp_path).frame["mask"].tolist() == ["masks/photo.png"]


def test_missing_numbers_are_kept_as_nan(tmp_path):
    table = write_text(tmp_path / "data.csv", "x,y\n1.5,a\n,b\n3,c\n")
    assert read_source(table).frame["x"].isna().tolist() == [False, True, False]


# Reading only part of a table


def test_max_rows_reads_the_first_rows_and_marks_the_source_sampled(tmp_path):
    table = write_text(tmp_path / "data.csv", "x\n" + "".join(f"{i}\n" for i in range(10)))
    source = read_source(table, max_rows=4)
    assert source.frame["x"].tolist() == [0, 1, 2, 3]
    assert source.sampled


def test_max_rows_covering_the_whole_table_is_not_a_sample(tmp_path):
    table = write_text(tmp_path / "data.csv", "x\n1\n2\n3\n")
    source = read_source(table, max_rows=3)
    assert len(source.frame) == 3
    assert not source.sampled


def test_table_chunks_hold_at_most_chunksize_rows_and_cover_the_table(tmp_path):
    table = write_text(tmp_path / "data.csv", "x\n" + "".join(f"{i}\n" for i in range(10)))
    chunks = list(iter_table_chunks(table, chunksize=4))
    assert [len(chunk) for chunk in chunks] == [4, 4, 2]
    assert pd.concat(chunks)["x"].tolist() == list(range(10))


def test_digits_in_a_later_chunk_of_a_word_column_stay_as_written(tmp_path):
    table = write_text(tmp_path / "data.csv", "code\nab\ncd\n007\n010\n")
    chunks = list(iter_table_chunks(table, chunksize=2))
    assert chunks[1]["code"].tolist() == ["007", "010"]


def test_invalid_max_rows_is_refused(tmp_path):
    table = write_text(tmp_path / "data.csv", "x\n1\n")
    with pytest.raises(ValueError, match="max_rows=0"):
        read_source(table, max_rows=0)


# Bad input


def test_missing_path_is_refused(tmp_path):
    assert "nowhere.csv: no such file or folder" in error_of(tmp_path / "nowhere.csv")


def test_unsupported_file_type_is_refused(tmp_path):
    assert "notes.txt: unsupported file type '.txt'" in error_of(
        write_text(tmp_path / "notes.txt", "hello")
    )


def test_empty_file_is_refused(tmp_path):
    table = write_text(tmp_path / "empty.csv", "")
    assert f"{table}: the file is empty" in error_of(table)


def test_file_of_blank_lines_is_refused_as_empty(tmp_path):
    table = write_text(tmp_path / "blank.csv", "\n\n\n")
    assert f"{table}: the file is empty" in error_of(table)


def test_header_only_file_is_refused(tmp_path):
    table = write_text(tmp_path / "header.csv", "a,b,c\n")
    assert f"{table}: the file has a header but no rows" in error_of(table)


def test_parquet_without_rows_is_refused(tmp_path):
    pd.DataFrame({"a": pd.Series([], dtype=float)}).to_parquet(tmp_path / "empty.parquet")
    assert "empty.parquet: the table has columns but no rows" in error_of(
        tmp_path / "empty.parquet"
    )


def test_missing_image_is_reported_with_row_and_column(tmp_path):
    write_png(tmp_path / "a.png")
    table = write_text(tmp_path / "data.csv", "picture,label\na.png,x\nb.png,y\n")
    message = error_of(table)
    assert message.startswith(f"{table}, row 2, column 'picture': image 'b.png' not found")


def test_corrupt_image_is_reported_with_row_and_column(tmp_path):
    write_png(tmp_path / "a.png")
    write_text(tmp_path / "b.png", "this is not a PNG")
    table = write_text(tmp_path / "data.csv", "image,label\na.png,x\nb.png,y\n")
    message = error_of(table)
    assert message.startswith(f"{table}, row 2, column 'image':")
    assert "b.png is not a readable image" in message


def test_truncated_image_is_reported(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    image = tmp_path / "cats" / "cut.png"
    image.parent.mkdir()
    Image.fromarray(noise).save(image)
    image.write_bytes(image.read_bytes()[:-200])
    assert "cut.png is not a readable image" in error_of(tmp_path)


def test_non_image_file_in_a_class_folder_is_refused(tmp_path):
    write_png(tmp_path / "cats" / "1.png")
    notes = write_text(tmp_path / "cats" / "notes.txt", "cute")
    assert f"{notes}: not an image" in error_of(tmp_path)


def test_corrupt_image_in_a_class_folder_is_refused(tmp_path):
    write_png(tmp_path / "cats" / "1.png")
    broken = write_text(tmp_path / "dogs" / "2.png", "not an image")
    assert f"{broken} is not a readable image" in error_of(tmp_path)


def test_folder_without_class_folders_is_refused(tmp_path):
    write_png(tmp_path / "1.png")
    assert "found no sub-folders" in error_of(tmp_path)


def test_mixed_numbers_and_words_report_the_first_word(tmp_path):
    table = write_text(tmp_path / "data.csv", "age,label\n30,a\n41,b\nold,a\n25,b\nyoung,a\n")
    message = error_of(table)
    assert message.startswith(f"{table}, row 3, column 'age': 'old' is not a number")


def test_mixed_types_in_a_later_chunk_report_the_row_in_the_whole_table(tmp_path):
    rows = "".join(f"{i}\n" for i in range(10)) + "eleven\n"
    table = write_text(tmp_path / "data.csv", "n\n" + rows)
    with pytest.raises(DataError, match=r"row 11, column 'n': 'eleven' is not a number"):
        list(iter_table_chunks(table, chunksize=4))


def test_infinite_number_is_refused_with_row_and_column(tmp_path):
    table = write_text(tmp_path / "data.csv", "x,y\n1,2\n3,inf\n")
    assert error_of(table).startswith(f"{table}, row 2, column 'y': infinite value")


def test_a_latin1_byte_far_into_a_file_is_read_in_the_encoding_detected(tmp_path):
    content = ("text,label\n" + "plain words,a\n" * 500).encode() + b"caf\xe9,b\n"
    table = tmp_path / "latin1.csv"
    table.write_bytes(content)
    source = read_source(table)
    assert source.encoding == "cp1252" and source.frame["text"].iloc[-1] == "café"


def test_bytes_no_encoding_decodes_are_refused_with_their_offset_and_line(tmp_path):
    content = b"text,label\n" + bytes(range(256)) * 16
    table = tmp_path / "binary.csv"
    table.write_bytes(content)
    offset = content.index(b"\x80")
    line = content[:offset].count(b"\n") + 1
    message = error_of(table)
    assert message.startswith(f"{table}: not text in any encoding LayerFlow can detect")
    assert f"byte 0x80 at byte offset {offset}, line {line}" in message


def test_parent_relative_image_path_is_refused(tmp_path):
    write_png(tmp_path / "outside.png")
    table = write_text(tmp_path / "set" / "data.csv", "image,label\n../outside.png,a\n")
    message = error_of(table)
    assert message.startswith(f"{table}, row 1, column 'image':")
    assert "points outside the dataset folder" in message


def test_absolute_image_path_is_refused(tmp_path):
    image = write_png(tmp_path / "a.png")
    table = write_text(tmp_path / "data.csv", f"image,label\n{image.resolve()},a\n")
    assert "is an absolute path" in error_of(table)


def test_image_without_a_mask_is_refused(tmp_path):
    write_png(tmp_path / "images" / "a.png")
    lonely = write_png(tmp_path / "images" / "b.png")
    write_png(tmp_path / "masks" / "a.png")
    assert f"{lonely}: no mask with the same name" in error_of(tmp_path)


def test_mask_without_an_image_is_refused(tmp_path):
    write_png(tmp_path / "images" / "a.png")
    write_png(tmp_path / "masks" / "a.png")
    lonely = write_png(tmp_path / "masks" / "b.png")
    assert f"{lonely}: no image with the same name" in error_of(tmp_path)


def test_npz_arrays_of_different_lengths_are_refused(tmp_path):
    np.savez(tmp_path / "data.npz", x=np.zeros((5, 2)), y=np.zeros(4))
    message = error_of(tmp_path / "data.npz")
    assert "data.npz: arrays differ in their number of samples: 'x' has 5, 'y' has 4" in message


def test_npz_with_an_infinite_value_names_array_and_index(tmp_path):
    x = np.zeros((5, 2))
    x[3, 1] = -np.inf
    np.savez(tmp_path / "data.npz", x=x)
    assert "data.npz, array 'x', index 3: infinite value" in error_of(tmp_path / "data.npz")


def test_file_that_is_not_an_npz_archive_is_refused(tmp_path):
    fake = write_text(tmp_path / "data.npz", "not a zip")
    assert f"{fake}: not a NumPy .npz archive" in error_of(fake)
