"""The Playground's figures: the decision boundary with the points, the losses, and each hidden
unit's response map; light enough to redraw at every step. They are plain Plotly figure dicts:
building go.Figure objects validates every property and takes longer than the step itself."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.playground.network import Playground

SCALE = [[0, "#f59322"], [0.5, "#e8eaeb"], [1, "#0877bd"]]  # class 0 orange, class 1 blue
Figure = dict[str, Any]


def boundary_figure(playground: Playground) -> Figure:
    data = playground.data
    traces: list[dict[str, Any]] = [{
        "type": "heatmap", "x": playground.grid.tolist(), "y": playground.grid.tolist(),
        "z": np.round(playground.boundary(), 3).tolist(), "zmin": 0, "zmax": 1,
        "colorscale": SCALE, "showscale": False, "hoverinfo": "skip",
    }]  # fmt: skip
    for name, x, y, symbol in (("train", data.x_train, data.y_train, "circle"),
                               ("test", data.x_test, data.y_test, "x")):  # fmt: skip
        traces.append({
            "type": "scatter", "mode": "markers", "name": name, "hoverinfo": "skip",
            "x": x[:, 0].tolist(), "y": x[:, 1].tolist(),
            "marker": {"symbol": symbol, "size": 6,
                       "color": ["#0877bd" if v else "#f59322" for v in y.tolist()],
                       "line": {"width": 1, "color": "white"}},
        })  # fmt: skip
    layout = {"height": 430, "width": 430, "margin": {"t": 10, "b": 10, "l": 10, "r": 10},
              "xaxis": {"range": [-1, 1], "constrain": "domain"},
              "yaxis": {"range": [-1, 1], "scaleanchor": "x"},
              "legend": {"orientation": "h", "y": -0.05}}  # fmt: skip
    return {"data": traces, "layout": layout}


def loss_figure(playground: Playground) -> Figure:
    steps = playground.loss_steps
    traces = [{"type": "scatter", "mode": "lines", "name": f"{name} loss", "x": steps,
               "y": values} for name, values in (("train", playground.train_loss),
                                                 ("test", playground.test_loss))]  # fmt: skip
    layout = {"height": 220, "margin": {"t": 10, "b": 30, "l": 40, "r": 10},
              "xaxis": {"title": {"text": "step"}}, "yaxis": {"title": {"text": "log loss"}},
              "legend": {"orientation": "h", "y": 1.15}}  # fmt: skip
    return {"data": traces, "layout": layout}


def units_figure(playground: Playground) -> Figure:
    """One small map per hidden unit, a row per layer: the maps, each scaled to its own range,
    tiled into one image with gaps (one trace draws far quicker than a subplot each)."""
    units = [[response[::2, ::2] for response in layer] for layer in playground.units()]
    size, gap = units[0][0].shape[0], 3  # at half the grid's resolution: the maps are small
    columns = max(len(layer) for layer in units)
    tiled = np.full((len(units) * (size + gap), columns * (size + gap)), np.nan)
    for row, layer in enumerate(units):
        for col, response in enumerate(layer):
            low, high = float(response.min()), float(response.max())
            scaled = (response - low) / (high - low) * 2 - 1 if high > low else response * 0
            top, left = row * (size + gap), col * (size + gap)
            tiled[top : top + size, left : left + size] = scaled
    z = np.where(np.isnan(tiled), None, np.round(tiled, 3)).tolist()  # gaps: null, drawn blank
    trace = {"type": "heatmap", "z": z, "colorscale": "RdBu", "zmin": -1, "zmax": 1,
             "showscale": False, "hoverinfo": "skip"}  # fmt: skip
    layout = {"height": 100 * len(units) + 20, "margin": {"t": 5, "b": 5, "l": 5, "r": 5},
              "xaxis": {"visible": False}, "yaxis": {"visible": False, "scaleanchor": "x"},
              "plot_bgcolor": "white"}  # fmt: skip
    return {"data": [trace], "layout": layout}
