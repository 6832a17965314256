"""Playground: a small network learning a two-dimensional toy set step by step, its decision
boundary redrawn as it learns, in the spirit of the Neural Network Playground. It trains in the
app's own process (scikit-learn, no TensorFlow); "Open in LayerFlow" makes it a project."""

from __future__ import annotations

import time

import streamlit as st

from app.graph.canvas import escape_markdown
from app.playground.data import SETS, toy_set
from app.playground.network import ACTIVATIONS, Playground
from app.playground.project import open_in_layerflow
from app.workspace import Workspace
from ui import playground as figures
from ui import session

STEPS_PER_TICK = 5  # epochs per step (each a pass over the train points)
RATES = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
L2 = [0.0, 0.0001, 0.001, 0.01, 0.1]

st.title("Playground")
st.caption("A small network learns to tell the blue points from the orange. Press Play and "
           "watch its decision boundary, its losses and each hidden unit's response change as "
           "it learns; change the data or the network and it starts again.")  # fmt: skip

controls, board = st.columns([1, 3])
with controls:
    kind = st.selectbox("Data", SETS, key="pg:kind")
    noise = st.slider("Noise", 0.0, 0.5, 0.1, 0.05, key="pg:noise")
    train = st.slider("Share to train on", 0.1, 0.9, 0.5, 0.1, key="pg:train")
    depth = st.slider("Hidden layers", 1, 4, 2, key="pg:depth")
    units = tuple(st.slider(f"Units in layer {i + 1}", 1, 8, 4, key=f"pg:units{i}")
                  for i in range(depth))  # fmt: skip
    activation = st.selectbox("Activation", ACTIVATIONS, index=1, key="pg:activation")
    rate = st.select_slider("Learning rate", RATES, 0.03, key="pg:rate")
    l2 = st.select_slider("Regularization (L2)", L2, 0.0, key="pg:l2")

config = (kind, noise, train, units, activation, rate, l2)
if st.session_state.get("pg:config") != config or "pg:model" not in st.session_state:
    st.session_state["pg:model"] = Playground(toy_set(kind, noise=noise, train=train),
                                              layers=units, activation=activation,
                                              learning_rate=rate, regularization=l2)  # fmt: skip
    st.session_state["pg:config"] = config
    st.session_state["pg:playing"] = False

with board:
    buttons = st.columns(4)
    def toggle() -> None:
        st.session_state["pg:playing"] = not st.session_state.get("pg:playing", False)

    playing = st.session_state.get("pg:playing", False)
    icon = ":material/pause:" if playing else ":material/play_arrow:"
    buttons[0].button("Pause" if playing else "Play", type="primary", icon=icon, on_click=toggle)
    if buttons[1].button("Step", icon=":material/skip_next:", disabled=playing):
        st.session_state["pg:model"].step(STEPS_PER_TICK)
    if buttons[2].button("Reset", icon=":material/restart_alt:"):
        del st.session_state["pg:model"]
        st.rerun()

    @st.fragment(run_every=0.2 if playing else None)
    def live() -> None:
        """A step (when playing) and the figures again, timed."""
        started = time.perf_counter()
        model: Playground = st.session_state["pg:model"]
        if st.session_state.get("pg:playing"):
            model.step(STEPS_PER_TICK)
        boundary, right = st.columns([3, 2])
        boundary.image(figures.boundary_image(model),
                       caption="Blue: class 1, orange: class 0; discs train, rings test")
        with right:
            if model.steps:
                train_accuracy, test_accuracy = model.accuracy()
                cells = st.columns(3)
                cells[0].metric("Epoch", model.steps, help="Step trains five epochs")
                cells[1].metric("Train loss", f"{model.train_loss[-1]:.2f}")
                cells[2].metric("Test loss", f"{model.test_loss[-1]:.2f}")
                st.plotly_chart(figures.loss_figure(model), key="pg:loss")
                st.caption(f"Accuracy: train {train_accuracy:.1%}, test {test_accuracy:.1%}")
            else:
                st.caption("Not trained yet: press Play or Step.")
        st.caption("Each hidden unit's response over the plane (a row per layer):")
        units = figures.units_image(model)
        if units is not None:  # each map 30 pixels a side, drawn at 90
            st.image(units, width=units.shape[1] * 3)
        st.caption(f"Step and redraw: {(time.perf_counter() - started) * 1000:.0f} ms")

    live()

st.subheader("Open in LayerFlow")
st.caption("A project with this network as its graph (a Dense layer per hidden layer) and the "
           "toy points as its dataset, to train with Keras and see every layer.")  # fmt: skip
name = st.text_input("Project name", f"playground-{kind}", key=f"pg:name:{kind}")
if st.button("Open in LayerFlow", icon=":material/account_tree:"):
    try:
        project = open_in_layerflow(Workspace.current(), st.session_state["pg:model"], name)
    except (ValueError, OSError) as error:
        st.error(escape_markdown(str(error)))
    else:
        session.open_(project.name)
        session.notice(f"Project {project.name} made from the Playground")
        st.switch_page(session.PAGES["model"])
