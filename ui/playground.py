"""The Playground's pictures: the decision boundary with the points and each hidden unit's
response map as images (numpy and Pillow), and the losses as a Plotly figure; light enough to
redraw at every step. (A Plotly heatmap is validated property by property on its way to the
browser, which took longer than the training step itself.)"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from app.playground.network import Playground

ORANGE, LIGHT, BLUE = np.array([245, 147, 34]), np.array([232, 234, 235]), np.array([8, 119, 189])
RED = np.array([178, 24, 43])
PIXELS = 4  # image pixels per grid cell of the boundary
UNIT_STRIDE = 2  # a hidden unit's map takes every other grid cell (the browser scales it up)


def colours(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """values in [-1, 1] as colours from `low` (-1) through light grey (0) to `high` (1)."""
    v = np.clip(values, -1, 1)[..., None]
    mixed = np.where(v < 0, LIGHT + (low - LIGHT) * -v, LIGHT + (high - LIGHT) * v)
    return mixed.astype(np.uint8)


def boundary_image(playground: Playground) -> np.ndarray:
    """P(class 1) over the plane, orange to blue, with the train points as discs and the test
    points as rings, y upwards; (H, W, 3) uint8."""
    grid = playground.boundary()[::-1]  # rows from the top of the plane
    image = colours(grid * 2 - 1, ORANGE, BLUE).repeat(PIXELS, 0).repeat(PIXELS, 1)
    picture = Image.fromarray(image)
    pen = ImageDraw.Draw(picture)
    size = image.shape[0]
    data = playground.data
    for x, y, ring in ((data.x_train, data.y_train, False), (data.x_test, data.y_test, True)):
        for (a, b), label in zip(x, y, strict=True):
            cx, cy = (a + 1) / 2 * size, (1 - b) / 2 * size
            colour = tuple(int(c) for c in (BLUE if label else ORANGE))
            box = (cx - 3, cy - 3, cx + 3, cy + 3)
            if ring:
                pen.ellipse(box, outline=colour, width=2)
            else:
                pen.ellipse(box, fill=colour, outline=(255, 255, 255))
    return np.asarray(picture)


def units_image(playground: Playground) -> np.ndarray | None:
    """Each hidden unit's response, scaled to its own range, red to blue, a row per layer with
    white gaps; None before the first step."""
    units = playground.units()
    if not units:
        return None
    size, gap = units[0][0][::UNIT_STRIDE, ::UNIT_STRIDE].shape[0], 3
    columns = max(len(layer) for layer in units)
    image = np.full((len(units) * (size + gap), columns * (size + gap), 3), 255, np.uint8)
    for row, layer in enumerate(units):
        for col, response in enumerate(layer):
            low, high = float(response.min()), float(response.max())
            scaled = (response - low) / (high - low) * 2 - 1 if high > low else response * 0
            tile = colours(scaled[::-UNIT_STRIDE, ::UNIT_STRIDE], RED, BLUE)
            top, left = row * (size + gap), col * (size + gap)
            image[top : top + size, left : left + size] = tile
    return image


def loss_figure(playground: Playground) -> dict[str, Any]:
    traces = [{"type": "scatter", "mode": "lines", "name": f"{name} loss",
               "x": playground.loss_steps, "y": values}
              for name, values in (("train", playground.train_loss),
                                   ("test", playground.test_loss))]  # fmt: skip
    layout = {"height": 220, "margin": {"t": 10, "b": 30, "l": 40, "r": 10},
              "xaxis": {"title": {"text": "epoch"}}, "yaxis": {"title": {"text": "log loss"}},
              "legend": {"orientation": "h", "y": 1.15}}  # fmt: skip
    return {"data": traces, "layout": layout}
