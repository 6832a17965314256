"""Predict: a finished run's predictions on one input at a time (a table row to edit, with the
What-If Tool's questions; an image to draw, upload or probe, with an occlusion map; a text, with
each word's part; a window of a series to edit; an autoencoder's reconstruction, its error
against the anomaly threshold and a walk between two inputs' codes), asked of the run's warm
model server (app.serve.client), so that this process never imports TensorFlow. Models of
several outputs are left to `layerflow predict`."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from app.data.sources import DataError, Source
from app.graph.canvas import escape_markdown
from app.jsonable import json_ready
from app.paths import inside
from app.runtime.serving import raw_inputs
from app.runtime.transform import window_starts
from app.serve import client, protocol, whatif
from app.workspace import Workspace
from app.workspace.datasets import Dataset
from ui import session
from ui.charts import (
    errors_figure,
    forecast_figure,
    parts_figure,
    probabilities_figure,
    reconstruction_figure,
    saliency_figure,
    sweep_figure,
)

SHOWN_CLASSES = 10
SWEPT_CLASSES = 5  # the what-if chart draws the row's most probable classes
COUNTERFACTUAL_ROWS = 2000  # test rows searched for the nearest other prediction
MAX_WORDS = 400  # words of a text whose part is asked for
SHOWN_WORDS = 15  # the words with the largest parts
IMAGE_TYPES = ["png", "jpg", "jpeg"]
DRAWING_SIZE, DRAWING_STROKE = 200, 18  # pixels of the drawing canvas and of its pen
EPOCH = datetime.date(1970, 1, 1)  # a date input is a day number, days since EPOCH
ERROR_ROWS = 500  # test rows whose reconstruction errors draw the distribution

st.title("Predict")
current = session.require_project()
session.step_bar(current, "Predict")
session.notice()

run_dir = session.choose_finished_run(current)
run_id = run_dir.name
try:
    dataset = Workspace.current().dataset_of_run(run_dir)
    with st.spinner("Starting the model server…"):
        record = client.start(run_dir)
        served = client.metadata(record)["layerflow"]
except (DataError, client.ServeError) as error:
    st.error(escape_markdown(error))
    st.stop()
st.caption(f"Predictions from the run's model server at `{record['url']}` (TensorFlow "
           "Serving's REST API); it stops after 10 minutes without a request.")  # fmt: skip

config, state = dataset.preprocessing()
kinds = {spec.column: spec.kind for spec in config.features}
inputs, outputs = served["inputs"], served["outputs"]
test_rows = sorted(dataset.splits.get("test") or []) or [0]


def form_of_model() -> str | None:
    """The form this page draws for the model: window, table, image, text or autoencoder; None
    for other models."""
    if len(outputs) != 1:
        return None
    if served.get("autoencoder"):  # a run's (an export's has no threshold)
        return "autoencoder" if served.get("threshold") is not None else None
    if config.window is not None:
        return "window"
    if len(inputs) == 1 and len(inputs[0]["shape"]) == 3:
        return "image"
    if len(inputs) == 1 and kinds.get(inputs[0].get("column")) == "text":
        return "text"
    if all(spec["shape"] == [1] and spec.get("column") in kinds for spec in inputs):
        return "table"
    return None


@st.cache_resource(max_entries=2, show_spinner=False)
def rows_of(folder: str, version: str | None, _dataset: Dataset) -> Source:
    """The dataset's rows, read once per version (the form reruns on every change)."""
    return _dataset.source()


def start_values(index: int) -> dict[str, Any]:
    """Row `index` of the dataset as the model's raw inputs (by input name): the form's start."""
    return raw_rows([index])[0]


def raw_rows(indices: list[int]) -> list[dict[str, Any]]:
    """Rows of the dataset as the model's raw inputs, each by input name, as JSON values."""
    source = rows_of(str(dataset.folder), dataset.version, dataset)
    columns = {}
    for name, array in raw_inputs(config, state, source, indices).items():
        values = array.reshape(len(indices), -1)[:, 0]
        if np.issubdtype(values.dtype, np.floating):  # float32 5.1 is 5.1, not 5.099999904
            columns[name] = [float(str(v)) if np.isfinite(v) else None for v in values]
        else:
            columns[name] = json_ready(values)
    return [{name: column[i] for name, column in columns.items()} for i in range(len(indices))]


def ask(instances: list[Any], verb: str = "predict") -> dict[str, Any] | None:
    """The server's predictions of `instances` (or its answer to another `verb` and body), or
    None after showing its one-line error. The server is started again if it stopped, idle,
    since the page was drawn."""
    body = {"codes": instances} if verb == "decode" else {"instances": instances}
    try:
        with st.spinner("Starting the model server…"):
            found = client.start(run_dir)
        return client.predict(found, body, verb=verb)
    except client.ServeError as error:
        st.error(escape_markdown(error))
        return None


def show(answer: dict[str, Any] | None) -> None:
    """The prediction of one instance: the top classes and their probabilities, or the
    predicted values."""
    if answer is None:
        return
    classes = served["classes"].get(outputs[0])
    (described,) = protocol.describe(answer["predictions"], classes, top=SHOWN_CLASSES)
    if "top" in described:
        top = described["top"]
        st.metric("Predicted class", str(top[0][0]), help=f"probability {top[0][1]:.1%}")
        st.plotly_chart(probabilities_figure(top), key="probabilities")
        return
    values = described["values"]
    target = escape_markdown(dataset.meta.get("target") or outputs[0])
    if len(values) == 1:
        value = values[0]
        st.metric(f"Predicted {target}", "-" if value is None else f"{value:.4g}")
    else:
        st.dataframe({"value": values})


def input_widget(spec: dict[str, Any], value: Any, key: str) -> Any:
    """The widget of one table column, labelled by the column, starting at `value`; the value
    it holds as the server takes it (None: missing)."""
    column = spec["column"]
    label, kind = escape_markdown(column), kinds[column]
    stats = state.columns.get(column)
    if kind == "categorical":
        options = list(stats.categories or []) if stats else []
        if value is not None and value not in options:
            options.append(value)
        at = options.index(value) if value in options else None
        return st.selectbox(label, options, index=at, key=key,
                            help="The values seen in the train split")  # fmt: skip
    if kind == "text":
        return st.text_input(label, value or "", key=key)
    if kind == "date":
        day = None if value is None else EPOCH + datetime.timedelta(days=int(value))
        chosen = st.date_input(label, day, min_value=datetime.date(1800, 1, 1),
                               max_value=datetime.date(2200, 12, 31), key=key)  # fmt: skip
        return None if chosen is None else (chosen - EPOCH).days
    help_text = "Empty: the train mean"
    if stats is not None and stats.min is not None and stats.max is not None:
        help_text = (f"Train range {stats.min:g} to {stats.max:g}; empty: the train mean "
                     f"{stats.mean:g}")  # fmt: skip
    return st.number_input(label, value=value, format="%g", key=key, help=help_text)


@st.fragment
def table_form() -> None:
    index = st.selectbox("Start from the test row", test_rows, format_func=lambda i: f"row {i}")
    start = start_values(index)
    left, right = st.columns(2)
    with left:
        instance = {}
        for spec in inputs:  # keyed by the row too: another row starts the widgets again
            name = spec["name"]
            instance[name] = input_widget(spec, start[name], key=f"{run_id}:{index}:{name}")
    with right:
        answer = ask([instance])
        show(answer)
    if answer is not None:
        what_if(instance, answer)


def what_if(instance: dict[str, Any], answer: dict[str, Any]) -> None:
    """Why this prediction (each column's part), what if one number changed (the prediction over
    its train range), and the nearest test row predicted otherwise; each asked of the server."""
    classes = served["classes"].get(outputs[0])
    (described,) = protocol.describe(answer["predictions"], classes)
    label = described["top"][0][0] if "top" in described else None
    what = f"probability of {label}" if label is not None else "predicted value"
    names = [spec["name"] for spec in inputs]
    column_of = {spec["name"]: spec["column"] for spec in inputs}
    why, sweep, other = st.tabs(["Why", "What if", "Nearest other prediction"])
    with why:
        texts = [s["name"] for s in inputs if s["dtype"] == "string"]
        found = ask(whatif.occlusions(instance, names, texts))
        if found is not None:
            left_out = protocol.describe(found["predictions"], classes)
            scores = [whatif.score(d, label) for d in left_out]
            parts = whatif.parts(whatif.score(described, label), scores, names)
            named = [(column_of[name], part) for name, part in parts]
            st.plotly_chart(parts_figure(named, what), key="parts")
            st.caption(f"How much the {escape_markdown(what)} changes when a column is left out "
                       "(a number then counts as its train mean, a category as none).")  # fmt: skip
    with sweep:
        numbers = [n for n in names if kinds.get(column_of[n]) == "numeric"
                   and isinstance(state.columns[column_of[n]].min, int | float)]  # fmt: skip
        if not numbers:
            st.caption("No number column to vary.")
        else:
            name = st.selectbox("Column", numbers, format_func=lambda n: column_of[n])
            stats = state.columns[column_of[name]]
            rows = whatif.sweep(instance, name, float(stats.min), float(stats.max))
            found = ask(rows)
            if found is not None:
                swept = protocol.describe(found["predictions"], classes)
                xs = [row[name] for row in rows]
                if label is not None:
                    shown = [c for c, _ in described["top"][:SWEPT_CLASSES]]
                    lines = {c: [d["probabilities"][c] for d in swept] for c in shown}
                else:
                    lines = {what: [whatif.score(d, None) for d in swept]}
                axis = "probability" if label is not None else what
                figure = sweep_figure(xs, lines, instance[name], column_of[name], axis)
                st.plotly_chart(figure, key="sweep")
    with other:
        nearest_other(instance, label, classes, names, column_of)


def nearest_other(instance, label, classes, names, column_of) -> None:
    """The test row nearest to `instance` whose predicted class is not `label`, and what
    differs."""
    if label is None:
        st.caption("For models that predict a class.")
        return
    rows = raw_rows(test_rows[:COUNTERFACTUAL_ROWS])
    found = ask(rows)
    if found is None:
        return
    labels = [d["top"][0][0] for d in protocol.describe(found["predictions"], classes)]
    scales = {n: state.columns[column_of[n]].std for n in names
              if kinds.get(column_of[n]) == "numeric"}  # fmt: skip
    nearest = whatif.nearest_other(instance, rows, labels, label, scales)
    if nearest is None:
        st.caption(f"Every test row is predicted {escape_markdown(label)}.")
        return
    index, differing = nearest
    st.markdown(f"Test row {test_rows[index]} is predicted **{escape_markdown(labels[index])}**; "
                "it differs from this row in:")  # fmt: skip
    st.dataframe(
        {"column": [column_of[n] for n in differing],
         "this row": [str(instance[n]) for n in differing],
         f"row {test_rows[index]}": [str(rows[index][n]) for n in differing]},
        hide_index=True,
    )  # fmt: skip


def test_image(index: int) -> bytes | None:
    """The file of test row `index`'s image, when the dataset keeps images as files."""
    column = inputs[0].get("column")
    source = rows_of(str(dataset.folder), dataset.version, dataset)
    if source.arrays is not None or column not in source.frame.columns:
        return None
    return inside(source.root, str(source.frame[column].iloc[index])).read_bytes()


@st.fragment
def image_form() -> None:
    left, right = st.columns(2)
    spec = next(f for f in config.features if f.kind == "image")
    with left:
        drawing = spec.grayscale and st.toggle("Draw it", help="A light drawing on black, as "
                                               "the digits sample's images are")  # fmt: skip
        if drawing:
            drawn = st_canvas(stroke_width=DRAWING_STROKE, stroke_color="#ffffff",
                              background_color="#000000", height=DRAWING_SIZE,
                              width=DRAWING_SIZE, drawing_mode="freedraw",
                              key=f"predict:{run_id}:drawing")  # fmt: skip
            size = (spec.height, spec.width) if spec.height and spec.width else None
            image = None if drawn.image_data is None else whatif.drawn_image(drawn.image_data, size)
        elif (upload := st.file_uploader("An image (PNG or JPEG)", type=IMAGE_TYPES)) is not None:
            image = upload.getvalue()
        else:
            index = st.selectbox("Or a test image", test_rows, format_func=lambda i: f"row {i}")
            image = test_image(index)
        if image is None:
            st.caption("Draw, or upload an image, to predict its class.")
            return
        brightness = st.slider("Brightness", 0.2, 2.0, 1.0, 0.1)
        rotation = st.slider("Rotation (degrees)", -90, 90, 0, 5)
        noise = st.slider("Noise (pixel standard deviation)", 0, 80, 0, 5)
        try:
            if (brightness, rotation, noise) != (1.0, 0, 0):
                image = whatif.probed_image(image, brightness, rotation, noise)
            pixels = whatif.pixels_of(image)
        except ValueError as error:
            st.error(f"The file {escape_markdown(error)}")
            return
    with right:
        answer = ask([b64(image)])
        show(answer)
    if answer is not None:
        left.image(image, width=160)
        saliency(image, pixels, answer)


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


def saliency(image: bytes, pixels: np.ndarray, answer: dict[str, Any]) -> None:
    """Where the prediction looks: how much its class's probability drops when each cell of a
    grid over the image is covered."""
    classes = served["classes"].get(outputs[0])
    (described,) = protocol.describe(answer["predictions"], classes)
    if "top" not in described:
        return
    label = described["top"][0][0]
    files, grid = whatif.occluded_images(image)
    found = ask([b64(file) for file in files])
    if found is None:
        return
    covered = [whatif.score(d, label) for d in protocol.describe(found["predictions"], classes)]
    drop = whatif.score(described, label) - np.asarray(covered).reshape(grid)
    what = f"probability of {label}"
    st.plotly_chart(saliency_figure(pixels, drop, what), key="saliency")
    st.caption(f"How much the {escape_markdown(what)} drops when each cell is covered with "
               "the image's mean colour: the prediction rests on the red cells.")  # fmt: skip


@st.fragment
def text_form() -> None:
    start = start_values(test_rows[0])[inputs[0]["name"]]
    text = st.text_area("Text", start or "", key=f"predict:{run_id}:text")
    if not text.strip():
        st.caption("Type a text to predict its class.")
        return
    answer = ask([text])
    show(answer)
    if answer is None:
        return
    classes = served["classes"].get(outputs[0])
    (described,) = protocol.describe(answer["predictions"], classes)
    label = described["top"][0][0] if "top" in described else None
    words, shorter = whatif.without_each_word(text)
    found = ask(shorter[:MAX_WORDS]) if len(words) > 1 else None
    if found is not None:
        scores = [whatif.score(d, label) for d in protocol.describe(found["predictions"], classes)]
        named = [f"{word} ({i + 1})" for i, word in enumerate(words[:MAX_WORDS])]
        what = f"probability of {label}" if label is not None else "predicted value"
        parts = whatif.parts(whatif.score(described, label), scores, named)[:SHOWN_WORDS]
        st.plotly_chart(parts_figure(parts, what), key="words")
        st.caption(f"Each word's part (and its place): how the {escape_markdown(what)} changes "
                   "without it.")  # fmt: skip


@st.fragment
def window_form() -> None:
    """A window of the test split as an editable table, and the forecast that follows it,
    drawn after the window's values of the forecast column, beside what came."""
    window = config.window
    test = sorted(dataset.splits.get("test") or [])
    source = rows_of(str(dataset.folder), dataset.version, dataset)
    try:
        windows = raw_inputs(config, state, source, test)["features"]
        starts = window_starts(config, test)
    except DataError as error:
        st.error(escape_markdown(error))
        return
    which = st.slider("Window of the test split", 1, len(windows), len(windows),
                      help="The last window is the latest data")  # fmt: skip
    columns = [spec.column for spec in config.features]
    if windows.shape[-1] != len(columns):  # a feature of several values per row
        columns = [f"feature {i}" for i in range(windows.shape[-1])]
    edited = st.data_editor(
        pd.DataFrame(windows[which - 1], columns=columns), key=f"predict:{run_id}:window:{which}"
    )
    answer = ask([{"features": edited.to_numpy(dtype=float).tolist()}])
    if answer is None:
        return
    forecast = np.asarray(answer["predictions"][0], dtype=float).reshape(-1)
    start = starts[which - 1] + window.size
    came = source.frame[window.column].to_numpy()[test[start : start + window.horizon]]
    history = edited[window.column].to_numpy(float) if window.column in columns else None
    st.plotly_chart(forecast_figure(history, forecast, came, window.column), key="forecast")
    st.caption("Edit the window's values to see the forecast move.")


def image_model() -> bool:
    return len(inputs) == 1 and len(inputs[0]["shape"]) == 3


def instances_of(indices: list[int]) -> list[Any]:
    """Test rows as the server takes them: a table row by input name, or an image's pixels."""
    if not image_model():
        return raw_rows(indices)
    source = rows_of(str(dataset.folder), dataset.version, dataset)
    return json_ready(raw_inputs(config, state, source, indices)[inputs[0]["name"]])


def pictures(arrays: dict[str, np.ndarray]) -> None:
    """Images of the model's input space side by side, on one grey scale from their joint
    range (a standardized image is not in 0..1)."""
    low = min(float(a.min()) for a in arrays.values())
    high = max(float(a.max()) for a in arrays.values())
    for column, (caption, array) in zip(st.columns(len(arrays)), arrays.items(), strict=True):
        scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
        column.image(np.clip(scaled, 0, 1), caption=caption, width=160)


@st.fragment
def autoencoder_form() -> None:
    """A test row (its values to change, for a table), its reconstruction beside it, its error
    against the threshold among the test rows' errors, and a walk from its code to another's."""
    index = st.selectbox("Test row", test_rows, format_func=lambda i: f"row {i}")
    (instance,) = instances_of([index])
    if not image_model():
        with st.expander("Change the row's values"):
            columns = st.columns(3)
            for i, spec in enumerate(inputs):
                name = spec["name"]
                with columns[i % 3]:
                    key = f"{run_id}:ae:{index}:{name}"
                    instance[name] = input_widget(spec, instance[name], key)
    answer = ask([instance], "reconstruct")
    if answer is None:
        return
    error, threshold = answer["errors"][0], served["threshold"]
    left, right = st.columns(2)
    left.metric("Reconstruction error", f"{error:.4g}", f"{error - threshold:+.4g} from the "
                "threshold", delta_color="inverse")  # fmt: skip
    right.metric("Verdict", "anomalous" if error > threshold else "normal",
                 help=f"Above the threshold {threshold:.4g} is anomalous; it is "
                      f"{escape_markdown(served['threshold_from'])}.")  # fmt: skip
    given = np.asarray(answer["inputs"][0], dtype=float)
    rebuilt = np.asarray(answer["reconstructions"][0], dtype=float)
    if image_model():
        pictures({"input": given, "reconstruction": rebuilt})
    else:
        st.plotly_chart(reconstruction_figure(feature_names(given.size),
                                              {"input": given, "reconstruction": rebuilt}),
                        key="reconstruction")  # fmt: skip
    rows = test_rows[: ERROR_ROWS if not image_model() else ERROR_ROWS // 5]
    found = ask(instances_of(rows), "reconstruct")
    if found is not None:
        st.plotly_chart(errors_figure(found["errors"], threshold, error), key="errors")
        st.caption(f"The errors of {len(rows)} test rows, the threshold and this row's error.")
    if "codes" in answer:
        walk(index, np.asarray(answer["codes"][0], dtype=float), given)


def walk(index: int, code: np.ndarray, given: np.ndarray) -> None:
    """The decoding of a code between this row's and another test row's: the generative space
    the bottleneck learned."""
    st.subheader("Between two rows, in the bottleneck")
    others = [i for i in test_rows if i != index] or test_rows
    other = st.selectbox("Walk to test row", others, format_func=lambda i: f"row {i}")
    found = ask(instances_of([other]), "reconstruct")
    if found is None:
        return
    end = np.asarray(found["codes"][0], dtype=float)
    share = st.slider(f"Share of row {other}'s code", 0.0, 1.0, 0.5, 0.05)
    decoded = ask([((1 - share) * code + share * end).tolist()], "decode")
    if decoded is None:
        return
    mixed = np.asarray(decoded["reconstructions"][0], dtype=float)
    there = np.asarray(found["inputs"][0], dtype=float)
    lines = {f"row {index}": given, f"row {other}": there, "decoded mix": mixed}
    if image_model():
        pictures(lines)
    else:
        st.plotly_chart(reconstruction_figure(feature_names(given.size), lines), key="walk")
    st.caption(f"The decoder's output for the code {1 - share:.0%} of row {index}'s and "
               f"{share:.0%} of row {other}'s (bottleneck `{served['bottleneck']}`).")  # fmt: skip


def feature_names(count: int) -> list[str]:
    """The model's input features by column, when it is given one number per column (else by
    place: a category is several)."""
    columns = [spec.column for spec in config.features]
    single = all(spec.kind in ("numeric", "date") for spec in config.features)
    return columns if single and len(columns) == count else [f"feature {i}" for i in range(count)]


form = form_of_model()
if form is None:
    st.info("This page does not predict with this kind of model yet (several outputs, "
            "other inputs); use "
            f"`layerflow predict {run_id} ROWS.csv` instead.")  # fmt: skip
else:
    forms = {"window": window_form, "table": table_form, "image": image_form, "text": text_form,
             "autoencoder": autoencoder_form}  # fmt: skip
    forms[form]()
