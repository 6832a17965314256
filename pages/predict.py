"""Predict: a finished run's predictions on one input at a time (a table row to edit, an image to
upload, a text to type), asked of the run's warm model server (app.serve.client), so that this
process never imports TensorFlow. Other models (windows of a series, several outputs) are left
to `layerflow predict`."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import numpy as np
import streamlit as st

from app.data.sources import DataError, Source
from app.graph.canvas import escape_markdown
from app.jsonable import json_ready
from app.paths import inside
from app.runtime.serving import raw_inputs
from app.serve import client, protocol
from app.workspace import Workspace
from app.workspace.datasets import Dataset
from ui import session
from ui.charts import probabilities_figure

SHOWN_CLASSES = 10
EPOCH = datetime.date(1970, 1, 1)  # a date input is a day number, days since EPOCH

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
    """The form this page draws for the model: table, image or text; None for other models."""
    if config.window is not None or len(outputs) != 1:
        return None
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
    source = rows_of(str(dataset.folder), dataset.version, dataset)
    values = {}
    for name, array in raw_inputs(config, state, source, [index]).items():
        value = array.reshape(-1)[0]
        if isinstance(value, np.floating):  # float32 5.1 is shown as 5.1, not 5.099999904
            value = float(str(value)) if np.isfinite(value) else None
        values[name] = json_ready(value)
    return values


def ask(instances: list[Any]) -> dict[str, Any] | None:
    """The server's predictions of `instances`, or None after showing its one-line error. The
    server is started again if it stopped, idle, since the page was drawn."""
    try:
        with st.spinner("Starting the model server…"):
            found = client.start(run_dir)
        return client.predict(found, {"instances": instances})
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
        show(ask([instance]))


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
    with left:
        upload = st.file_uploader("An image (PNG or JPEG)", type=["png", "jpg", "jpeg"])
        if upload is not None:
            image = upload.getvalue()
        else:
            index = st.selectbox("Or a test image", test_rows, format_func=lambda i: f"row {i}")
            image = test_image(index)
        if image is None:
            st.caption("Upload an image to predict its class.")
            return
    with right:
        answer = ask([{"b64": base64.b64encode(image).decode()}])
        show(answer)
    if answer is not None:  # the server decoded it: an image, not any file named .png
        left.image(image, width=160)


@st.fragment
def text_form() -> None:
    start = start_values(test_rows[0])[inputs[0]["name"]]
    text = st.text_area("Text", start or "", key=f"predict:{run_id}:text")
    if text.strip():
        show(ask([text]))
    else:
        st.caption("Type a text to predict its class.")


form = form_of_model()
if form is None:
    st.info(f"This page does not predict with this kind of model yet (windows of a series, "
            f"several outputs, other inputs); use `layerflow predict {run_id} ROWS.csv` "
            "instead.")  # fmt: skip
else:
    {"table": table_form, "image": image_form, "text": text_form}[form]()
