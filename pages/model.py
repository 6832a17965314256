"""Model: the graph editor. The canvas draws the project's graph; every change (a move, a drawn
or deleted edge, a deleted node, a setting, a fix) goes through app.graph.edit and is saved at
once."""

from __future__ import annotations

import functools
import hashlib
import json

import streamlit as st

from app.data.autoconfig import facts
from app.errors import one_line
from app.graph import canvas
from app.graph.analysis import analyze, with_data
from app.graph.codegen import generate_module, node_snippet
from app.graph.components import CATALOGUE
from app.graph.components.base import fmt_count, fmt_shape
from app.graph.edit import (
    EditError,
    add_node,
    apply_fix,
    connect,
    expand_block,
    inside,
    make_block,
    palette,
    set_code,
    set_label,
    set_settings,
    with_inside,
)
from app.graph.layout import layered_layout
from app.graph.shapes import untrusted_nodes
from app.workspace import Workspace
from ui import flow, profile, session
from ui.flow_component import streamlit_flow
from ui.widgets import (
    InvalidJSON,
    component_setting,
    problem_box,
    read_setting,
    setting_kind,
)

st.title("Model")
workspace = Workspace.current()
current = session.require_project()
history = session.history(current)
doc = history.doc
checked = analyze(doc)  # the graph alone, as the step bar and the other pages judge it

dataset = workspace.dataset(current.dataset) if current.dataset else None
data_facts = facts(dataset.meta, len(dataset.splits["train"])) if dataset else None
analysis = with_data(checked, data_facts)
untrusted = untrusted_nodes(doc)


def signature_of(graph) -> str:
    """Changes with the graph, and when trusting its code lets shapes be found: the canvas and
    the node widgets are drawn again (new keys) when it does."""
    seen = graph.model_dump_json() + "".join(n.id for n in untrusted_nodes(graph))
    return hashlib.sha1(seen.encode()).hexdigest()[:12]


signature = signature_of(doc)


# The canvas shows the graph, or the inside of one of its blocks (opened from a Block node).
OPEN = f"open_block:{current.name}"  # the block open on the canvas, per project
open_block = st.session_state.get(OPEN)
if open_block not in doc.blocks:
    open_block = st.session_state[OPEN] = None
view = analysis.inside(open_block) if open_block else analysis


def shown_in(graph):
    """What the canvas shows of `graph`: the graph, or the open block's inside."""
    return inside(graph, open_block) if open_block else graph


def put(edited, graph=doc):
    """`graph` (by default the project's graph as this run drew it) with `edited` in place of
    what the canvas shows."""
    return with_inside(graph, open_block, edited) if open_block else edited


def in_shown(edit):
    """`edit(shown, *args)`, an edit of what the canvas shows, as an edit of the whole graph
    for `on_click`: `edited(graph, *args)`. Nothing changes once another tab has expanded or
    removed the open block: the next run shows the graph."""

    def edited(graph, *args):
        if open_block and open_block not in graph.blocks:
            return None
        made = edit(shown_in(graph), *args)
        return None if made is None else put(made, graph)

    return edited


shown = shown_in(doc)  # what the canvas and the panels edit


REFUSED = "model:refused"  # (where, why) the last edit made by a callback was refused: shown
refused = st.session_state.pop(REFUSED, None) or (None, "")  # there, in the run that follows


def say_refused(where: str) -> None:
    """The last edit's refusal, when it was asked for `where` ("panel", "code", "blocks")."""
    if refused[0] == where:
        st.error(refused[1])


def panel_key(node_id: str, field: str, value) -> str:
    """A node panel widget's key. It changes when the value the widget shows does (an edit, an
    undo, another tab), so the widget is drawn anew with the graph's value; and only then, so
    the panel's other widgets stay as they are, with what the user is typing in them."""
    shown = json.dumps(value, sort_keys=True, default=repr)
    digest = hashlib.sha1(shown.encode()).hexdigest()[:12]
    return f"panel:{open_block or ''}:{node_id}:{field}:{digest}"


def field_of(node, field: str):
    return node.label if field == "label" else node.settings.get(field)


def on_change(key: str, edit, node_id: str, component: str, field: str, drawn) -> None:
    """A node panel widget's on_change: `edit(graph, what it holds)` on what the canvas shows of
    the graph as it is now (see `on_click`).

    Only an edit of the value the graph still holds counts (`drawn`, the node's label or raw
    setting when the widget was drawn, on a node of `component`): not one made on a value
    another tab has changed since (or on a node it replaced by another of the same id),
    nor one the browser sends from a widget of an earlier run (a number input still focused
    when Undo is clicked sends its value again). An edit that changes nothing does not count
    either: it would only cut the redo history."""

    def edited(graph):
        node = next((n for n in graph.nodes if n.id == node_id), None)
        if node is None or node.component != component or field_of(node, field) != drawn:
            return None
        return edit(graph, st.session_state[key])

    on_click(in_shown(edited))


def on_click(edit, *args, message: str | None = None, where: str = "panel") -> None:
    """A button's or widget's callback: `edit(graph, *args)`, the whole graph edited (None:
    nothing to change), saved before the run that draws it, so that one run shows it (not two,
    as an edit made while the page draws would take: that one, then a rerun). A refused edit
    says why in that run, `where` it was asked (`say_refused`); `message` is said after a
    change.

    `graph` is the project's graph as it is saved now, not as this run drew it: the browser
    sends every change the user made before the next run in one rerun (a setting typed, then
    a button pressed), and each callback builds on the one before."""
    now = session.history(current).doc
    try:
        edited = edit(now, *args)
    except InvalidJSON:
        return  # a JSON setting's widget says so itself, in the run that follows
    except (EditError, ValueError) as error:
        st.session_state[REFUSED] = (where, str(error))
        return
    if edited is not None and edited != now:
        try:
            session.commit(current, edited)
        except OSError as error:  # a full disk, say: the page shows the graph as saved
            st.session_state[REFUSED] = (where, f"The graph was not saved: {error}")
            return
        if message:
            session.notice(message)


def step(way: str) -> None:
    """Undo's or Redo's on_click (`way`), on the history as it is now: after a change another
    tab saved since this run drew the buttons, that change is not undone from here."""
    now = session.history(current)
    if getattr(now, f"can_{way}"):
        session.save(current, getattr(now, way)())


def problems_of(analysed, graph) -> list:
    """What the Problems tab lists: `graph`'s problems (`analysed`, with the data's rules) and
    where it and the dataset disagree."""
    return list(analysed.problems) + (dataset.mismatches(graph) if dataset else [])


def fixed(now, fix):
    """`now` with a problem's `fix` applied, if a problem of `now` still offers it (another tab
    may have changed or replaced its node since the fix was drawn)."""
    found = problems_of(with_data(analyze(now), data_facts), now)
    if fix not in [problem.fix for problem in found]:
        raise EditError(f"{fix.description}: the graph no longer has that problem")
    return apply_fix(now, fix)


def show(block: str | None, node: str | None) -> None:
    """A button's on_click: the canvas shows the graph (`block` None) or a block's inside, with
    `node` selected, in the run that follows (one run, not two)."""
    st.session_state[OPEN] = block
    st.session_state.selected = node


selected = st.session_state.get("selected")
if selected not in {node.id for node in shown.nodes}:
    selected = None

# The step bar and the toolbar, then the palette, the canvas and the node panel side by side,
# then the tabs. The canvas is drawn first: the browser draws what reaches it in order, and an
# edit then shows on the canvas before the rest of the page is drawn again (0.06 s sooner on
# the folded NASNetMobile, README).
header = st.container()
left, middle, right = st.columns([1, 5, 1.7])

# Canvas

with middle:
    if open_block:
        top = st.columns([3, 1])
        users = [n.id for n in doc.nodes
                 if n.component == "Block" and n.settings.get("block") == open_block]  # fmt: skip
        with_params = [u for u in users if analysis.settings.get(u, {}).get("params")]
        top[0].markdown(f"Inside block **{canvas.escape_markdown(open_block)}**, used by "
                        + (", ".join(canvas.escape_markdown(u) for u in users) or "no node")
                        + ": an edit here changes every use"
                        + (f", except the settings that the params of "
                           f"{', '.join(canvas.escape_markdown(u) for u in with_params)} set "
                           "for them" if with_params else "") + ".")  # fmt: skip
        top[1].button("Back to the model", icon=":material/arrow_upward:", width="stretch",
                      on_click=show, args=(None, users[0] if users else None))  # fmt: skip
        colouring, heat = "category", {}
    else:
        colouring = st.segmented_control(
            "Colour nodes by", flow.COLOURINGS, default="category", key="canvas:colour",
            help="Time and memory: each node's share in the profile of the graph as it is "
                 "(Profile tab).",
        ) or "none"  # fmt: skip
        heat = profile.heat(current, doc, colouring if colouring in profile.HEAT else "none")
    # One canvas per project and open block, mounted once: the view is fitted then, and a change
    # made beside it (a setting, a fix, undo, a selection) is sent as a new state (ui.flow), so
    # the user's zoom and pan stay.
    kept = flow.Canvas.kept(st.session_state, f"{current.name}:{open_block or ''}")
    for message in kept.refused:  # what the graph refused of the canvas's last change
        st.error(message)
    kept.refused = []
    mounting = kept.mounting(st.session_state)
    kept.draw(
        (signature, selected, colouring, tuple(sorted(heat.items()))),
        lambda version, after: flow.flow_state(view, selected, heat, version=version, after=after,
                                               by_category=colouring == "category"),
        mounting,
    )  # fmt: skip
    returned = streamlit_flow(
        kept.key,
        kept.state,
        height=760,
        fit_view=mounting,
        show_minimap=len(shown.nodes) > 30,
        min_zoom=0.05,  # fit-to-view shows all of a large graph; the minimap shows where you are
        allow_new_edges=True,
        get_node_on_click=True,
        enable_node_menu=True,
        enable_edge_menu=True,
        hide_watermark=True,
    )
    if colouring == "category":
        st.html(flow.category_legend(view))
    answer = kept.answer(returned)
    if answer is not None:
        if answer.selected_id and answer.selected_id != selected:
            st.session_state.selected = selected = answer.selected_id
            kept.resend = True  # drawn again: its details, and the shapes on its edges
        result = canvas.apply_changes(
            shown,
            {node.id: (node.position["x"], node.position["y"]) for node in answer.nodes},
            [(edge.source, edge.target) for edge in answer.edges],
        )
        if result.changed:
            session.commit(current, put(result.doc))
            kept.resend = True  # drawn again at the end of this run: a click below is not lost
        if result.errors:  # shown after the rerun, with the canvas as the graph is
            kept.refused = result.errors
            kept.restore()

# Step bar and toolbar

with header:
    session.step_bar(current, "Model", checked)
    session.notice()
    bar = st.columns([1.3, 1.3, 1.7, 2.2, 1.6, 4.5])
    bar[0].button("Undo", disabled=not history.can_undo, icon=":material/undo:",
                  on_click=step, args=("undo",))  # fmt: skip
    bar[1].button("Redo", disabled=not history.can_redo, icon=":material/redo:",
                  on_click=step, args=("redo",))  # fmt: skip
    bar[2].button("Re-layout", icon=":material/account_tree:",
                  on_click=on_click,
                  args=(in_shown(layered_layout),))  # fmt: skip
    totals = analysis.totals()
    bar[3].metric("Parameters", f"{totals['params']:,}")
    bar[4].metric("FLOPs", fmt_count(totals["flops"]), help=f"{totals['flops']:,}")
    errors = len(analysis.errors)
    bar[5].caption(
        f"{len(doc.nodes)} nodes, {len(doc.edges)} edges, {len(doc.blocks)} blocks; {errors} "
        f"error(s), {sum(p.level == 'warning' for p in analysis.problems)} warning(s). "
        "Drag from a node's lower handle to another node to connect; select a node or edge and "
        "press Backspace to delete it."
    )

    # A shared graph's code runs only once trusted: shown first, then trusted on request.
    if untrusted:
        with st.expander(
            f"{len(untrusted)} node(s) carry code this workspace does not trust yet; it has not "
            "run",
            expanded=True,
            icon=":material/gpp_maybe:",
        ):
            st.caption(
                "This graph came from elsewhere. Read the code below; once trusted, LayerFlow runs "
                "it to find shapes and to build, train and export the model."
            )
            for node in untrusted:
                name = canvas.escape_markdown(node.id)
                component = canvas.escape_markdown(node.component)
                st.markdown(f"**{name}** ({component})")
                st.code(node.code or "", language="python")
            if st.button("Trust this code", icon=":material/verified_user:"):
                workspace.trust(node.code or "" for node in untrusted)
                session.notice("Code trusted")
                st.rerun()


# Palette

with left:
    st.subheader("Add")
    query = st.text_input("Search components", placeholder="conv, dropout, lstm...")
    groups = palette(query)

    def added(graph, component: str):
        """`graph` with the component added after the selected node (fed from it when it can
        be) and laid out; the new node is selected and named after the run."""
        new_doc, new_id = add_node(graph, component)
        if selected is not None:
            try:
                new_doc = connect(new_doc, selected, new_id)
            except EditError:
                pass
        st.session_state.selected = new_id
        session.notice(f"Added {new_id}")
        return layered_layout(new_doc)

    # Only an open category draws its buttons: all of them, with their tooltips, took the
    # browser about 0.8 s to draw when the page opened. A search opens the categories it finds
    # (under keys of their own, so that they open whatever the user had opened before).
    for category, items in groups.items():
        box = st.expander(category, expanded=bool(query), on_change="rerun",
                          key=f"palette:{category}" + (f":{query}" if query else ""))  # fmt: skip
        for item in items if box.open else ():
            box.button(item["name"], key=f"add:{item['name']}", help=item["help"],
                       width="stretch", on_click=on_click,
                       args=(in_shown(added), item["name"]))  # fmt: skip
    if not groups:
        st.caption("No component matches.")

# Settings of the selected node

with right:
    st.subheader("Node")
    say_refused("panel")  # the panel's, palette's or a fix's last edit
    ids = [node.id for node in shown.nodes]
    named = {node.id: f"{node.id} · {node.label}" if node.label else node.id
             for node in shown.nodes}  # fmt: skip
    chosen = st.selectbox("Selected node", ids, index=ids.index(selected) if selected else None,
                          format_func=named.get,
                          placeholder="Click a node, or type its id or label")  # fmt: skip
    if chosen != selected:
        st.session_state.selected = selected = chosen
        st.rerun()
    node = next((n for n in shown.nodes if n.id == selected), None)
    if node is not None:
        st.button(
            "Show on the canvas",
            icon=":material/center_focus_strong:",
            width="stretch",
            help="Centres the canvas on the node and its neighbours",
            on_click=kept.focus,
            args=(canvas.around(shown, node.id),),
        )
    if node is None:
        st.caption("Select a node to see its settings, shape and code.")
    else:
        spec = CATALOGUE.get(node.component)
        info = view.infos.get(node.id)
        about = spec.help if spec else "unknown component"
        st.markdown(f"**{canvas.escape_markdown(node.component)}** — "
                    f"{canvas.escape_markdown(about)}")  # fmt: skip
        if info:
            st.caption(f"Output {fmt_shape(info.shape)} · {info.params:,} parameters · "
                       f"{info.flops:,} FLOPs")  # fmt: skip
        for problem in view.problems:
            if problem.node == node.id:
                problem_box(problem)
        key = panel_key(node.id, "label", node.label)
        st.text_input("Label", node.label or "", key=key, on_change=on_change,
                      args=(key, lambda graph, text, node_id=node.id:
                            set_label(graph, node_id, text or None), node.id, node.component,
                            "label", node.label))  # fmt: skip
        settings = view.settings.get(node.id, node.settings)
        for setting in spec.settings if spec else ():
            value = settings.get(setting.name, setting.default)
            if setting.kind == "code":
                continue  # the Custom component's code is edited under Code
            key = panel_key(node.id, setting.name, (node.settings.get(setting.name), value))

            def edit(graph, raw, node_id=node.id, setting=setting, value=value):
                edited = read_setting(setting_kind(setting), raw, value)
                if edited is not None and edited != value:
                    return set_settings(graph, node_id, {setting.name: edited})
                return None

            try:
                drawn = node.settings.get(setting.name)  # the raw value (None: the default)
                component_setting(setting, value, key, functools.partial(
                    on_change, key, edit, node.id, node.component, setting.name,
                    drawn))  # fmt: skip
            except InvalidJSON as error:
                st.error(f"{node.id}.{setting.name}: {error}")
        if node.component == "Block" and not open_block:
            st.button("Open block", icon=":material/open_in_full:", width="stretch",
                      on_click=show, args=(settings.get("block"), None))  # fmt: skip
            st.button("Expand block", icon=":material/unfold_more:", width="stretch",
                      on_click=on_click, args=(expand_block, node.id),
                      kwargs={"message": f"Expanded {node.id}"})  # fmt: skip


# Problems, code, blocks, profile: only the open tab runs and reaches the browser (the whole
# model's code, highlighted, took more of an edit's time in the browser than the canvas did)

problems_tab, code_tab, blocks_tab, profile_tab = st.tabs(
    ["Problems", "Code", "Blocks", "Profile"], key="model:tab", on_change="rerun"
)
if problems_tab.open:
    with problems_tab:
        found = problems_of(analysis, doc)
        if not found:
            st.success("No errors, warnings or tips.")
        for i, problem in enumerate(found):
            row = st.columns([6, 1, 2])
            problem_box(problem, row[0])
            if problem.node:  # the problems are the graph's: shown on it, not in a block
                row[1].button("Select", key=f"pick:{i}", on_click=show, args=(None, problem.node))
            if problem.fix:
                row[2].button(problem.fix.description, key=f"fix:{i}", on_click=on_click,
                              args=(fixed, problem.fix),
                              kwargs={"message": problem.fix.description})  # fmt: skip
        if dataset and st.button("Configure inputs and outputs from the data"):
            session.configure_from_data(current, dataset, doc)


def selected_code(node) -> None:
    """The selected node's code (a Custom node's, editable) and what it costs."""
    figures = profile.node_figures(current, doc, node.id) if node and not open_block else None
    if figures:
        st.caption(figures)  # the time and memory the code below costs
    if node is None:
        st.caption("Select a node.")
    elif node.component == "Custom":
        say_refused("code")
        with st.form("custom_code"):
            key = f"code:{node.id}:{signature}"
            st.text_area("Code of the Custom node", node.code or "", height=260, key=key)
            st.form_submit_button(
                "Apply code", on_click=on_click, kwargs={"where": "code"},
                args=(in_shown(lambda graph: set_code(graph, node.id, st.session_state[key])),),
            )  # fmt: skip
        node_problems = [p for p in view.problems if p.node == node.id]
        for problem in node_problems:
            st.error(problem.message)
        if node_problems:  # the message names the line; numbered lines find it
            st.code(node.code or "", language="python", line_numbers=True)
    else:
        try:
            st.code(node_snippet(view, node.id), language="python")
        except (ValueError, KeyError) as error:
            st.warning(one_line(error))


if code_tab.open:
    with code_tab:
        whole, one = st.tabs(["Whole model", "Selected node"], key="model:code",
                             on_change="rerun")  # fmt: skip
        if whole.open:
            with whole:
                if analysis.errors:
                    st.warning("Fix the errors to see the model's code.")
                else:
                    st.code(generate_module(analysis), language="python", line_numbers=True)
        if one.open:
            with one:
                selected_code(node)

if blocks_tab.open:
    with blocks_tab:
        say_refused("blocks")
        picked = st.multiselect("Nodes to make a block of", [n.id for n in doc.nodes],
                                key="blocks:picked")  # fmt: skip
        st.text_input("Block name", "block", key="blocks:name")

        def made(now, name_key: str, make, *what):
            """`make(now, *what, name)`, the block's name read from its widget, and said."""
            name = st.session_state[name_key]
            new_doc = make(now, *what, name)
            session.notice(f"Block {name} " + ("made" if make is make_block else "added"))
            return new_doc

        st.button(
            "Make block", disabled=not picked, on_click=on_click, kwargs={"where": "blocks"},
            args=(lambda now: made(now, "blocks:name", make_block,
                                   st.session_state["blocks:picked"]),),
        )  # fmt: skip
        saved = workspace.blocks()
        if saved:
            st.selectbox("Saved blocks", saved, key="blocks:saved")
            st.button("Use saved block", on_click=on_click, kwargs={"where": "blocks"},
                      args=(made, "blocks:saved", workspace.use_block))  # fmt: skip
        for name, block in doc.blocks.items():
            if st.button(f"Save {name} to the library", key=f"save-block:{name}"):
                workspace.save_block(name, block)
                st.toast(f"Saved block {name}")

if profile_tab.open:
    with profile_tab:
        profile.tab(current, doc, ready=not analysis.errors and not untrusted)

if kept.resend:
    kept.resend = False
    st.rerun()  # a change made on the canvas, or our state it has not taken (the canvas section)
