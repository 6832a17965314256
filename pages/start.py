"""Start: a new project from a model template, an existing project, or an imported Keras model."""

# ruff: noqa: E402  (the engine is imported after the title, below)
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import streamlit as st

st.title("LayerFlow")
st.caption("A visual workspace for TensorFlow/Keras models.")

# After the title on purpose: this is the first page, and the browser draws its title while the
# engine loads (pydantic and the component catalogue, about 0.2 s on a 2-core machine).
from app.graph.analysis import analyze
from app.graph.canvas import escape_markdown
from app.graph.components.base import fmt_shape
from app.graph.document import load
from app.graph.model_templates import list_templates, load_template
from app.paths import NAME_PATTERN
from app.workspace import Workspace
from ui import jobs, session
from ui.uploads import save_upload

session.notice()

current = session.project()
if current is not None:
    session.step_bar(current, "Start")
    st.page_link(
        session.PAGES["data"], label="Continue with the data", icon=":material/arrow_forward:"
    )


def suggested_name(title: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", title).strip("-").lower() or "project"
    taken, name, n = set(Workspace.current().projects()), base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def layer_table(rows: list[dict]) -> str:
    """The template's layers as a Markdown table: drawn without pandas, so the first page a new
    user sees does not wait for it (st.dataframe would load it, and a grid in the browser)."""
    lines = ["| Node | Component | Output shape | Parameters |", "|---|---|---|---:|"]
    for row in rows:
        shape = fmt_shape(row["output_shape"]) if row["output_shape"] else "-"
        cells = (row["label"] or row["id"], row["component"], shape, f"{row['params'] or 0:,}")
        lines.append("| " + " | ".join(escape_markdown(cell) for cell in cells) + " |")
    return "\n".join(lines)


def create(name: str, doc) -> None:
    """Create the project (its model named after it, so that its runs are its own) and open it."""
    if not re.fullmatch(NAME_PATTERN, name):
        st.error(f"Project name {name!r}: use a letter, then letters, digits, _ or - (64 at most).")
        return
    doc = doc.model_copy(deep=True)
    doc.meta.name = name
    try:
        Workspace.current().create_project(name, doc)
    except ValueError as error:
        st.error(str(error))
        return
    session.open_(name)
    session.notice(f"Project {name} created")
    st.switch_page(session.PAGES["data"])


def new_project() -> None:
    """A template's graph, its layers and code, and a name for the new project."""
    templates = list_templates()
    names = [t.name for t in templates]
    choice = st.selectbox(
        "Model template",
        names,
        index=names.index("image_classification"),
        format_func=lambda name: next(t.title for t in templates if t.name == name),
    )
    info = next(t for t in templates if t.name == choice)
    st.write(info.description)
    st.caption(f"Expects: {info.expects}")
    analysis = analyze(load_template(choice))
    st.markdown(f"**{len(analysis.doc.nodes)} nodes, {analysis.totals()['params']:,} parameters**")
    st.markdown(layer_table(analysis.rows()))
    code = st.expander("Generated Keras code", key="start_code", on_change="rerun")
    if code.open:
        from app.graph.codegen import generate_module  # Jinja: only when the code is asked for

        code.code(generate_module(analysis), language="python")
    with st.form("new_project"):
        name = st.text_input("Project name", suggested_name(info.name))
        if st.form_submit_button("Create project", type="primary"):
            create(name.strip(), load_template(choice))


def open_existing() -> None:
    """A project already in the workspace."""
    names = Workspace.current().projects()
    if not names:
        st.caption(f"No projects yet in {Workspace.current().root}.")
    else:
        chosen = st.selectbox("Project", names)
        if st.button("Open", type="primary"):
            session.open_(chosen)
            session.notice(f"Project {chosen} opened")
            st.switch_page(session.PAGES["model"])


def import_model() -> None:
    """A Keras model file read into a graph in a child process (Keras loads there)."""
    st.write("A `.keras`, `.h5` or Keras JSON model becomes an editable graph.")
    with st.form("import_model"):
        upload = st.file_uploader("Keras model", type=["keras", "h5", "json"])
        name = st.text_input("Project name", "imported-model")
        flat = st.checkbox("One node per layer", help="Leave repeated motifs unfolded: no blocks.")
        submitted = st.form_submit_button("Import", type="primary")
    if submitted and upload is None:
        st.error("Choose a .keras, .h5 or .json file to import.")
    elif submitted:
        with tempfile.TemporaryDirectory() as folder:
            model_path = save_upload(upload, Path(folder), "model")
            graph_path = Path(folder) / "graph.json"
            with st.spinner("Reading the model (this loads Keras in a separate process)..."):
                flag = ["--flat"] if flat else []
                outcome = jobs.layerflow(
                    "import-keras", str(model_path), "-o", str(graph_path), *flag
                )
            if outcome.ok:
                create(name.strip(), load(graph_path, strict=False))
            else:
                st.error(f"{upload.name}: {outcome.output}")


# Only the open tab, and the code expander when open, run (on_change="rerun"): so the first page
# a new user sees draws without the code highlighter, the file uploader or Jinja.
tabs = st.tabs(
    ["New project", "Open a project", "Import a Keras model"], key="start_tab", on_change="rerun"
)
for tab, draw in zip(tabs, (new_project, open_existing, import_model), strict=True):
    if tab.open:
        with tab:
            draw()
