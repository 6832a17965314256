"""What the Model page keeps of its canvas between runs (ui.flow.Canvas): a state per version,
stamped after the canvas's last answer, answers about older states told apart, and a jump that
mounts the canvas fitted to a node's neighbourhood before showing the whole graph."""

from __future__ import annotations

import copy
import dataclasses

from app.graph.analysis import analyze
from app.graph.canvas import around
from tests.graphs import chain
from ui import flow

LAYERS = [(f"d{i}", "Dense", {"units": 4}) for i in range(6)]


def graph():
    return chain(("x", "Input", {"shape": [4]}), *LAYERS, ("y", "Output", {"units": 1}))


def make(version, after):
    return flow.flow_state(analyze(graph()), version=version, after=after)


def answer(state, timestamp):
    """The canvas's answer about `state`: its nodes, at the browser's `timestamp`."""
    return dataclasses.replace(copy.deepcopy(state), timestamp=timestamp)


def test_a_state_is_made_once_per_graph_and_stamped_after_the_last_answer():
    session = {}
    kept = flow.Canvas.kept(session, "p:")
    first = kept.draw("graph 1", make, mounting=True)
    assert first.timestamp == 1  # after no answer: whatever the browser's clock says is newer
    assert kept.draw("graph 1", make, mounting=False) is first  # nothing changed
    seen = kept.answer(answer(first, first.timestamp + 10))
    assert seen is not None  # about our state: an edit to replay
    second = kept.draw("graph 2", make, mounting=False)
    assert second.timestamp == first.timestamp + 11  # just after the canvas's answer
    assert {n.data[flow.VERSION] for n in second.nodes} == {"2"}
    assert flow.Canvas.kept(session, "p:") is kept
    assert flow.Canvas.kept(session, "p:block") is not kept  # another canvas, kept anew


def test_an_answer_about_an_older_state_sends_ours_again():
    kept = flow.Canvas.kept({}, "p:")
    old = kept.draw("graph 1", make, mounting=True)
    kept.answer(answer(old, old.timestamp + 1))
    new = kept.draw("graph 2", make, mounting=False)
    late = answer(old, new.timestamp + 5)  # the canvas answered about the state it had
    assert kept.answer(late) is None and kept.resend
    assert kept.state.timestamp == late.timestamp + 1 and flow.shows(kept.state, "2")
    assert kept.answer(late) is None  # an answer seen already is no news


def test_a_jump_mounts_the_canvas_fitted_to_the_neighbourhood_then_shows_all():
    session = {}
    kept = flow.Canvas.kept(session, "p:")
    first = kept.draw("graph", make, mounting=True)
    session[kept.key] = "the component's own state"  # it has mounted
    kept.answer(answer(first, first.timestamp + 1))
    kept.focus(around(graph(), "d3"))
    assert kept.mounting(session)  # a new key: the component fits its view on mounting
    jumped = kept.draw("graph", make, mounting=True)
    shown = {n.id for n in jumped.nodes if not n.hidden}
    assert shown == {"d1", "d2", "d3", "d4", "d5"}
    # its first answer: the view is fitted, so the whole graph goes, stamped after it
    assert kept.answer(answer(jumped, jumped.timestamp + 3)) is None and kept.resend
    assert not any(n.hidden for n in kept.state.nodes)
    assert kept.state.timestamp == jumped.timestamp + 4
    whole = kept.state
    assert kept.answer(answer(whole, whole.timestamp + 2)) is not None


def test_what_the_graph_refused_is_undone_on_the_canvas_by_sending_our_state_again():
    kept = flow.Canvas.kept({}, "p:")
    ours = kept.draw("graph", make, mounting=True)
    drawn_edge = answer(ours, ours.timestamp + 7)  # the canvas with an edge the graph refuses
    assert kept.answer(drawn_edge) is not None
    kept.restore()
    assert kept.resend and kept.state.timestamp == drawn_edge.timestamp + 1
    assert [e.id for e in kept.state.edges] == [e.id for e in ours.edges]  # without it


def test_an_answer_about_the_neighbourhood_after_the_whole_graph_was_sent_is_not_an_edit():
    session = {}
    kept = flow.Canvas.kept(session, "p:")
    kept.draw("graph", make, mounting=True)
    kept.focus({"d3"})
    jumped = kept.draw("graph", make, mounting=True)
    kept.answer(answer(jumped, jumped.timestamp + 3))  # whole graph sent, stamped after this
    late = answer(jumped, jumped.timestamp + 9)  # the canvas answered again before taking it
    assert kept.answer(late) is None and kept.resend  # ours goes again
    assert not any(n.hidden for n in kept.state.nodes)
    assert kept.state.timestamp == late.timestamp + 1


def test_a_nodes_text_reaches_our_canvas_as_lines_of_text_and_the_installed_one_as_markdown():
    from app.graph.edit import set_label
    from ui.flow_component import _as_markdown

    hostile = "<img src=x onerror=alert(1)> **bold** [link](javascript:alert(1))"
    state = flow.flow_state(analyze(set_label(graph(), "d0", hostile)))
    ours = next(node for node in state.nodes if node.id == "d0").data
    assert "content" not in ours and ours["lines"][0] == ("strong", hostile)  # as typed
    upstream = next(node for node in _as_markdown(state).nodes if node.id == "d0").data
    assert "lines" not in upstream and upstream["content"].startswith("**&lt;img src=x")
    assert "\\*\\*bold\\*\\* \\[link\\]\\(javascript:alert\\(1\\)\\)" in upstream["content"]
    assert "lines" in next(node for node in state.nodes if node.id == "d0").data  # not changed
