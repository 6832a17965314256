"""The state every page shares: the open project, its graph's undo history, the step bar.

Keys in st.session_state (set up here and nowhere else):
  project   the open project's name, mirrored in the URL (?project=NAME) so that a reload or a
            second tab opens the same project
  history   project name -> its graph's undo history (app.graph.edit.History) and the text of
            its graph file as the session last read or wrote it
  notice    a one-line message to show once on the next page (after a switch)
  run       the id of the run chosen last (on the Train, Test, Export or Predict page), which
            the next of these pages starts at

The project's files in the workspace are the truth: every change is saved at once, and the
session holds nothing that a reload could not rebuild from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from app.graph.analysis import Analysis, analyze
from app.graph.canvas import escape_markdown
from app.graph.document import GraphDocument
from app.graph.edit import History
from app.workspace import Workspace
from app.workspace.project import Project
from ui.nav import PAGES  # the pages link to each other through session.PAGES

if TYPE_CHECKING:  # pandas comes with it; see progress()
    from app.workspace.datasets import Dataset


def project() -> Project | None:
    """The open project: the session's, else the URL's; None when there is none."""
    name = st.session_state.get("project") or st.query_params.get("project")
    workspace = Workspace.current()
    if not name or name not in workspace.projects():
        return None
    st.session_state.project = name
    st.query_params["project"] = name
    return workspace.project(name)


def open_(name: str) -> None:
    st.session_state.project = name
    st.query_params["project"] = name


def require_project() -> Project:
    """The open project, or a pointer to the Start page and the end of this page's script."""
    current = project()
    if current is None:
        st.info("Open or create a project first.")
        if "start" in PAGES:
            st.page_link(PAGES["start"], label="Go to Start", icon=":material/home:")
        st.stop()
    return current


@dataclass
class _Kept:
    """A project's undo history, and the text of its graph file as this session last read or
    wrote it: while the file still reads so, the history is current without reading the graph
    again (10 ms an edit on an imported NASNetMobile, twice)."""

    history: History
    text: str | None  # None while a write is under way, or after one failed


def history(current: Project) -> History:
    """The undo history of the project's graph, started from its saved graph."""
    histories = st.session_state.setdefault("history", {})
    text = current.graph_text()
    kept = histories.get(current.name)
    if kept is not None and kept.text == text:
        return kept.history
    saved = current.graph(text)
    if kept is None or kept.history.doc != saved:  # a new session; another tab or the CLI
        kept = histories[current.name] = _Kept(History(saved), text)  # changed the graph
    kept.text = text
    return kept.history


def commit(current: Project, doc: GraphDocument) -> None:
    """Make `doc` the project's graph: saved at once, and one step of undo. Code the user wrote
    or changed in this edit is trusted (app.trust); code that came with a shared graph is not."""
    kept = history(current)
    before = _codes(kept.doc)
    Workspace.current().trust(code for code in _codes(doc) if code not in before)
    kept.push(doc)
    save(current, doc)


def save(current: Project, doc: GraphDocument) -> None:
    """Write `doc`, which the history holds as current (a commit, an undo), as the project's
    graph. Until the write has succeeded the history is not taken as the file's: after a
    failed one the next run reads the file again and starts a history from it."""
    kept = st.session_state.setdefault("history", {}).get(current.name)
    if kept is not None:
        kept.text = None
    text = current.save_graph(doc)
    if kept is not None:
        kept.text = text


def _codes(doc: GraphDocument) -> set[str]:
    nodes = doc.all_nodes()
    return {n.code for n in nodes if n.code is not None}


def require_data_and_sound_graph(current: Project, doing: str) -> GraphDocument:
    """The project's graph, when it has a dataset and the graph no errors; else a pointer to
    the Data or Model page and the end of this page's script (`doing`: "training", ...)."""
    doc = current.graph()
    if current.dataset is None:
        st.info("Choose the project's dataset first.")
        st.page_link(PAGES["data"], label="Go to Data", icon=":material/table:")
        st.stop()
    if analyze(doc).errors:
        st.info(f"The graph has errors; fix them before {doing}.")
        st.page_link(PAGES["model"], label="Go to Model", icon=":material/account_tree:")
        st.stop()
    return doc


def configure_from_data(current: Project, dataset: Dataset, doc: GraphDocument) -> None:
    """Set the graph's inputs and outputs from the dataset, as one step of undo; say what
    changed after the rerun that follows."""
    configured, changes = dataset.configure(doc)
    commit(current, configured)
    notice("; ".join(changes) or "The model already fits the data")
    st.rerun()


def notice(message: str | None = None) -> None:
    """Show the pending notice (and set a new one to show after the next rerun)."""
    pending = st.session_state.pop("notice", None)
    if pending:
        st.toast(pending)
    if message:
        st.session_state.notice = message


@dataclass
class Progress:
    """How far the project has come, for the step bar."""

    analysis: Analysis
    dataset: str | None
    finished_run: dict | None
    tested: bool
    exported: bool
    searched: bool = False

    def steps(self) -> list[tuple[str, bool, str]]:
        """(step, done, what is missing) in wizard order."""
        errors = len(self.analysis.errors)
        return [
            ("Start", True, ""),
            ("Data", self.dataset is not None, "choose a dataset"),
            ("Model", errors == 0, f"fix {errors} error(s) in the graph"),
            ("Search", self.searched, ""),  # optional: nothing is missing without one
            ("Train", self.finished_run is not None, "finish a training run"),
            ("Test", self.tested, "test the latest run"),
            ("Export", self.exported, "export the model"),
        ]


def progress(current: Project, analysis: Analysis | None = None) -> Progress:
    """How far the project has come; `analysis`: of its saved graph without data facts, when
    the page has it already (the Model page: it takes 20 ms on the folded NASNetMobile)."""
    # Imported here, not at the top: they bring numpy and pandas, which the Start page of a new
    # user does not need and which would delay its first drawing by about half a second.
    from app.evaluate import suite as testsuite
    from app.export import records

    analysis = analysis or analyze(current.graph())
    model = analysis.doc.meta.name
    model_runs = Workspace.current().runs(model=model)
    finished = next((row for row in model_runs if row["state"] == "finished"), None)
    return Progress(
        analysis=analysis,
        dataset=current.dataset,
        finished_run=finished,
        tested=finished is not None and testsuite.read_report(finished["dir"]) is not None,
        exported=bool(records.list_exports(model)),
        searched=any(row.get("search") for row in model_runs),
    )


def step_bar(current: Project, step: str, analysis: Analysis | None = None) -> None:
    """One line: each step done or not, this one highlighted, and what the next step needs
    (`analysis`: see `progress`)."""
    steps = progress(current, analysis).steps()
    parts = []
    for name, done, _ in steps:
        mark = ":green[✓]" if done else "○"
        parts.append(f"**{name}** {mark}" if name == step else f"{name} {mark}")
    st.markdown(f"Project **{escape_markdown(current.name)}** — " + " → ".join(parts))
    names = [name for name, _, _ in steps]
    here = names.index(step) if step in names else 0
    missing = [need for name, done, need in steps[: here + 2] if not done and need]
    if missing:
        st.caption("Still to do: " + "; ".join(missing))


def choose_finished_run(current: Project) -> Path:
    """A select of the project's finished runs (newest first), starting at the session's run
    when it is one of them, and the chosen run's directory; without one, a pointer to the Train
    page and the end of the page's script."""
    model = current.graph().meta.name
    runs = Workspace.current().runs(model=model)
    finished = [row for row in runs if row["state"] == "finished"]
    if not finished:
        st.info("Finish a training run first.")
        st.page_link(PAGES["train"], label="Go to Train", icon=":material/model_training:")
        st.stop()
    ids = [row["id"] for row in finished]
    last = st.session_state.get("run")
    run_id = st.selectbox("Run", ids, index=ids.index(last) if last in ids else 0)
    st.session_state.run = run_id
    return Path(next(row["dir"] for row in finished if row["id"] == run_id))


def best_text(best: dict | None) -> str:
    """A run's best checkpoint in words: "val_loss 0.4123 at epoch 7"."""
    if not best or best.get("value") is None:
        return "-"
    return f"{best.get('monitor')} {best['value']:.4g} at epoch {best.get('epoch')}"
