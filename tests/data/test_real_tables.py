"""Tables as they come: a target empty in some rows, dates in two formats, an id and a name
column, a header that repeats a name, a spreadsheet's cp1252 encoding. Each is read, profiled,
added and preprocessed correctly, or refused in one line with nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.data.preprocess_config import default_config
from app.data.profile import profile
from app.data.sources import DataError, read_source
from app.runtime.config import FeatureSpec, PreprocessConfig, check_config
from app.runtime.dates import date_features, day_numbers
from app.runtime.finite import first_non_finite
from app.runtime.fit import fit
from app.runtime.transform import input_spec, transform
from app.workspace import Workspace

MAKES = ("chevrolet", "ford", "plymouth", "amc", "toyota", "datsun")
NO_TARGET = (3, 17, 40)


def cars(path: Path, rows: int = 60) -> Path:
    """A table like vega-datasets' cars: an id and a name per car, the year as a date written
    two ways, and miles per gallon (the target) empty in a few rows."""
    rng = np.random.default_rng(0)
    horsepower = rng.integers(60, 220, rows).astype(float)
    weight = rng.integers(1800, 5000, rows).astype(float)
    mpg = (50 - horsepower / 10 - weight / 500 + rng.normal(0, 1, rows)).round(1)
    mpg[list(NO_TARGET)] = np.nan
    years = 1970 + rng.integers(0, 13, rows)
    frame = pd.DataFrame(
        {
            "Car ID": [f"C{i:04d}" for i in range(rows)],
            "Name": [f"{MAKES[i % len(MAKES)]} {i}" for i in range(rows)],
            "Horsepower": horsepower,
            "Weight": weight,
            "Year": [f"{y}-01-01" if i % 2 else f"{y}/06/15" for i, y in enumerate(years)],
            "Origin": [("USA", "Europe", "Japan")[i % 3] for i in range(rows)],
            "Miles_per_Gallon": mpg,
        }
    )
    frame.to_csv(path, index=False)
    return path


def spreadsheet(path: Path) -> Path:
    """A cp1252 CSV, as a spreadsheet saves it: accents, the euro sign, a repeated header name
    and a target missing in one row."""
    rows = ["city,price,price,label"]
    for i in range(30):
        city = ("Zürich", "Genève", "München")[i % 3]
        label = "" if i == 5 else ("café", "thé")[i % 2]
        rows.append(f"{city},{i}€,{i * 2},{label}")
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp1252"))
    return path


# Rows without a target


def test_rows_without_a_target_are_counted_and_said(tmp_path):
    prof = profile(read_source(cars(tmp_path / "cars.csv")), target="Miles_per_Gallon")
    assert prof.left_out == len(NO_TARGET)
    assert any(n.startswith("3 rows have no target and are left out") for n in prof.notes)
    assert prof.preview[3]["Miles_per_Gallon"] is None, "the preview keeps them"


def test_rows_without_a_target_are_in_no_split_and_never_transformed(workspace, tmp_path):
    dataset = Workspace.current().add_dataset(
        cars(tmp_path / "cars.csv"), "cars", target="Miles_per_Gallon"
    )
    used = sorted(sum(dataset.splits.values(), []))
    assert used == [i for i in range(60) if i not in NO_TARGET]
    assert (dataset.folder / "cars.csv").read_bytes() == (tmp_path / "cars.csv").read_bytes()
    config, state = dataset.preprocessing()
    assert state.rows == len(dataset.splits["train"])
    for split in dataset.splits.values():
        _, targets = transform(config, state, dataset.source(), split)
        assert np.isfinite(targets).all()
        assert first_non_finite(config, state, dataset.source(), split) is None


# Data that would make a loss NaN


def test_a_nan_target_is_found_and_named_with_its_row(tmp_path):
    source = read_source(cars(tmp_path / "cars.csv"))
    config = PreprocessConfig(
        features=[FeatureSpec(column="Weight", kind="numeric")],
        target="Miles_per_Gallon",
        target_kind="values",
    )
    state = fit(config, source, [0, 1, 2])
    found = first_non_finite(config, state, source, list(range(10)))
    assert found == "column 'Miles_per_Gallon', row 4: NaN"


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_a_number_too_large_for_float32_is_found_and_named(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("x,y\n1,0\n2,1\n1e39,0\n")
    source = read_source(path)
    config = PreprocessConfig(
        features=[FeatureSpec(column="x", kind="passthrough")], target="y", target_kind="values"
    )
    state = fit(config, source, [0, 1])
    assert first_non_finite(config, state, source, [0, 1, 2]) == "column 'x', row 3: an infinity"


# Dates


def test_dates_in_two_formats_are_typed_date_with_their_range(tmp_path):
    column = profile(read_source(cars(tmp_path / "cars.csv"))).column("Year")
    assert column.type == "date"
    assert column.stats["first"].startswith("197") and column.stats["last"] <= "1982-06-15"


def test_a_date_gives_year_month_weekday_and_yearday(tmp_path):
    path = tmp_path / "days.csv"
    path.write_text("day,y\n2012/01/01,1\n2007-11-11,2\n2012-07-01,3\n,4\n")
    source = read_source(path)
    config = PreprocessConfig(
        features=[FeatureSpec(column="day", kind="date")], target="y", target_kind="values"
    )
    state = fit(config, source, [0, 1, 2, 3])
    assert (state.columns["day"].min, state.columns["day"].max) == (2007, 2012)
    inputs, _ = transform(config, state, source, [0, 1, 2, 3])
    assert input_spec(config, state)["features"] == ([7], "float32")
    first = inputs["features"][0]  # Sunday 1 January 2012
    sunday = 2 * np.pi * 6 / 7
    expected = [1.0, 0.0, 1.0, np.sin(sunday), np.cos(sunday), 0.0, 1.0]
    np.testing.assert_allclose(first, expected, atol=1e-6)
    assert np.isfinite(inputs["features"][3]).all(), "a missing date becomes the mean day"


def test_date_parts_can_be_turned_off_but_not_all(tmp_path):
    path = tmp_path / "days.csv"
    path.write_text("day,y\n2012-01-01,1\n2013-01-01,2\n")
    source = read_source(path)
    only_year = FeatureSpec(column="day", kind="date", date_parts=["year"])
    config = PreprocessConfig(features=[only_year], target="y", target_kind="values")
    inputs, _ = transform(config, fit(config, source, [0, 1]), source, [0, 1])
    np.testing.assert_allclose(inputs["features"], [[0.0], [1.0]])
    none = PreprocessConfig(features=[FeatureSpec(column="day", kind="date", date_parts=[])])
    with pytest.raises(ValueError, match=r"Column 'day' \(date\).*`date_parts`"):
        check_config(none)


def test_the_calendar_arithmetic_agrees_with_pandas():
    days = np.arange(-30_000, 60_000, 37, dtype=np.float64)  # 1887 to 2134
    stamps = pd.to_datetime(days, unit="D")
    found = date_features(days, ["year", "month", "weekday", "yearday"], 1900.0, 2000.0)
    np.testing.assert_allclose(found[:, 0], (stamps.year - 1900) / 100)
    for column, value, period in (
        (1, stamps.month - 1, 12),
        (3, stamps.day_of_week, 7),
        (5, stamps.day_of_year - 1, np.where(stamps.is_leap_year, 366, 365)),
    ):
        angle = 2 * np.pi * np.asarray(value) / period
        np.testing.assert_allclose(found[:, column], np.sin(angle), atol=1e-9)
        np.testing.assert_allclose(found[:, column + 1], np.cos(angle), atol=1e-9)


def test_a_model_taking_raw_rows_derives_the_same_date_features(tmp_path):
    from app.runtime.layers import keras_preprocessing_model

    path = tmp_path / "days.csv"
    path.write_text("day,y\n2012/01/01,1\n2007-11-11,2\n1999-02-28,3\n,4\n")
    source = read_source(path)
    config = PreprocessConfig(
        features=[FeatureSpec(column="day", kind="date")], target="y", target_kind="values"
    )
    state = fit(config, source, [0, 1, 2, 3])
    inputs, _ = transform(config, state, source, [0, 1, 2, 3])
    days = day_numbers(source.frame["day"]).astype(np.float32).reshape(-1, 1)
    outputs = keras_preprocessing_model(config, state)({"day": days})
    np.testing.assert_allclose(np.asarray(outputs["features"]), inputs["features"], atol=1e-5)


# Identifiers


def test_an_id_and_a_name_are_identifiers_left_out_with_a_note(tmp_path):
    prof = profile(read_source(cars(tmp_path / "cars.csv")), target="Miles_per_Gallon")
    assert prof.column("Car ID").type == "identifier"
    assert prof.column("Name").type == "identifier"
    assert prof.column("Origin").type == "categorical"
    features = [spec.column for spec in default_config(prof).features]
    assert features == ["Horsepower", "Weight", "Year", "Origin"]
    assert any(n.startswith("Column 'Name' is an identifier") for n in prof.notes)


def test_an_override_puts_an_identifier_back(tmp_path):
    source = read_source(cars(tmp_path / "cars.csv"))
    prof = profile(source, target="Miles_per_Gallon", overrides={"Name": "categorical"})
    assert "Name" in [spec.column for spec in default_config(prof).features]


def test_a_sample_number_counting_rows_is_an_identifier(tmp_path):
    path = tmp_path / "samples.csv"
    path.write_text(
        "Sample Number,x,y\n" + "".join(f"{i + 1},{i % 7},{i % 2}\n" for i in range(40))
    )
    assert profile(read_source(path)).column("Sample Number").type == "identifier"


# Headers and encodings


def test_a_repeated_header_name_is_said_with_the_names_given(tmp_path):
    path = tmp_path / "repeated.csv"
    path.write_text("a,a,b\n1,2,x\n3,4,y\n")
    source = read_source(path)
    assert list(source.frame.columns) == ["a", "a.1", "b"]
    [note] = profile(source).notes
    assert note == (
        "The header repeats the column name 'a' (2 times): the columns are named 'a', 'a.1'."
    )


def test_a_cp1252_file_is_read_and_its_encoding_said(tmp_path):
    source = read_source(spreadsheet(tmp_path / "prices.csv"))
    assert source.encoding == "cp1252"
    assert source.frame["city"].iloc[:3].tolist() == ["Zürich", "Genève", "München"]
    assert source.frame["price"].iloc[1] == "1€"
    assert "read as cp1252 text" in profile(source).notes[0]


def test_a_file_no_encoding_decodes_is_refused_in_one_line(workspace, tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"a,b\n" + bytes(range(256)) * 16)
    with pytest.raises(DataError) as caught:
        Workspace.current().add_dataset(path, "binary")
    message = str(caught.value)
    assert message.startswith(f"{path}: not text in any encoding") and "\n" not in message
    assert not (workspace / "data" / "binary").exists()


def test_a_date_target_is_refused_and_nothing_is_written(workspace, tmp_path):
    with pytest.raises(DataError, match=r"column 'Year': holds dates, so it cannot be the target"):
        Workspace.current().add_dataset(cars(tmp_path / "cars.csv"), "cars", target="Year")
    assert not (workspace / "data" / "cars").exists()


def test_data_add_says_the_encoding_repeated_names_and_rows_left_out(workspace, tmp_path, capsys):
    from app.cli.main import main

    assert main(["data", "add", str(spreadsheet(tmp_path / "prices.csv")), "--name", "prices",
                 "--target", "label"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "read as cp1252 text" in printed
    assert "the columns are named 'price', 'price.1'" in printed
    assert "1 row has no target and is left out" in printed
    splits = Workspace.current().dataset("prices").splits
    assert sorted(sum(splits.values(), [])) == [i for i in range(30) if i != 5]


@pytest.mark.parametrize(("make", "target"), [(cars, "Miles_per_Gallon"), (spreadsheet, "label")])
def test_a_table_streamed_from_disk_gives_what_transform_gives(tmp_path, make, target):
    from app.keras.pipeline import make_dataset

    source = read_source(make(tmp_path / "table.csv"))
    prof = profile(source, target=target)
    config = default_config(prof)
    rows = [i for i in range(len(source.frame)) if i not in (*NO_TARGET, 5)]
    state = fit(config, source, rows)
    streamed = make_dataset(config, state, source, rows, batch_size=100, memory_limit_bytes=0)
    ((inputs, targets),) = list(streamed)
    expected_inputs, expected_targets = transform(config, state, source, rows)
    np.testing.assert_allclose(np.asarray(inputs["features"]), expected_inputs["features"],
                               atol=1e-5)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(targets), expected_targets)
