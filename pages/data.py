"""Data: add a sample or a file as a versioned dataset, attach it to the project, fit the model
to it, and look at its profile, preprocessing and versions."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from app.data.samples import SAMPLES, make_sample
from app.data.summaries import chart, summary
from app.paths import NAME_PATTERN
from app.workspace import Workspace
from app.workspace.datasets import refit_project
from ui import session
from ui.uploads import save_upload

st.title("Data")
workspace = Workspace.current()
current = session.require_project()
session.step_bar(current, "Data")
session.notice()


def add_dataset(path: Path, name: str, target: str | None) -> None:
    """Add and attach the dataset, with its steps shown as they happen."""
    if not re.fullmatch(NAME_PATTERN, name):
        st.error(f"Dataset name {name!r}: use a letter, then letters, digits, _ or -.")
        return
    with st.status(f"Adding dataset {name}...", expanded=True) as status:
        try:
            workspace.add_dataset(path, name, target=target or None, progress=st.write)
        except (ValueError, OSError) as error:  # a DataError is a ValueError
            status.update(label=f"Dataset {name} was not added", state="error")
            st.error(str(error))
            return
        status.update(label=f"Dataset {name} added", state="complete", expanded=False)
    current.use_dataset(name)
    session.notice(f"Dataset {name} added and chosen for the project")
    st.rerun()


doc = current.graph()
datasets = workspace.datasets()
names = [row["name"] for row in datasets]

with st.expander("Add a dataset", expanded=not names):
    sample_tab, upload_tab = st.tabs(["Sample", "Your file"])
    with sample_tab, st.form("add_sample"):
        # The template's own sample first: the data its defaults are measured on.
        suggested = doc.meta.sample
        sample = st.selectbox("Sample", list(SAMPLES),
                              index=list(SAMPLES).index(suggested) if suggested in SAMPLES else 0,
                              format_func=lambda s: f"{s}: {SAMPLES[s]}")  # fmt: skip
        name = st.text_input("Dataset name", help="Default: the sample's name")
        if st.form_submit_button("Add sample", type="primary"):
            with tempfile.TemporaryDirectory() as folder:
                add_dataset(make_sample(sample, Path(folder) / sample), name or sample, None)
    with upload_tab, st.form("add_file"):
        upload = st.file_uploader(
            "A CSV, TSV or Parquet table, an .npz of arrays, or a .zip of one folder per class",
            type=["csv", "tsv", "parquet", "npz", "zip"],
        )
        name = st.text_input("Dataset name", "my-data")
        target = st.text_input("Target column", help="Tables: the column to predict")
        if st.form_submit_button("Add file", type="primary"):
            if upload is None:
                st.error("Choose a file to add.")
            else:
                with tempfile.TemporaryDirectory() as folder:
                    path = save_upload(upload, Path(folder), "upload")
                    add_dataset(path, name.strip(), target.strip())

if not names:
    st.stop()

st.subheader("The project's dataset")
index = names.index(current.dataset) if current.dataset in names else None
chosen = st.selectbox("Dataset", names, index=index, placeholder="Choose a dataset")
if chosen != current.dataset and chosen is not None:
    current.use_dataset(chosen)
    st.rerun()
if current.dataset is None:
    st.stop()

dataset = workspace.dataset(current.dataset)
meta = dataset.meta
profile = meta["profile"]
cols = st.columns(5)
cols[0].metric("Rows", f"{meta['rows']:,}")
cols[1].metric("Kind", meta["kind"])
cols[2].metric("Task", meta["task"] or "-")
cols[3].metric("Target", meta["target"] or "-")
cols[4].metric("Classes", len(profile.get("classes") or []) or "-")

mismatches = dataset.mismatches(doc)
if mismatches:
    st.warning("The model does not fit this data yet:\n\n" + "\n".join(
        f"- {problem.message}" for problem in mismatches))  # fmt: skip
    if st.button("Configure the model from the data", type="primary"):
        session.configure_from_data(current, dataset, doc)
else:
    st.success("The model's inputs and outputs fit this data.")
    st.page_link(session.PAGES["model"], label="Continue with the model",
                 icon=":material/arrow_forward:")  # fmt: skip

profile_tab, preview_tab, preprocessing_tab, versions_tab = st.tabs(
    ["Profile", "Preview", "Preprocessing", "Versions"]
)
with profile_tab:
    for note in profile.get("notes", []):
        st.info(note)
    columns = profile.get("columns") or []
    if columns:
        st.dataframe(
            [{"column": c["name"], "type": c["type"], "missing": c["missing"],
              "unique": c["unique"], "summary": summary(c)} for c in columns],
            hide_index=True,
            width="stretch",
        )  # fmt: skip
        charts = {c["name"]: chart(c) for c in columns if chart(c)}
        if charts:
            shown = st.selectbox("Chart of a column", list(charts))
            st.bar_chart(pd.Series(charts[shown], name="rows"))
    if profile.get("class_balance"):
        st.caption(f"Rows per class of the target, '{meta['target']}'")
        st.bar_chart(pd.Series(profile["class_balance"], name="rows"))
    for warning in profile.get("warnings", []):
        st.warning(warning)
with preview_tab:
    st.dataframe(pd.DataFrame(profile.get("preview", [])), hide_index=True)
with preprocessing_tab:
    st.caption("Fitted on the train split; changing it refits and records a new version.")
    with st.form("preprocessing"):
        text = st.text_area(
            "Preprocessing settings (JSON)",
            json.dumps(meta["preprocessing"], indent=2),
            height=300,
        )
        if st.form_submit_button("Apply"):
            try:
                refit_project(current, json.loads(text))
            except json.JSONDecodeError as error:
                st.error(f"Preprocessing settings: not JSON ({error.msg} at line {error.lineno})")
            except ValueError as error:
                st.error(str(error))
            else:
                session.notice("Preprocessing refitted; a new dataset version is recorded")
                st.rerun()
with versions_tab:
    history = workspace.dataset_versions(current.dataset)
    st.dataframe(
        [{"version": v.version[:12], "note": v.note, "files": v.files, "size": v.size,
          "created": pd.Timestamp(v.created, unit="s")} for v in reversed(history)],
        hide_index=True,
    )  # fmt: skip
    if len(history) > 1:
        back = st.selectbox("Restore version", [v.version for v in history[:-1]],
                            format_func=lambda v: v[:12])  # fmt: skip
        if st.button("Restore"):
            workspace.restore_dataset(current.dataset, back)
            session.notice(f"Dataset {current.dataset} restored to {back[:12]}")
            st.rerun()
