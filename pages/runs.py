"""Runs: every run of the project's model with its settings, metrics, data version and state;
overlaid charts of the runs chosen; restore a version's model; delete a run."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.evaluate import compare
from app.workspace import Workspace, runs
from ui import session

st.title("Runs")
current = session.require_project()
session.step_bar(current, "Runs")
session.notice()

doc = current.graph()
everything = st.toggle("Runs of every model in the workspace", False)
workspace = Workspace.current()
listed = workspace.runs(model=None if everything else doc.meta.name)
if not listed:
    st.info("No runs yet.")
    st.stop()

rows = []
for row in listed:
    info = runs.get_run(row["dir"])
    settings = info["settings"]
    rows.append({
        "run": row["id"], "model": row["model"], "state": row["state"],
        "epoch": f"{row['epoch']}/{row['epochs']}", "data": info["data"]["name"],
        "data version": (info["data"].get("version") or "")[:10],
        "optimizer": settings.get("optimizer"), "lr": settings.get("learning_rate"),
        "batch": settings.get("batch_size"), "best": session.best_text(row["best"]),
        "search": f"{row['search']['study']} #{row['search']['trial']}" if row.get("search")
        else "",
        **{k: round(v, 4) for k, v in (info["metrics"] or {}).items()},
        "created": pd.Timestamp(row["created"], unit="s"),
    })  # fmt: skip
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")

ids = [row["id"] for row in listed]
dirs = {row["id"]: row["dir"] for row in listed}
picked = st.multiselect("Compare runs", ids, default=ids[:2] if len(ids) > 1 else ids)
if len(picked) >= 2:
    comparison = compare.compare_runs([dirs[i] for i in picked])
    differs = comparison["differs"]
    what = [*differs["settings"], *(["data version"] if differs["data"] else []),
            *(["graph"] if differs["graph"] else [])]  # fmt: skip
    st.caption("What differs: " + (", ".join(what) if what else "nothing but the run"))
    histories = {i: compare.history(dirs[i]) for i in picked}
    names = sorted({k for h in histories.values() for k in h if k != "epoch"},
                   key=lambda k: (k.removeprefix("val_") != "loss", k))  # fmt: skip
    columns = st.columns(2)
    for n, name in enumerate(names):
        figure = go.Figure()
        for run_id, series in histories.items():
            if name in series:
                figure.add_trace(go.Scatter(x=series["epoch"], y=series[name], name=run_id,
                                            mode="lines+markers"))  # fmt: skip
        figure.update_layout(title=name, height=280, margin={"t": 40, "b": 20})
        columns[n % 2].plotly_chart(figure, width="stretch")

st.subheader("Manage a run")
run_id = st.selectbox("Run", ids, key="manage")
folder = dirs[run_id]
history = workspace.versions(folder)
if history:
    version = st.selectbox("Recorded versions of its model", [v.version for v in history],
                           format_func=lambda v: v[:12])  # fmt: skip
    if st.button("Restore this version"):
        try:
            workspace.restore(folder, version)
        except ValueError as error:
            st.error(str(error))
        else:
            st.toast(f"Run {run_id} restored to {version[:12]}")
confirm = st.checkbox(f"Yes, delete run {run_id} and its checkpoints")
if st.button("Delete run", disabled=not confirm, type="secondary"):
    try:
        workspace.delete_run(folder)
    except (runs.RunError, ValueError) as error:
        st.error(str(error))
    else:
        session.notice(f"Run {run_id} deleted")
        st.rerun()
