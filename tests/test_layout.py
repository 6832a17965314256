"""The layered layout: layers by longest path, barycenter order, robust to broken graphs."""

from __future__ import annotations

from app.graph.canvas import node_height, search_lines
from app.graph.document import Choice, GraphDocument, SearchSpace, parse
from app.graph.layout import USUAL_HEIGHT, layered_layout

DX, DY = 220, 110


def graph(edges: list[tuple[str, str]], extra_nodes: tuple[str, ...] = (),
          blocks: dict | None = None) -> GraphDocument:  # fmt: skip
    """Dense nodes named by the edges (in order of first mention), wired as given."""
    ids = list(dict.fromkeys([*(end for edge in edges for end in edge), *extra_nodes]))
    slots: dict[str, int] = {}
    edge_data = []
    for source, target in edges:
        edge_data.append({"source": source, "target": target, "slot": slots.get(target, 0)})
        slots[target] = slots.get(target, 0) + 1
    return parse({
        "nodes": [{"id": i, "component": "Dense", "settings": {"units": 4}} for i in ids],
        "edges": edge_data,
        "blocks": blocks or {},
    })  # fmt: skip


def positions(doc: GraphDocument) -> dict[str, tuple[float, float]]:
    return {n.id: (n.position.x, n.position.y) for n in doc.nodes}


def assert_edges_go_down(doc: GraphDocument) -> None:
    where = positions(doc)
    for edge in doc.edges:
        assert where[edge.target][1] > where[edge.source][1], edge


def assert_distinct(doc: GraphDocument) -> None:
    where = positions(doc)
    assert len(set(where.values())) == len(where), where


def test_every_edge_goes_down_on_a_dag():
    doc = layered_layout(graph([("in", "a"), ("in", "b"), ("a", "c"), ("b", "c"), ("in", "c"),
                                ("c", "out"), ("a", "out")]))  # fmt: skip
    assert_edges_go_down(doc)
    assert_distinct(doc)


def test_layer_is_the_longest_path_from_a_source():
    doc = layered_layout(graph([("a", "b"), ("b", "c"), ("a", "c"), ("c", "d"), ("a", "d")]),
                         dx=DX, dy=DY)  # fmt: skip
    assert {k: y for k, (_, y) in positions(doc).items()} == {
        "a": 0, "b": DY, "c": 2 * DY, "d": 3 * DY}  # fmt: skip


def test_nodes_of_a_layer_are_spaced_and_centered():
    doc = layered_layout(graph([("in", "a"), ("in", "b"), ("in", "c")]), dx=DX, dy=DY)
    where = positions(doc)
    assert sorted(where[n][0] for n in "abc") == [-DX, 0, DX]
    assert where["in"] == (0, 0)


def test_order_within_a_layer_follows_the_predecessors():
    # The document lists b2 before b1; the barycenter order uncrosses a1 -> b1 and a2 -> b2.
    doc = parse({
        "nodes": [{"id": i, "component": "Dense"} for i in ("a1", "a2", "b2", "b1")],
        "edges": [{"source": "a1", "target": "b1"}, {"source": "a2", "target": "b2"}],
    })  # fmt: skip
    where = positions(layered_layout(doc))
    assert where["a1"][0] < where["a2"][0]
    assert where["b1"][0] < where["b2"][0]


def test_the_document_is_copied_not_changed():
    doc = graph([("a", "b"), ("a", "c")])
    laid_out = layered_layout(doc)
    assert all(n.position.x == 0 and n.position.y == 0 for n in doc.nodes)
    assert laid_out is not doc
    assert laid_out.nodes[0].settings is not doc.nodes[0].settings
    assert [n.id for n in laid_out.nodes] == [n.id for n in doc.nodes]
    assert laid_out.edges == doc.edges


def test_cycles_self_loops_and_dangling_edges_still_get_a_layout():
    doc = graph([("in", "a"), ("a", "b"), ("b", "c"), ("c", "a"), ("c", "c"), ("c", "out")],
                extra_nodes=("lonely",))  # fmt: skip
    doc.edges.append(doc.edges[0].model_copy(update={"source": "ghost", "slot": 5}))
    laid_out = layered_layout(doc)
    assert_distinct(laid_out)
    where = positions(laid_out)
    # Only the edge closing the cycle (c -> a) and the self-loop may point upward.
    assert where["in"][1] < where["a"][1] < where["b"][1] < where["c"][1] < where["out"][1]


def test_block_nodes_are_laid_out_too():
    block = {"nodes": [{"id": "x", "component": "BlockInput"},
                       {"id": "y", "component": "Dense"}, {"id": "z", "component": "Dense"}],
             "edges": [{"source": "x", "target": "y"}, {"source": "y", "target": "z"}],
             "output": "z"}  # fmt: skip
    doc = layered_layout(graph([("a", "b")], blocks={"cell": block}), dy=DY)
    inner = {n.id: n.position.y for n in doc.blocks["cell"].nodes}
    assert inner == {"x": 0, "y": DY, "z": 2 * DY}


def test_empty_graph():
    assert layered_layout(GraphDocument()).nodes == []


def test_a_thousand_node_chain_with_skips_is_valid():
    edges = [(f"n{i}", f"n{i + 1}") for i in range(999)]
    edges += [(f"n{i}", f"n{i + 3}") for i in range(0, 996, 2)]
    edges += [(f"n{i}", f"side{i}") for i in range(0, 999, 50)]  # some layers hold two nodes
    doc = layered_layout(graph(edges))
    assert len(doc.nodes) == 1000 + 20
    assert_edges_go_down(doc)
    assert_distinct(doc)


def test_a_tall_node_pushes_the_next_layer_down_by_its_height():
    # b shows what a search varies (four lines) and has a long label: its layer takes more
    # than DY, by as much as it is taller than a usual node, so it covers nothing below it.
    doc = graph([("a", "b"), ("b", "c"), ("c", "d")])
    doc.node("b").label = "a label long enough to wrap over three lines of the node"
    doc.search = SearchSpace(settings={"b": {"units": Choice(choices=[8, 16, 32, 64, 128]),
                                             "activation": Choice(choices=["relu", "gelu"])}},
                             optional=["b"])  # fmt: skip
    where = positions(layered_layout(doc, dy=DY))
    tall = node_height(doc.node("b"), search_lines(doc, doc.node("b")))
    assert tall > USUAL_HEIGHT + 4 * 18  # five more lines at least
    assert where["b"][1] - where["a"][1] == DY  # a usual node: the usual pitch
    assert where["c"][1] - where["b"][1] == tall + DY - USUAL_HEIGHT
    assert where["d"][1] - where["c"][1] == DY
