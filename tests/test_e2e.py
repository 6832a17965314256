"""The wizard end to end in a real browser: Debian's Chromium, driven by playwright, against
`streamlit run app` on a free localhost port over a temporary workspace.

The walk: start from the image-classification template, load the digits sample, see the graph's
nodes and shapes on the canvas, change a setting and see the shape change, train one epoch and
see the chart, run the test suite, export .keras and find the file. A failing step leaves a
screenshot and the page's text in build/e2e/ (or $LAYERFLOW_E2E_ARTIFACTS).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(os.environ.get("LAYERFLOW_E2E_ARTIFACTS", ROOT / "build" / "e2e"))

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` itself listens on `port` (not another process that took it)."""
    try:
        found = psutil.Process(pid).net_connections("inet")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in found)


def start_streamlit(workspace: Path, log) -> tuple[subprocess.Popen, str]:
    """`streamlit run app` over `workspace` on a free port of 127.0.0.1, once it listens there;
    its process and URL. A port another test's server takes between choosing and binding it is
    chosen again: the browser would otherwise talk to that server (one CI run's Predict page
    never drew its form, and this is the likeliest cause found)."""
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],  # fmt: skip
            cwd=ROOT,
            env={**os.environ, "LAYERFLOW_WORKSPACE": str(workspace)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if listens(process.pid, port):
                return process, f"http://127.0.0.1:{port}/"
            time.sleep(0.2)
        process.kill()
        process.wait()
    raise RuntimeError(f"streamlit did not start; see {log.name}")


@pytest.fixture
def server(workspace):
    """`streamlit run app` on a free port of 127.0.0.1; its URL."""
    workspace.mkdir(parents=True, exist_ok=True)
    with open(workspace.parent / "streamlit.log", "wb") as log:
        process, url = start_streamlit(workspace, log)
        yield url
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def browser_page(server, request):
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(server)
        yield page
        report = getattr(request.node, "rep_call", None)  # set by tests/conftest.py
        if report is None or report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            stem = ARTIFACTS / request.node.name
            page.screenshot(path=f"{stem}.png", full_page=True)
            Path(f"{stem}.txt").write_text(page.inner_text("body"))
        browser.close()


def settle(page, timeout: float = 120_000) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_timeout(400)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout)
    page.wait_for_timeout(300)
    errors = page.query_selector_all('[data-testid="stException"]')
    assert not errors, errors[0].inner_text()


def canvas_node(page, node_id: str):
    frame = page.frame_locator('iframe[title="ui.flow_component.canvas"]')
    return frame.locator(f'.react-flow__node[data-id="{node_id}"]')


def test_the_wizard_from_template_to_exported_model(browser_page, workspace):
    page = browser_page
    page.wait_for_selector("h1")
    settle(page)

    # Start: the image-classification template
    page.get_by_role("button", name="Create project").click()
    page.wait_for_selector("h1:has-text('Data')")
    settle(page)

    # Data: the digits sample, then the model fitted to it
    page.get_by_role("button", name="Add sample").click()
    page.get_by_text("Rows", exact=True).wait_for(timeout=120_000)
    settle(page)
    assert page.get_by_text("1,797").count() >= 1
    page.get_by_role("link", name="Model").first.click()
    page.wait_for_selector("h1:has-text('Model')")
    settle(page)

    # Model: nodes with their shapes on the canvas; a setting changes a shape
    dense = canvas_node(page, "dense")
    dense.wait_for()
    assert "(None, 64)" in dense.inner_text()
    assert "(None, 8, 8, 1)" in canvas_node(page, "image").inner_text()
    dense.click()
    settle(page)
    units = page.get_by_label("units", exact=True).and_(page.locator("input"))
    units.fill("32")
    units.press("Enter")
    settle(page)
    page.wait_for_function(
        "() => [...document.querySelectorAll('iframe')].some(f => f.contentDocument && "
        "(f.contentDocument.querySelector('[data-id=\"dense\"]')?.innerText || '')"
        ".includes('(None, 32)'))"
    )

    # Train: one epoch, and its chart
    page.get_by_role("link", name="Train").first.click()
    page.wait_for_selector("h1:has-text('Train')")
    settle(page)
    epochs = page.get_by_label("epochs", exact=True).and_(page.locator("input"))
    epochs.fill("1")
    page.get_by_role("button", name="Save settings").click()
    settle(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("finished: epoch 1 of 1").wait_for(timeout=180_000)
    page.locator(".js-plotly-plot").first.wait_for()
    assert page.locator(".js-plotly-plot").count() >= 1

    # Test: the suite in its own process, then its report
    page.get_by_role("link", name="Test").first.click()
    page.wait_for_selector("h1:has-text('Test')")
    settle(page)
    page.get_by_role("button", name="Run the test suite").click()
    page.get_by_text("The run passed its gates and checks.").wait_for(timeout=300_000)
    settle(page)
    assert page.get_by_text("accuracy", exact=True).count() >= 1

    # Export: the .keras file, listed and on disk
    page.get_by_role("link", name="Export").first.click()
    page.wait_for_selector("h1:has-text('Export')")
    settle(page)
    page.get_by_role("button", name="Export", exact=True).click()
    page.get_by_role("button", name="Download (zip)").wait_for(timeout=300_000)
    exported = list(workspace.glob("models/*/exports/*/*.keras"))
    assert len(exported) == 1 and exported[0].stat().st_size > 0


def test_an_imported_keras_model_opens_folded_keeps_its_view_and_its_block_opens(
    browser_page, workspace
):
    import keras
    from keras import layers

    from app.graph.edit import set_label
    from app.workspace import Workspace

    def residual(x, name):  # a motif stacked twice: one Block node on import
        y = layers.Conv2D(4, 3, padding="same", name=f"{name}_1_conv")(x)
        y = layers.BatchNormalization(name=f"{name}_1_bn")(y)
        y = layers.Activation("relu", name=f"{name}_1_relu")(y)
        y = layers.Conv2D(4, 3, padding="same", name=f"{name}_2_conv")(y)
        return layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))

    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 1, name="widen")(inputs)
    x = residual(residual(x, "stage_block1"), "stage_block2")
    x = layers.Dense(5, name="hidden")(layers.GlobalAveragePooling2D(name="gap")(x))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="probs")(x))
    path = workspace.parent / "small.keras"
    model.save(path)
    page = browser_page
    page.wait_for_selector("h1")
    settle(page)
    page.get_by_role("tab", name="Import a Keras model").click()
    page.locator('input[type="file"]').set_input_files(str(path))
    page.get_by_label("Project name").last.fill("imported")
    page.get_by_role("button", name="Import").click()
    page.wait_for_selector("h1:has-text('Data')", timeout=120_000)
    doc = Workspace.current().project("imported").graph()
    assert {node.id for node in doc.nodes} >= {"hidden", "probs", "stage_block1"}
    assert doc.node("stage_block1").settings["repeat"] == 2

    hostile = '<img src=x onerror="document.title=\'owned\'"><b>bold</b>'
    Workspace.current().project("imported").save_graph(set_label(doc, "hidden", hostile))
    page.get_by_role("link", name="Model").first.click()
    page.wait_for_selector("h1:has-text('Model')")
    settle(page)
    node = canvas_node(page, "hidden")
    node.wait_for()
    assert hostile in node.inner_text()  # shown as the characters it is made of, quotes too
    assert node.locator("img, b:has-text('bold')").count() == 0
    assert page.title() != "owned"

    # A setting edited in the node panel reaches the canvas, which keeps the user's zoom
    frame = page.frame_locator('iframe[title="ui.flow_component.canvas"]')
    fitted = scale(frame)  # the whole graph, fitted when the canvas mounted
    pick(page, "probs")
    page.wait_for_timeout(1000)  # the canvas has laid out what it was sent
    frame.locator(".react-flow__controls-zoomin").click()
    page.wait_for_timeout(500)
    viewport = frame.locator(".react-flow__viewport").get_attribute("style")
    units = page.get_by_label("units", exact=True).and_(page.locator("input"))
    units.fill("3")
    units.press("Enter")
    settle(page)
    canvas_node(page, "probs").filter(has_text="(None, 3)").wait_for(state="attached")
    assert frame.locator(".react-flow__viewport").get_attribute("style") == viewport
    assert page.locator('iframe[title="ui.flow_component.canvas"]').count() == 1
    # Undo takes an edit back and Redo makes it again. The browser reports widgets of earlier
    # runs too (the number input, still focused when Undo is clicked, sends its value again):
    # those must not count as new edits, which would also cut the redo history.
    units = page.get_by_label("units", exact=True).and_(page.locator("input")).last
    units.fill("4")
    units.press("Enter")
    settle(page)
    canvas_node(page, "probs").filter(has_text="(None, 4)").wait_for(state="attached")
    page.get_by_role("button", name="Undo").click()
    settle(page)
    canvas_node(page, "probs").filter(has_text="(None, 3)").wait_for(state="attached")
    page.get_by_role("button", name="Redo").click()
    settle(page)
    canvas_node(page, "probs").filter(has_text="(None, 4)").wait_for(state="attached")
    assert Workspace.current().project("imported").graph().node("probs").settings["units"] == 4

    # The selected node's edges show their shapes; "Show on the canvas" centres the view on it
    # (the canvas mounted again, fitted to its neighbours), then shows the whole graph
    edge_label = frame.locator(".react-flow__edge-text", has_text="(None, 5)")
    edge_label.wait_for(state="attached")  # hidden -> probs carries (None, 5)
    pick(page, "hidden")
    page.get_by_role("button", name="Show on the canvas").click()
    settle(page)
    frame = page.frame_locator('iframe[title="ui.flow_component.canvas"]').last
    widen = frame.locator('.react-flow__node[data-id="widen"]')
    widen.wait_for(state="attached")
    every = len(Workspace.current().project("imported").graph().nodes)
    expect(frame.locator(".react-flow__node")).to_have_count(every, timeout=60_000)  # revealed
    # fitted to hidden's neighbourhood (closer than the whole graph), hidden near the middle
    assert scale(frame) > 1.1 * fitted  # 1.2x on this graph: 5 rows of 7 in view
    pane = page.locator('iframe[title="ui.flow_component.canvas"]').last.bounding_box()
    box = frame.locator('.react-flow__node[data-id="hidden"]').bounding_box()
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert abs(middle[0] - (pane["x"] + pane["width"] / 2)) < pane["width"] * 0.2
    assert abs(middle[1] - (pane["y"] + pane["height"] / 2)) < pane["height"] * 0.2

    # Any edge shows the tensor it carries while the pointer is on it
    carried = frame.locator(".react-flow__edge-text", has_text="(None, 8, 8, 4)")
    assert carried.count() == 0  # neither end of widen -> stage_block1 is selected
    edge = frame.locator('[data-testid="rf__edge-widen->stage_block1#0"] .react-flow__edge-path')
    box = edge.bounding_box()  # a vertical line, which playwright's hover() calls invisible
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    carried.wait_for(state="attached", timeout=5_000)
    page.mouse.move(5, 5)
    carried.wait_for(state="detached", timeout=5_000)

    # The folded block opens on the canvas, shows its inside, and goes back
    pick(page, "stage_block1")
    page.get_by_role("button", name="Open block").click()
    settle(page)
    assert page.get_by_text("Inside block").count() == 1
    # the block's canvas is a new one (its own key): the model's may still be on its way out
    block_canvas = page.frame_locator('iframe[title="ui.flow_component.canvas"]').last
    inner = block_canvas.locator('.react-flow__node[data-id="n1_conv"]')
    inner.wait_for(state="attached")
    assert "(None, 8, 8, 4)" in inner.inner_text()
    assert block_canvas.locator('.react-flow__node[data-id="hidden"]').count() == 0
    page.get_by_role("button", name="Back to the model").click()
    settle(page)
    model_canvas = page.frame_locator('iframe[title="ui.flow_component.canvas"]').last
    model_canvas.locator('.react-flow__node[data-id="stage_block1"]').wait_for(state="attached")


def scale(frame) -> float:
    """The canvas's zoom."""
    style = frame.locator(".react-flow__viewport").get_attribute("style")
    return float(style.split("scale(")[1].split(")")[0])


def pick(page, node_id: str) -> None:
    """Select a node in the node panel."""
    page.get_by_label("Selected node").click()
    page.keyboard.type(node_id)
    page.keyboard.press("Enter")
    settle(page)
