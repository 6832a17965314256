"""Test: run the test suite on a finished run (in its own process) and read its report."""

from __future__ import annotations

import base64

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.evaluate import suite as testsuite
from app.evaluate.baselines import headline
from app.evaluate.report import error_histogram
from app.evaluate.settings import OPS, Gate, load_gates, save_gates
from app.workspace import runs
from ui import session

st.title("Test")
current = session.require_project()
session.step_bar(current, "Test")
session.notice()

run_dir = session.choose_finished_run(current)
run_id = run_dir.name
model = runs.model_slug(current.graph().meta.name)

with st.expander("Gates: what the model must reach before it may be exported"):
    gates = load_gates(model)
    rows = [gate.model_dump() for gate in gates]
    table = st.data_editor(
        pd.DataFrame(rows, columns=["metric", "op", "value"]),
        num_rows="dynamic",
        column_config={
            "op": st.column_config.SelectboxColumn("op", options=list(OPS), required=True),
            "value": st.column_config.NumberColumn("value", required=True),
        },
        key="gates",
    )
    if st.button("Save gates"):
        try:
            save_gates(model, [Gate(**row) for row in table.dropna().to_dict("records")])
        except ValueError as error:
            st.error(str(error))
        else:
            st.toast("Gates saved")


@st.fragment(run_every=2)
def progress() -> None:
    status = testsuite.test_status(run_dir)
    state = status.get("state")
    if st.button("Run the test suite", type="primary", disabled=state in ("queued", "running")):
        try:
            testsuite.start_test(run_dir)
        except ValueError as error:
            st.error(str(error))
        else:
            st.rerun(scope="fragment")
    if state in ("queued", "running"):
        st.progress(float(status.get("progress") or 0.0), text=status.get("step") or state)
    elif state == "failed":
        st.error(status.get("reason") or "The test suite failed")
    if state == "finished" and st.session_state.get("shown_report") != status.get("updated"):
        st.session_state.shown_report = status.get("updated")
        st.rerun()  # the whole page, to draw the new report


progress()
report = testsuite.read_report(run_dir)
if report is None:
    st.stop()

(st.success if report["passed"] else st.error)(
    "The run passed its gates and checks." if report["passed"] else
    "The run failed its gates or checks; export is refused unless forced."
)  # fmt: skip
baselines = report.get("baselines")
if baselines and baselines.get("model") is not None:
    st.subheader("Your model vs the baseline")
    st.caption(headline(baselines))
    best = baselines.get("best")
    margin = baselines["margin"]
    left, right = st.columns(2)
    left.metric(
        f"your model: {baselines['metric']}",
        f"{baselines['model']:.4g}",
        delta=None if best is None else f"{margin:+.4g} vs {best}",
        delta_color="off" if margin == 0 else "normal",
    )
    if best is not None:
        right.metric(f"best baseline: {best}", f"{baselines['best_value']:.4g}")
summary = report["summary"]
columns = st.columns(min(len(summary), 6) or 1)
for n, (name, value) in enumerate(summary.items()):
    columns[n % len(columns)].metric(name, f"{value:.4g}" if isinstance(value, float) else value)

gates_tab, baselines_tab, checks_tab, metrics_tab, samples_tab, explain_tab = st.tabs(
    ["Gates", "Baselines", "Production checks", "Metrics", "Samples", "Explanations"]
)
with gates_tab:
    results = report["gates"]["results"]
    if results:
        st.dataframe(results, hide_index=True)
    else:
        st.caption("No gates set: the report passes when no production check fails.")
with baselines_tab:
    if baselines:
        st.dataframe(
            [{"": "your model", **baselines["model_metrics"]}]
            + [{"": r["name"], **r["metrics"], "detail": r["detail"] or f"skipped: {r['skipped']}"}
               for r in baselines["results"]],
            hide_index=True, width="stretch",
        )  # fmt: skip
        season, fit = baselines.get("season"), baselines.get("fit")
        if season:
            st.caption(season["detail"])
        if fit:
            st.caption(f"Fitted on {fit['rows']:,} of the {fit['of']:,} train rows; scored on "
                       "the same test split as the model.")  # fmt: skip
    else:
        st.caption("This report has no baselines; run the test suite again.")
with checks_tab:
    st.dataframe(
        [{k: check.get(k) for k in ("name", "passed", "value", "detail")}
         for check in report["checks"]],
        hide_index=True, width="stretch",
    )  # fmt: skip
with metrics_tab:
    metrics = report["metrics"]
    if report.get("kind") == "anomaly":
        normal = f" ({metrics['normal_class']})" if metrics.get("normal_class") else ""
        st.caption(
            f"A row is anomalous when its reconstruction error is above "
            f"{metrics['threshold']:.4g}, the {metrics['percentile']:g}th percentile of the "
            f"errors of {metrics['threshold_rows']} normal{normal} "
            f"{metrics['threshold_split']} rows."
        )
        st.plotly_chart(error_histogram(metrics))
    confusion = metrics.get("confusion")
    if confusion:
        figure = go.Figure(go.Heatmap(z=confusion["matrix"], x=confusion["labels"],
                                      y=confusion["labels"], colorscale="Blues",
                                      texttemplate="%{z}"))  # fmt: skip
        figure.update_layout(xaxis_title="predicted", yaxis_title="actual", height=420,
                             yaxis_autorange="reversed")  # fmt: skip
        st.plotly_chart(figure)
    for key in ("per_class", "per_class_iou"):
        if metrics.get(key):
            st.dataframe(metrics[key], hide_index=True)
    html_report = run_dir / "test" / "report.html"
    if html_report.exists():
        st.download_button("Full report (HTML, with every chart)", html_report.read_bytes(),
                           file_name=f"{run_id}-report.html", mime="text/html")  # fmt: skip


def show_samples(samples: list[dict]) -> None:
    columns = st.columns(4)
    for n, sample in enumerate(samples):
        with columns[n % 4]:
            if sample.get("image"):
                st.image(base64.b64decode(sample["image"]), width=96)
            st.caption(f"row {sample.get('index')}: target {sample.get('target')}, "
                       f"predicted {sample.get('prediction')}")  # fmt: skip


with samples_tab:
    for kind, samples in (report.get("samples") or {}).items():
        if samples:
            st.markdown(f"**{kind.capitalize()}**")
            show_samples(samples)
with explain_tab:
    explanations = report.get("explanations") or {}
    importance = explanations.get("permutation_importance")
    if importance:
        frame = pd.DataFrame(importance)
        st.bar_chart(frame, x="feature", y="importance", horizontal=True)
    for item in explanations.get("saliency", []) or []:
        st.image(base64.b64decode(item["image"]), width=128, caption=item.get("caption"))
