"""Search: the graph's search space (edited, or proposed from the graph), a new search of it,
and each search of the model followed live: its trials, optimisation history, parameter
importances and the Pareto front of the metric against a cost, whose points open their trial's
graph and charts; "Use this trial" makes a trial the project's model.

Trials train in worker processes (app.search); this page reads the study, so a reload, a closed
tab or a server restart loses nothing."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from app.graph.analysis import analyze
from app.graph.canvas import escape_markdown
from app.graph.space import propose, space_problems
from app.search import launch
from app.search import study as studies
from app.search.spec import COST_UNITS, Constraint, Objective
from app.search.study import SearchError
from app.train.settings import TrainingSettings, log_names
from app.workspace import Workspace
from app.workspace.events import read_events
from ui import charts, flow, session
from ui import search as parts
from ui.flow_component import streamlit_flow

st.title("Search")
current = session.require_project()
session.step_bar(current, "Search")
session.notice()
root = Workspace.current().root

doc = session.require_data_and_sound_graph(current, "searching")
settings = TrainingSettings.from_dict(current.settings("training") or {})

# The space

st.subheader("What to search")
st.caption("Each row is a setting the trials vary: `node.setting` (a node's setting), "
           "`block/node.setting` (a setting inside a block, for every use of it), "
           "`training.name` (a training setting) or `optional.node` (a node a trial may leave "
           "out). A range has low and high (log for a log scale, step for steps); choices are "
           'a JSON list, such as `[32, 64, 128]` or `["relu", "gelu"]`.')  # fmt: skip
left, right = st.columns([4, 1])
with right:
    if st.button("Propose a space", icon=":material/auto_awesome:",
                 help="Widths halved and doubled, dropout rates from 0 to 0.5, Block repeats, "
                      "and the learning rate on a log scale"):  # fmt: skip
        session.commit(current, doc.model_copy(update={"search": propose(doc)}))
        session.notice("A space was proposed from the graph (Undo on the Model page takes it "
                       "back)")  # fmt: skip
        st.rerun()
    if doc.search is not None and st.button("Clear the space", icon=":material/clear:"):
        session.commit(current, doc.model_copy(update={"search": None}))
        st.rerun()
with left:
    edited = st.data_editor(
        parts.space_table(doc.search), num_rows="dynamic", hide_index=True, width="stretch",
        key=f"space:{doc.content_key()}",
        column_config={"kind": st.column_config.SelectboxColumn(
            options=["range", "choices", "optional"], required=True)},
    )  # fmt: skip
    if st.button("Save the space", icon=":material/save:"):
        space, problems = parts.space_from_table(edited)
        if space is not None:
            candidate = doc.model_copy(update={"search": space})
            problems = [p.message for p in space_problems(candidate)]
        for problem in problems:
            st.error(escape_markdown(problem))
        if not problems:
            session.commit(current, candidate)
            session.notice("Search space saved")
            st.rerun()
for problem in space_problems(doc):
    st.warning(escape_markdown(problem.message))
searchable = doc.search is not None and bool(parts.described_space(doc.search))

# A new search

st.subheader("New search")
names = log_names(settings, doc)
metrics = [f"val_{n}" for n in names] + names
default = launch.default_for(doc, settings, current.dataset)
with st.form("new_search"):
    cells = st.columns(4)
    trials = cells[0].number_input("Trials", 1, 1000, 20)
    workers = cells[1].number_input("Workers", 1, max(1, os.cpu_count() or 1), 1,
                                    help="Trial processes side by side on this machine")
    epochs = cells[2].number_input("Epochs per trial", 1, 10_000, settings.epochs)
    metric = cells[3].selectbox("Metric", metrics, index=metrics.index(default.metric)
                                if default.metric in metrics else 0)  # fmt: skip
    cells = st.columns(4)
    direction = cells[0].segmented_control(
        "Best is", ["maximize", "minimize"], default=default.direction)
    cost = cells[1].selectbox(
        "Cost to minimise too", ["none", *COST_UNITS],
        help="With a cost, NSGA-II searches the front of the metric against it; without, TPE "
             "and the median pruner search the metric alone")  # fmt: skip
    max_params = cells[2].number_input("At most parameters (0: no limit)", 0, value=0)
    max_latency = cells[3].number_input("At most ms per sample (0: no limit)", 0.0, value=0.0)
    start = st.form_submit_button("Start search", type="primary", icon=":material/travel_explore:",
                                  disabled=not searchable)  # fmt: skip
if not searchable:
    st.caption("Give the search a space first: Propose a space, or add rows above.")
if start:
    limits = [Constraint(measure="params", limit=max_params)] if max_params else []
    limits += [Constraint(measure="latency", limit=max_latency)] if max_latency else []
    try:
        spec = launch.start_search(
            root, doc, current.dataset, int(trials), settings.with_changes(epochs=int(epochs)),
            objective=Objective(metric=metric, direction=direction or default.direction),
            cost=None if cost == "none" else cost, constraints=limits, workers=int(workers),
        )  # fmt: skip
    except (SearchError, ValueError) as error:
        for problem in getattr(error, "problems", [str(error)]):
            st.error(escape_markdown(problem))
    else:
        st.session_state["search:study"] = spec.name
        st.toast(f"Search {spec.name} started")

# The model's searches

st.subheader("Searches")
mine = [row for row in studies.list_studies(root) if row.get("model") == doc.meta.name]
if not mine:
    st.caption("No searches of this model yet.")
    st.stop()
names = [row["name"] for row in mine]
last = st.session_state.get("search:study")
name = st.selectbox("Search", names, index=names.index(last) if last in names else 0,
                    format_func=lambda n: f"{n} ({next(r for r in mine if r['name'] == n)['state']}"
                    f", {next(r for r in mine if r['name'] == n)['done']} trials)")  # fmt: skip
st.session_state["search:study"] = name


def progress(name: str) -> None:
    """The study's state and progress; once a running study ends, the page again."""
    found = studies.summary(root, name)
    st.progress(min(found["done"] / found["trials"], 1.0),
                text=f"{found['state']}: {found['done']} of {found['trials']} trials trained; "
                f"{found['skipped']} more pruned before training "
                f"({len(found['workers'])} worker(s) here)")  # fmt: skip
    seen = st.session_state.get("search:seen")
    st.session_state["search:seen"] = (name, found["state"], found["done"])
    if seen is not None and seen[0] == name and seen[1:] != (found["state"], found["done"]):
        st.rerun()  # a trial ended: the tables and figures again


found = studies.summary(root, name)
running = found["state"] == "running"
st.fragment(progress, run_every=2 if running else None)(name)
buttons = st.columns(4)
if running and buttons[0].button("Stop search", icon=":material/stop:"):
    studies.stop(root, name)
    st.toast("No new trials will start; the running ones stop after their batch")
if found["state"] in ("stopped", "interrupted") and buttons[0].button(
        "Resume search", icon=":material/play_arrow:"):  # fmt: skip
    try:
        studies.resume(root, name, 1)
    except SearchError as error:
        st.error(escape_markdown(str(error)))
    else:
        st.rerun()
st.caption(escape_markdown(
    f"Objective {found['objective']}" + (f", cost {found['cost']}" if found["cost"] else "")
    + (f"; constraints {', '.join(found['constraints'])}" if found["constraints"] else "")
    + f"; storage {found['storage']}"))  # fmt: skip

if not found["rows"]:
    st.caption("No trials yet: the workers are starting.")
    st.stop()
st.dataframe(parts.trials_frame(found), hide_index=True, width="stretch")
study, spec = studies.load(root, name)
metric = spec.objective.metric
left, right = st.columns(2)
left.plotly_chart(parts.history_figure(study, metric), key="search:history")
importances = parts.importances_figure(study, metric)
if importances is None:
    right.caption("Parameter importances appear once two trials are complete.")
else:
    right.plotly_chart(importances, key="search:importances")

shown_cost = spec.cost or studies.DEFAULT_COST
cost = st.segmented_control("Pareto front against", list(COST_UNITS), default=shown_cost,
                            key="search:cost")  # fmt: skip
cost = cost or spec.cost or studies.DEFAULT_COST
front = studies.pareto(study, spec, cost)
clicked = st.plotly_chart(parts.pareto_figure(found, front, cost), key="search:pareto",
                          on_select="rerun", selection_mode="points")  # fmt: skip
picked = [p.get("customdata") for p in (clicked.selection.points if clicked else [])]
numbers = [row["trial"] for row in found["rows"]]
if picked and picked[0] in numbers:
    st.session_state["search:trial"] = picked[0]
default_trial = st.session_state.get("search:trial", found["best"])
trial_number = st.selectbox(
    "Trial", numbers, index=numbers.index(default_trial) if default_trial in numbers else 0,
    help="Or click a point of the front")  # fmt: skip
row = next(r for r in found["rows"] if r["trial"] == trial_number)

# One trial

st.markdown(f"**Trial {trial_number}**: {row['state']}"
            + (f" — {escape_markdown(row['reason'])}" if row.get("reason") else ""))  # fmt: skip
st.dataframe(pd.DataFrame([{"value": parts.plain(v)} for v in row["values"].values()],
                          index=list(row["values"])), width="stretch")  # fmt: skip
graph, changes = launch.use_trial(root, name, trial_number)
if st.button("Use this trial", type="primary", icon=":material/check:",
             help="Makes the trial's graph and training settings the project's model; Undo on "
                  "the Model page restores the graph"):  # fmt: skip
    before = current.settings("training") or {}
    session.commit(current, graph)
    current.save_settings("training", changes)
    was = ", ".join(f"{k} {before.get(k, '(default)')}" for k in changes if before.get(k)
                    != changes[k]) or "unchanged"  # fmt: skip
    session.notice(f"Trial {trial_number} of {name} is now the model; training settings before: "
                   f"{was}")  # fmt: skip
    st.rerun()
graph_tab, charts_tab = st.tabs(["Graph", "Training"])
with graph_tab:
    st.caption("The trial's graph (read only).")
    streamlit_flow(f"search:graph:{name}:{trial_number}",
                   flow.flow_state(analyze(graph), editable=False),
                   height=460, fit_view=True, hide_watermark=True)  # fmt: skip
with charts_tab:
    run_dir = studies.run_folder(root, row.get("run_dir"))
    if run_dir is not None:
        events, _ = read_events(run_dir)
        st.plotly_chart(charts.training_figure(events), key=f"search:run:{row['run']}")
    else:
        st.caption("This trial did not train (it was pruned before training).")
