"""The canvas view of a graph: escaped text, shapes and problem marks on nodes, and the canvas's
changes (moves, deletions, drawn and removed edges) replayed as graph edits."""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from app.graph.analysis import analyze
from app.graph.canvas import (
    LEVEL_COLORS,
    apply_changes,
    elements,
    escape_markdown,
    escape_text,
    markdown,
)
from app.graph.edit import set_label
from app.graph.layout import layered_layout
from tests.graphs import chain


def small():
    return layered_layout(chain(
        ("x", "Input", {"shape": [4]}),
        ("hidden", "Dense", {"units": 8}),
        ("y", "Output", {"units": 1, "activation": "sigmoid", "loss": "binary_crossentropy"}),
    ))  # fmt: skip


def positions(doc):
    return {node.id: (node.position.x, node.position.y) for node in doc.nodes}


def pairs(doc):
    return [(edge.source, edge.target) for edge in doc.edges]


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "**bold** _it_ `code` $x^2$ # head",
        "&lt;b&gt; entity",
        "it's \"quoted\"",
    ],
)
def test_escaped_text_keeps_no_markup(text):
    escaped = escape_text(text)
    assert "<" not in escaped and ">" not in escaped
    # every Markdown punctuation mark is backslash-escaped, so nothing in it is syntax
    assert not re.search(r"(?<!\\)[`*_\[\]()#$!|~]", escaped)
    # and undoing the escapes gives the text back, character for character
    assert html.unescape(re.sub(r"\\(.)", r"\1", escaped)) == text
    # as a Markdown renderer shows it: one paragraph of exactly the text, no other markup
    rendered = MarkdownIt("commonmark").render(escaped)
    assert re.fullmatch(r"<p>[^<>]*</p>\n", rendered), rendered
    assert html.unescape(rendered[3:-5]) == text


def test_a_node_shows_its_label_component_shape_and_parameters():
    nodes, edges = elements(analyze(small()))
    hidden = next(node for node in nodes if node.id == "hidden")
    assert "Dense" in markdown(hidden.lines)
    assert "\\(None, 8\\)" in markdown(hidden.lines)  # (None, 8), its brackets escaped
    assert "40 params" in markdown(hidden.lines)
    assert [node.kind for node in nodes] == ["input", "default", "output"]
    assert [(edge.source, edge.target) for edge in edges] == [("x", "hidden"), ("hidden", "y")]


def test_a_label_reaches_the_canvas_as_text():
    doc = set_label(small(), "hidden", "<b onmouseover=alert(1)>Hidden</b>")
    nodes, _ = elements(analyze(doc))
    content = markdown(next(node for node in nodes if node.id == "hidden").lines)
    assert "<b" not in content and "&lt;b onmouseover=alert\\(1\\)&gt;" in content


def test_a_node_is_marked_with_the_color_of_its_worst_problem():
    doc = chain(
        ("x", "Input", {"shape": [4]}),
        ("bad", "Conv2D", {"filters": 4}),  # needs an image, gets a vector
        ("y", "Output", {"units": 1}),
    )
    analysis = analyze(layered_layout(doc))
    nodes, _ = elements(analysis)
    marks = {node.id: node.color for node in nodes}
    assert marks["bad"] == LEVEL_COLORS["error"]
    sound = elements(analyze(small()))[0]
    problems = {problem.node for problem in analyze(small()).problems}
    assert [node.color for node in sound if node.id not in problems] == [LEVEL_COLORS[None]] * (
        len(sound) - len(problems)
    )


def test_nothing_changed_on_the_canvas_changes_nothing():
    doc = small()
    result = apply_changes(doc, positions(doc), pairs(doc))
    assert not result.changed and result.doc == doc and not result.errors


def test_a_moved_node_keeps_its_new_place():
    doc = small()
    moved = {**positions(doc), "hidden": (500.0, 42.0)}
    result = apply_changes(doc, moved, pairs(doc))
    node = next(node for node in result.doc.nodes if node.id == "hidden")
    assert (node.position.x, node.position.y) == (500.0, 42.0)
    assert result.edits == ["moved hidden"]


def test_a_node_deleted_on_the_canvas_leaves_the_graph_with_its_edges():
    doc = small()
    kept = {k: v for k, v in positions(doc).items() if k != "hidden"}
    result = apply_changes(doc, kept, [])
    assert [node.id for node in result.doc.nodes] == ["x", "y"]
    assert result.doc.edges == []


def test_drawn_and_deleted_edges_become_connects_and_disconnects():
    doc = small()
    result = apply_changes(doc, positions(doc), [("x", "hidden")])
    assert pairs(result.doc) == [("x", "hidden")]
    result = apply_changes(result.doc, positions(doc), [("x", "hidden"), ("hidden", "y")])
    assert pairs(result.doc) == [("x", "hidden"), ("hidden", "y")]


def test_an_edge_the_graph_refuses_is_reported_and_left_out():
    doc = small()
    result = apply_changes(doc, positions(doc), [*pairs(doc), ("y", "x")])
    assert pairs(result.doc) == pairs(doc)
    assert len(result.errors) == 1
    assert "Edge y -> x" in result.errors[0]


def test_text_for_streamlit_markdown_keeps_its_apostrophes_and_loses_its_syntax():
    assert escape_markdown("The model's [link](x) *em*") == (
        "The model's \\[link\\]\\(x\\) \\*em\\*"
    )


def test_a_big_graph_shows_label_and_shape_and_the_selected_node_all_of_it():
    from app.graph.canvas import COMPACT_FROM

    layers = [(f"d{i}", "Dense", {"units": 4}) for i in range(COMPACT_FROM)]
    doc = layered_layout(chain(("x", "Input", {"shape": [4]}), *layers,
                               ("y", "Output", {"units": 1})))  # fmt: skip
    nodes, _ = elements(analyze(doc), selected="d3")
    content = {node.id: markdown(node.lines) for node in nodes}
    assert "\\(None, 4\\)" in content["d1"] and "params" not in content["d1"]
    assert "Dense" not in content["d1"]
    assert "Dense" in content["d3"] and "20 params" in content["d3"]


def test_a_block_node_names_its_block_and_repeat():
    from app.graph.document import parse
    from tests.test_blocks import graph_data

    nodes, _ = elements(analyze(parse(graph_data(repeat=3))))
    assert "res \\(cell x3\\)" in next(markdown(n.lines) for n in nodes if n.id == "res")


def test_the_selected_nodes_edges_show_the_tensor_they_carry_and_any_edge_under_the_pointer():
    from app.graph.edit import add_node, connect

    _, edges = elements(analyze(small()), selected="hidden")
    assert [edge.label for edge in edges] == ["(None, 4)", "(None, 8)"]
    assert [edge.label for edge in elements(analyze(small()))[1]] == ["", ""]
    assert [edge.hover for edge in elements(analyze(small()))[1]] == ["(None, 4)", "(None, 8)"]
    # into a node of several inputs, an edge shows its slot, and its shape when selected
    doc, add = add_node(small(), "Concatenate")
    doc = connect(connect(doc, "x", add), "hidden", add)
    into = [e.label for e in elements(analyze(doc))[1] if e.target == add]
    assert into == ["0", "1"]
    into = [e.label for e in elements(analyze(doc), selected=add)[1] if e.target == add]
    assert into == ["0: (None, 4)", "1: (None, 8)"]
    assert [e.hover for e in elements(analyze(doc))[1] if e.target == add] == into


def test_a_node_is_filled_by_its_components_category():
    from app.graph.canvas import CATEGORY_COLORS
    from app.graph.components import CATALOGUE

    nodes, _ = elements(analyze(small()))
    assert [node.category for node in nodes] == ["Input & Output", "Core", "Input & Output"]
    assert nodes[1].fill == CATEGORY_COLORS["Core"] != nodes[0].fill
    # every category of the catalogue has its own colour
    categories = {component.category for component in CATALOGUE.values()}
    assert categories <= set(CATEGORY_COLORS)
    assert len({CATEGORY_COLORS[c] for c in categories}) == len(categories)


def test_around_a_node_are_its_neighbours_within_two_edges():
    from app.graph.canvas import around

    layers = [(f"d{i}", "Dense", {"units": 4}) for i in range(8)]
    doc = chain(("x", "Input", {"shape": [4]}), *layers, ("y", "Output", {"units": 1}))
    assert around(doc, "d4") == {"d2", "d3", "d4", "d5", "d6"}
    assert around(doc, "x", hops=1) == {"x", "d0"}
