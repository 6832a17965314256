"""Export: the trained model as .keras, SavedModel, TFLite, ONNX or a standalone project.

Exporting needs TensorFlow, so it runs as `layerflow export` in a child process; the gate (a
passing test report) is the engine's, and so is the message when it refuses."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd
import streamlit as st

from app.export import demo, exporter, records
from app.graph.canvas import escape_markdown
from ui import jobs, session

st.title("Export")
current = session.require_project()
session.step_bar(current, "Export")
session.notice()

FORMATS = {
    "keras": "Keras (.keras)",
    "savedmodel": "TensorFlow SavedModel (TF Serving)",
    "tflite": "TensorFlow Lite",
    "onnx": "ONNX",
    "tfjs": "TensorFlow.js (runs in a browser; with a demo page)",
    "project": "Standalone project (model.py, train.py, dvc.yaml...)",
}
QUANTIZE = {None: "none (float32)", "dynamic": "dynamic range", "float16": "float16",
            "int8": "int8 (representative data from the train split)"}  # fmt: skip

doc = current.graph()
run_dir = session.choose_finished_run(current)
gate = exporter.check_gate(run_dir)
if not gate["passed"]:
    st.warning(f"{gate['reason']}: export is refused unless forced.")

with st.form("export"):
    fmt = st.selectbox("Format", list(FORMATS), format_func=FORMATS.get)
    quantize = st.selectbox("Quantization (TFLite)", list(QUANTIZE), format_func=QUANTIZE.get)
    force = st.checkbox("Force: export without a passing test report (recorded in the metadata)")
    submitted = st.form_submit_button("Export", type="primary")
if submitted:
    args = ["export", str(run_dir), "--format", fmt]
    if quantize and fmt == "tflite":
        args += ["--quantize", quantize]
    if force:
        args.append("--force")
    with st.spinner(f"Exporting {FORMATS[fmt]} and checking its predictions..."):
        outcome = jobs.layerflow(*args)
    if outcome.ok:
        session.notice(f"Exported {FORMATS[fmt]}")
        st.rerun()
    else:
        st.error(outcome.output)


def archive(folder: Path) -> bytes:
    """The export folder as a zip, for the download button."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(folder.parent))
    return buffer.getvalue()


found = records.list_exports(doc.meta.name)
if found:
    st.subheader("Exports")
    st.dataframe(
        [{"export": Path(meta["folder"]).name, "format": meta.get("format"),
          "quantize": meta.get("quantize"), "run": meta.get("run"), "forced": meta.get("forced"),
          "created": pd.Timestamp(meta.get("created", 0), unit="s")} for meta in found],
        hide_index=True,
    )  # fmt: skip
    names = [Path(meta["folder"]).name for meta in found]
    chosen = found[names.index(st.selectbox("Download", names))]
    folder = Path(chosen["folder"])
    st.download_button("Download (zip)", archive(folder), file_name=f"{folder.name}.zip",
                       mime="application/zip", icon=":material/download:")  # fmt: skip
    if chosen.get("format") == "tfjs":
        st.caption("The TensorFlow.js export runs in a browser with no server but a static one: "
                   "model.json, its weights, preprocess.js and index.html, the demo page.")
        if st.button("Open the demo page", icon=":material/open_in_browser:"):
            try:
                st.session_state[f"export:demo:{folder.name}"] = demo.open_demo(folder)
            except ValueError as error:
                st.error(escape_markdown(str(error)))
        url = st.session_state.get(f"export:demo:{folder.name}", "")
        if url.startswith("http://127.0.0.1:"):
            st.link_button("Demo page (served from 127.0.0.1)", url)
    notes = chosen.get("backend_notes")
    if notes is not None:
        st.caption("Backends: " + ("; ".join(escape_markdown(n) for n in notes) if notes else
                   "the model runs on Keras' TensorFlow, JAX and PyTorch backends"))  # fmt: skip
    with st.expander("Metadata"):
        st.json({key: value for key, value in chosen.items() if key != "folder"})
