"""What-if questions about one table row (app.serve.whatif): the rows they ask the server to
predict, and how the answers are read."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from app.serve import whatif


def test_each_occlusion_leaves_one_column_missing():
    row = {"age": 40.0, "job": "chef", "income": 3.0}
    rows = whatif.occlusions(row, ["age", "job", "income"], texts=["job"])
    assert rows == [
        {"age": None, "job": "chef", "income": 3.0},
        {"age": 40.0, "job": "", "income": 3.0},
        {"age": 40.0, "job": "chef", "income": None},
    ]


def test_parts_are_the_score_minus_the_score_without_the_column_largest_first():
    found = whatif.parts(0.9, [0.85, 0.2, 0.95], ["a", "b", "c"])
    assert [name for name, _ in found] == ["b", "a", "c"]
    assert dict(found) == {"a": 0.9 - 0.85, "b": 0.9 - 0.2, "c": 0.9 - 0.95}


def test_a_sweep_spans_the_range_and_keeps_the_other_columns():
    rows = whatif.sweep({"a": 1.0, "b": "x"}, "a", 0.0, 10.0, points=5)
    assert [r["a"] for r in rows] == [0.0, 2.5, 5.0, 7.5, 10.0]
    assert all(r["b"] == "x" for r in rows)


def test_the_score_is_the_rows_class_probability_or_the_value():
    described = {"probabilities": {"cat": 0.3, "dog": 0.7}, "top": [["dog", 0.7]]}
    assert whatif.score(described, "cat") == 0.3
    assert whatif.score({"values": [2.5]}, None) == 2.5
    assert math.isnan(whatif.score({"values": [None]}, None))


def test_the_nearest_other_prediction_is_measured_in_train_deviations():
    row = {"height": 170.0, "weight": 60.0, "city": "Oslo"}
    rows = [
        {"height": 170.0, "weight": 61.0, "city": "Oslo"},  # nearest, but the same prediction
        {"height": 180.0, "weight": 60.0, "city": "Oslo"},  # 10 cm: one deviation of height
        {"height": 170.0, "weight": 75.0, "city": "Oslo"},  # 15 kg: three deviations of weight
        {"height": 170.0, "weight": 60.0, "city": "Rome"},  # another city: 1
    ]
    labels = ["a", "b", "b", "b"]
    scales = {"height": 10.0, "weight": 5.0}
    index, differing = whatif.nearest_other(row, rows, labels, "a", scales)
    assert index == 1 and differing == ["height"]  # 1 = the city's 1: the first found wins
    assert whatif.nearest_other(row, rows, ["a"] * 4, "a", scales) is None
    shifted = {**rows[1], "height": 190.0}  # two deviations: now the city is nearer
    others = [rows[0], shifted, rows[3]]
    index, differing = whatif.nearest_other(row, others, labels[:3], "a", scales)
    assert index == 2 and differing == ["city"]


def test_a_missing_number_is_no_difference():
    assert whatif.nearest_other({"x": None}, [{"x": 5.0}], ["b"], "a", {"x": 1.0}) == (0, [])


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_each_occluded_image_covers_one_cell_with_the_mean_colour():
    pixels = np.zeros((4, 6), np.uint8)
    pixels[:, 3:] = 200  # mean 100
    files, grid = whatif.occluded_images(png(pixels), grid=2)
    assert grid == (2, 2) and len(files) == 4
    covered = [np.asarray(Image.open(io.BytesIO(f))) for f in files]
    assert (covered[0][:2, :3] == 100).all() and (covered[0][2:] == pixels[2:]).all()
    assert (covered[3][2:, 3:] == 100).all() and (covered[3][:2] == pixels[:2]).all()
    assert whatif.occluded_images(png(pixels[:1, :1]), grid=8)[1] == (1, 1)  # no finer


def test_a_probed_image_is_brighter_rotated_or_noisier_and_refuses_a_non_image():
    pixels = np.full((10, 10, 3), 100, np.uint8)
    pixels[0] = 0  # a dark top row
    assert np.asarray(Image.open(io.BytesIO(whatif.probed_image(png(pixels))))).tolist() == (
        pixels.tolist()
    )
    brighter = np.asarray(Image.open(io.BytesIO(whatif.probed_image(png(pixels), brightness=2))))
    assert brighter[5, 5].tolist() == [200, 200, 200]
    turned = np.asarray(Image.open(io.BytesIO(whatif.probed_image(png(pixels), rotation=90))))
    assert turned[5, 0].tolist() == [0, 0, 0]  # the dark row is now on the left
    noisy = np.asarray(Image.open(io.BytesIO(whatif.probed_image(png(pixels), noise=20))))
    assert noisy.std() > pixels.std()
    with pytest.raises(ValueError, match="cannot be read as an image"):
        whatif.probed_image(b"<svg onload=alert(1)>")


def test_without_each_word_drops_one_word_at_a_time():
    words, texts = whatif.without_each_word("not  a\tgood film")
    assert words == ["not", "a", "good", "film"]
    assert texts == ["a good film", "not good film", "not a film", "not a good"]


def test_a_drawing_is_a_grayscale_file_shrunk_by_averaging():
    rgba = np.zeros((80, 80, 4), np.uint8)
    assert whatif.drawn_image(rgba, (8, 8)) is None  # nothing drawn
    rgba[:, 30:34] = [255, 255, 255, 255]  # a thin white vertical stroke, 4 of 80 pixels wide
    image = Image.open(io.BytesIO(whatif.drawn_image(rgba, (8, 8))))
    pixels = np.asarray(image)
    assert image.mode == "L" and pixels.shape == (8, 8)
    assert (pixels[:, 3] > 90).all() and (pixels[:, 0] == 0).all()  # 4/10 of a cell: 102
