"""Start: pick a model template and see what it builds."""

from __future__ import annotations

import streamlit as st

from app.analysis import analyze
from app.codegen import generate_module
from app.components.base import fmt_shape
from app.model_templates import list_templates, load_template

st.title("LayerFlow")
st.caption("A visual workspace for TensorFlow/Keras models.")

templates = list_templates()
names = [t.name for t in templates]
choice = st.selectbox(
    "Model template",
    names,
    format_func=lambda name: next(t.title for t in templates if t.name == name),
)
info = next(t for t in templates if t.name == choice)
st.write(info.description)
st.caption(f"Expects: {info.expects}")

analysis = analyze(load_template(choice))
totals = analysis.totals()
st.metric("Parameters", f"{totals['params']:,}")
rows = [
    {**row, "output_shape": fmt_shape(row["output_shape"]) if row["output_shape"] else "-"}
    for row in analysis.rows()
]
st.dataframe(rows, hide_index=True, width="stretch")
for problem in analysis.problems:
    {"error": st.error, "warning": st.warning}.get(problem.level, st.info)(problem.message)
with st.expander("Generated Keras code"):
    st.code(generate_module(analysis), language="python")
