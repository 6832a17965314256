"""The Model page's Profile tab: start a profile of the project's graph in its own process
(app.profile.launch), follow its progress, and draw the report (nodes by time, time and memory
per node, the batch-size what-if); also each node's share of time or memory, to colour the
canvas, and one node's figures, shown beside its code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.graph.canvas import escape_markdown
from app.graph.document import GraphDocument
from app.profile import fit, launch
from app.workspace import Workspace
from app.workspace.project import Project
from ui.charts import batch_whatif_figure, node_memory_figure, node_times_figure

HEAT = ("none", "time", "memory")


def folder_of(project: Project) -> Path:
    return project.folder / launch.FOLDER


def current_report(project: Project, doc: GraphDocument) -> dict[str, Any] | None:
    """The last profile, when it is of the graph as it is now."""
    found = launch.report(folder_of(project))
    return found if found and found.get("graph_key") == doc.content_key() else None


def heat(project: Project, doc: GraphDocument, mode: str) -> dict[str, float]:
    """Node id -> its share (0..1, of the largest node) of time or memory at the largest batch
    size of the profile of the graph as it is; empty without one or with mode none."""
    found = current_report(project, doc)
    if mode == "none" or found is None:
        return {}
    last = len(found["batch_sizes"]) - 1
    if mode == "time":
        values = {n["id"]: n["forward_ms"][last] + n["backward_ms"][last]
                  for n in found["nodes"] if n.get("forward_ms")}  # fmt: skip
    else:
        values = {n["id"]: n["memory"][last]["total"] for n in found["nodes"] if n["memory"][last]}
    top = max(values.values(), default=0)
    return {node: value / top for node, value in values.items()} if top > 0 else {}


def node_figures(project: Project, doc: GraphDocument, node_id: str) -> str | None:
    """One line of the node's profile at the largest batch size, or None."""
    found = current_report(project, doc)
    node = next((n for n in (found or {}).get("nodes", []) if n["id"] == node_id), None)
    if node is None or not node.get("forward_ms"):
        return None
    last = len(found["batch_sizes"]) - 1
    memory = node["memory"][last] or {}
    return (f"Profile at batch {found['batch_sizes'][last]}: forward "
            f"{node['forward_ms'][last]:.3f} ms, backward {node['backward_ms'][last]:.3f} ms "
            f"({node['share'][last]:.1%} of the step); memory "
            f"{memory.get('total', 0) / 1e6:.2f} MB")  # fmt: skip


def tab(project: Project, doc: GraphDocument, ready: bool) -> None:
    """The Profile tab's content; `ready`: the graph builds (no errors)."""
    folder = folder_of(project)
    left, right = st.columns([3, 1])
    sizes_text = left.text_input("Batch sizes", "1,8,32,128", key="profile:sizes")
    try:
        sizes, valid = fit.parse_batch_sizes(sizes_text), True
    except ValueError as error:
        sizes, valid = [], False
        left.error(f"Batch sizes: {escape_markdown(error)}")
    if right.button("Profile", icon=":material/speed:", disabled=not (ready and valid),
                    help="Times each node's forward and backward pass at these batch sizes, "
                         "in a separate process"):  # fmt: skip
        launch.start(folder, doc, Workspace.current().root, sizes)
    state = launch.state(folder)
    st.session_state["profile:seen"] = (state.get("state"), state.get("updated"))
    follow(folder)
    if state.get("state") == "failed":
        st.error(f"The profile failed: {escape_markdown(state.get('message', ''))}")
    found = launch.report(folder)
    if found is None:
        if state.get("state") != "running":
            st.caption("No profile yet: press Profile to time each node on this machine.")
        return
    if found.get("graph_key") != doc.content_key():
        st.caption("This profile is of an earlier version of the graph; profile again to see "
                   "the current one.")  # fmt: skip
    report(found)


@st.fragment(run_every=2)
def follow(folder: Path) -> None:
    """The running profile's progress; once it ends, the page again (with its report)."""
    state = launch.state(folder)
    if state.get("state") == "running":
        st.progress(min(max(state.get("fraction", 0.0), 0.0), 1.0),
                    text=f"Profiling: {escape_markdown(state.get('message', ''))}")  # fmt: skip
    elif (state.get("state"), state.get("updated")) != st.session_state.get("profile:seen"):
        st.rerun()


def report(found: dict[str, Any]) -> None:
    sizes = found["batch_sizes"]
    index = sizes.index(st.selectbox("At batch size", sizes, index=len(sizes) - 1,
                                     key="profile:batch"))  # fmt: skip
    whole = found["whole"][index]
    cells = st.columns(4)
    cells[0].metric("Training step", f"{whole['step_ms']:.2f} ms")
    cells[1].metric("Throughput", f"{whole['throughput']:,.0f}/s")
    cells[2].metric("Inference", f"{whole['inference_ms']:.2f} ms")
    gap = whole.get("gap")
    cells[3].metric("Nodes vs whole forward", "-" if gap is None else f"{gap:+.0%}",
                    help="How much of the whole model's forward time (net of the "
                         f"{whole['overhead_ms']:.3f} ms call overhead) the nodes' times leave "
                         "out")  # fmt: skip
    rows = [
        {"node": n["id"], "component": n["component"],
         "time ms": n["forward_ms"][index] + n["backward_ms"][index]
         if n.get("forward_ms") else None,
         "forward ms": n["forward_ms"][index] if n.get("forward_ms") else None,
         "backward ms": n["backward_ms"][index] if n.get("backward_ms") else None,
         "share of step": n["share"][index] if n.get("share") else None,
         **{f"{kind} MB": (n["memory"][index] or {}).get(kind, 0) / 1e6
            for kind in ("weights", "gradients", "optimizer", "activations")}}
        for n in found["nodes"]
    ]  # fmt: skip
    table = pd.DataFrame(rows).sort_values("time ms", ascending=False, na_position="last")
    st.dataframe(table, hide_index=True,
                 column_config={"share of step": st.column_config.ProgressColumn(
                     "share of step", format="percent", min_value=0, max_value=1)})  # fmt: skip
    for n in found["nodes"]:
        if note := n.get("unmeasured") or n.get("partial"):
            st.caption(f"{escape_markdown(n['id'])}: {escape_markdown(note)}")
    times, memory = st.columns(2)
    times.plotly_chart(node_times_figure(found["nodes"], index), key="profile:times")
    memory.plotly_chart(node_memory_figure(found["nodes"], index), key="profile:memory")
    st.plotly_chart(batch_whatif_figure(found), key="profile:whatif")
    for variant, tflite in (found.get("tflite") or {}).items():
        if "error" in tflite:
            st.caption(f"TFLite {variant}: {escape_markdown(tflite['error'])}")
        else:
            st.caption(f"TFLite {variant}: {tflite['latency_ms']:.3f} ms per sample on this CPU, "
                       f"{tflite['bytes'] / 1e3:,.1f} KB")  # fmt: skip
    st.caption(f"Measured in {found['seconds']:.0f} s. A node's times are its ops' in "
               "TensorFlow's profiler, per training step; the whole model's are wall-clock "
               "medians after warm-up. Memory is analytic: weights, gradients, optimizer slots "
               "and the activations kept for backward.")  # fmt: skip
