"""Train: the settings, Start / Pause / Resume / Stop, and the live charts of a run.

A run trains in its own process (app.workspace.runs); this page only reads its directory, so a
reload or a closed tab loses nothing: the page picks up the model's active run again."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from app.train import launch
from app.train.settings import TrainingSettings, TrainingSettingsError
from app.workspace import Workspace, runs
from app.workspace.events import read_events
from ui import charts, session
from ui.widgets import training_setting

st.title("Train")
current = session.require_project()
session.step_bar(current, "Train")
session.notice()

doc = session.require_data_and_sound_graph(current, "training")

MAIN = ("optimizer", "learning_rate", "schedule", "batch_size", "epochs", "patience", "seed")

saved = current.settings("training") or {}
with st.expander("Training settings", expanded=not Workspace.current().runs(model=doc.meta.name)):
    with st.form("training_settings"):
        defaults = TrainingSettings().model_dump()
        values = {**defaults, **saved}
        edited = {}
        columns = st.columns(len(MAIN))
        for column, name in zip(columns, MAIN, strict=True):
            with column:
                edited[name] = training_setting(name, values[name], f"train:{name}")
        with st.expander("More settings"):
            rest = [name for name in TrainingSettings.model_fields if name not in MAIN]
            columns = st.columns(3)
            for i, name in enumerate(rest):
                with columns[i % 3]:
                    edited[name] = training_setting(name, values[name], f"train:{name}")
        if st.form_submit_button("Save settings"):
            changed = {k: v for k, v in edited.items() if v != defaults[k]}
            try:
                TrainingSettings.from_dict(changed)
            except TrainingSettingsError as error:
                for message in error.messages:
                    st.error(message)
            else:
                current.save_settings("training", changed)
                st.toast("Training settings saved")

model_runs = Workspace.current().runs(model=doc.meta.name)
active = [row for row in model_runs if row["state"] in runs.ACTIVE]
start = st.button("Start training", type="primary", disabled=bool(active),
                  help="A run is active already" if active else None)  # fmt: skip
if start:
    try:
        folder = launch.create_run(doc, saved, current.dataset, command=["layerflow-app"])
        launch.start_run(folder)
    except (runs.RunError, TrainingSettingsError, ValueError) as error:
        messages = getattr(error, "problems", None) or getattr(error, "messages", None)
        for message in messages or [str(error)]:
            st.error(message)
    else:
        st.session_state.run = folder.name
        st.rerun()

if not model_runs:
    st.stop()

ids = [row["id"] for row in model_runs]
default = st.session_state.get("run")
if default not in ids:
    default = (active or model_runs)[0]["id"]
states = {row["id"]: row["state"] for row in model_runs}
run_id = st.selectbox(
    "Run", ids, index=ids.index(default), format_func=lambda i: f"{i} ({states[i]})"
)
st.session_state.run = run_id
run_dir = next(row["dir"] for row in model_runs if row["id"] == run_id)


def control(action, label: str) -> None:
    try:
        action(run_dir)
    except runs.RunError as error:
        st.error(str(error))
    else:
        session.notice(label)
        st.rerun()  # the whole page: whether it polls depends on the new state


polling = runs.status(run_dir)["state"] in runs.ACTIVE


@st.fragment(run_every=2 if polling else None)
def live() -> None:
    """Status, controls, progress and charts; refreshed every 2 s while the run is active,
    without rerunning the rest of the page."""
    status = runs.status(run_dir)
    state = status["state"]
    if (state in runs.ACTIVE) != polling:  # started or ended since the page was drawn
        st.rerun()
    buttons = st.columns(4)
    if buttons[0].button("Pause", disabled=state != "running"):
        control(runs.pause, "Pausing after this batch")
    if buttons[1].button("Resume", disabled=state not in ("paused", *runs.RESUMABLE)):
        if state == "paused":
            control(runs.resume, "Resuming")
        else:
            control(launch.resume_run, "Resuming from the last checkpoint")
    if buttons[2].button("Stop", disabled=state not in runs.ACTIVE):
        control(runs.stop, "Stopping after this batch, with a checkpoint")
    cache = st.session_state.setdefault("events", {})
    events, offset = cache.get(run_dir, ([], 0))
    new, offset = read_events(run_dir, offset=offset)
    events = events + new
    cache[run_dir] = (events, offset)

    epoch, epochs = status.get("epoch", 0), status.get("epochs") or 1
    last = next((e for e in reversed(events) if e["type"] in ("batch", "epoch")), None)
    eta = f", about {last['eta_s']:.0f} s left" if last and last.get("eta_s") else ""
    caption = f"{state}: epoch {epoch} of {epochs}{eta if state == 'running' else ''}"
    st.progress(min(epoch / epochs, 1.0), text=caption)
    if status.get("reason"):
        (st.error if state == "failed" else st.info)(status["reason"])
    for warning in [e for e in events if e["type"] == "warning"][-3:]:
        st.warning(warning["message"])
    if any(e["type"] in ("batch", "epoch") for e in events):
        st.plotly_chart(charts.training_figure(events), width="stretch", key=f"chart:{time.time()}")
    system = [e for e in events if e["type"] == "system"]
    if system:
        use = system[-1]
        st.caption(f"CPU {use['cpu_percent']:.0f}% · memory {use['memory_mb']:.0f} MB")
    if state == "finished":
        st.success(f"Finished; best {session.best_text(status.get('best'))}. "
                   "Continue with the test suite.")  # fmt: skip
        st.page_link(session.PAGES["test"], label="Go to Test", icon=":material/fact_check:")

    layers = charts.layer_names(events)
    if layers:
        with st.expander("Layers: weights, gradients, activations", expanded=False):
            picked = st.session_state.get("selected")  # the node selected on the Model page
            at = layers.index(picked) if picked in layers else 0
            layer = st.selectbox("Layer (node)", layers, index=at, key=f"layer:{picked}")
            for title, figure in charts.layer_figures(events, layer):
                st.caption(title)
                st.plotly_chart(figure, width="stretch", key=f"{title}:{time.time()}")
    epochs_table = [{"epoch": e["epoch"] + 1, **e["metrics"]} for e in events
                    if e["type"] == "epoch"]  # fmt: skip
    if epochs_table:
        st.dataframe(pd.DataFrame(epochs_table), hide_index=True)


live()
