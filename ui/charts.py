"""Plotly figures of a run's events (app.workspace.events): what the Train and Runs pages draw;
and a prediction's class probabilities, for the Predict page."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def metric_names(events: list[dict[str, Any]]) -> list[str]:
    """The metrics logged, without their val_ twins: loss first."""
    names = {name.removeprefix("val_") for event in events if event["type"] in ("batch", "epoch")
             for name in event.get("metrics", {})}  # fmt: skip
    return sorted(names, key=lambda name: (name != "loss", name))


def training_figure(events: list[dict[str, Any]]) -> go.Figure:
    """One panel per metric: per batch (thin), per epoch for training and validation (marked),
    and the learning rate; x is the epoch (fractional for batches)."""
    names = metric_names(events)
    batches = [e for e in events if e["type"] == "batch"]
    epochs = [e for e in events if e["type"] == "epoch"]
    steps = {e["epoch"]: e["step"] for e in epochs} or {0: 1}
    per_epoch = max(steps.values()) or 1
    panels = [*names, "learning rate"]
    figure = make_subplots(rows=1, cols=len(panels), subplot_titles=panels)
    for col, name in enumerate(names, start=1):
        figure.add_trace(go.Scatter(
            x=[b["epoch"] + b["step"] / per_epoch for b in batches if name in b["metrics"]],
            y=[b["metrics"][name] for b in batches if name in b["metrics"]],
            name=f"{name} (batch)", mode="lines", line={"width": 1, "color": "#9ecae1"},
        ), row=1, col=col)  # fmt: skip
        for prefix, color in (("", "#1f77b4"), ("val_", "#ff7f0e")):
            key = prefix + name
            points = [(e["epoch"] + 1, e["metrics"][key]) for e in epochs if key in e["metrics"]]
            if points:
                figure.add_trace(go.Scatter(
                    x=[p[0] for p in points], y=[p[1] for p in points], name=key,
                    mode="lines+markers", line={"color": color},
                ), row=1, col=col)  # fmt: skip
    rates = [(e["epoch"] + 1, e["lr"]) for e in epochs if e.get("lr") is not None]
    figure.add_trace(go.Scatter(x=[r[0] for r in rates], y=[r[1] for r in rates],
                                name="learning rate", mode="lines+markers",
                                line={"color": "#2ca02c"}), row=1, col=len(panels))  # fmt: skip
    if rates:  # from 0, so that a constant rate is not drawn in the middle of [-1, 1]
        figure.update_yaxes(range=[0, 1.15 * max(r[1] for r in rates)], row=1, col=len(panels))
    figure.update_layout(height=320, margin={"t": 40, "b": 30, "l": 30, "r": 10},
                         legend={"orientation": "h", "y": -0.2})  # fmt: skip
    figure.update_xaxes(title_text="epoch")
    return figure


def layer_names(events: list[dict[str, Any]]) -> list[str]:
    last = next((e for e in reversed(events) if e["type"] == "layers"), None)
    return list(last["layers"]) if last else []


def layer_figures(events: list[dict[str, Any]], layer: str) -> list[tuple[str, go.Figure]]:
    """A layer over time: weight and activation histograms per snapshot (a heatmap, one row per
    snapshot), its gradient norm, and its latest preview."""
    snapshots = [e for e in events if e["type"] == "layers" and layer in e["layers"]]
    figures = []
    labels = [f"epoch {e['epoch'] + 1} step {e['step']}" for e in snapshots]
    for what in ("kernel", "activation"):
        rows = []
        for event in snapshots:
            entry = event["layers"][layer]
            stats = entry.get("weights", {}).get(what) if what == "kernel" else entry.get(what)
            rows.append(stats.get("hist") if stats else None)
        if any(rows):
            figures.append((f"{what} histogram over time", _histogram_heatmap(rows, labels)))
    norms = [(label, event["layers"][layer].get("grad_norm"))
             for label, event in zip(labels, snapshots, strict=True)]  # fmt: skip
    norms = [(label, value) for label, value in norms if value is not None]
    if norms:
        figure = go.Figure(go.Scatter(x=[n[0] for n in norms], y=[n[1] for n in norms],
                                      mode="lines+markers"))  # fmt: skip
        figure.update_layout(height=250, yaxis_type="log", margin={"t": 20, "b": 20})
        figures.append(("gradient norm", figure))
    preview = snapshots[-1]["layers"][layer].get("preview") if snapshots else None
    if preview and preview.get("kind") == "feature_maps":
        maps = preview["maps"][:8]
        figure = make_subplots(rows=1, cols=len(maps))
        for col, values in enumerate(maps, start=1):
            figure.add_trace(go.Heatmap(z=values, colorscale="Viridis", showscale=False),
                             row=1, col=col)  # fmt: skip
        figure.update_yaxes(autorange="reversed")
        figure.update_layout(height=180, margin={"t": 10, "b": 10})
        figures.append(("feature maps (first sample)", figure))
    elif preview and "prediction" in preview:
        figure = go.Figure()
        for key in ("prediction", "target"):
            value = np.asarray(preview.get(key) if preview.get(key) is not None else [],
                               dtype=float).reshape(-1)  # fmt: skip
            figure.add_trace(go.Bar(y=value, name=key))
        figure.update_layout(height=220, margin={"t": 10, "b": 10})
        figures.append(("output beside target (first sample)", figure))
    return figures


def _histogram_heatmap(rows: list[dict | None], labels: list[str]) -> go.Figure:
    present = [(label, row) for label, row in zip(labels, rows, strict=True) if row]
    edges = present[-1][1]["edges"]
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    figure = go.Figure(go.Heatmap(
        z=[row["counts"] for _, row in present], x=centers, y=[label for label, _ in present],
        colorscale="Blues",
    ))  # fmt: skip
    figure.update_layout(height=250, margin={"t": 20, "b": 20})
    return figure


def probabilities_figure(top: list[tuple[str, float]]) -> go.Figure:
    """The classes of a prediction (class name, probability), most probable on top. Class
    names are escaped: plotly reads some HTML in labels."""
    names = [html.escape(str(name)) for name, _ in top]
    probabilities = [float(p) for _, p in top]
    figure = go.Figure(go.Bar(
        x=probabilities, y=names, orientation="h", text=[f"{p:.1%}" for p in probabilities],
        textposition="auto", marker_color="#1f77b4",
    ))  # fmt: skip
    # A category axis, so that class names such as "0" and "7" stay names, not positions.
    figure.update_yaxes(type="category", autorange="reversed")
    figure.update_xaxes(range=[0, 1], tickvals=[0, 0.25, 0.5, 0.75, 1], tickformat=".0%",
                        title_text="probability")  # fmt: skip
    figure.update_layout(height=80 + 30 * len(top), margin={"t": 10, "b": 40, "l": 10, "r": 30})
    return figure


def parts_figure(parts: list[tuple[str, float]], what: str) -> go.Figure:
    """Each column's part in a prediction (column, change of `what` without it), largest on
    top: positive parts push the prediction up, negative ones down."""
    names = [html.escape(str(name)) for name, _ in parts]
    values = [float(v) for _, v in parts]
    figure = go.Figure(go.Bar(
        x=values, y=names, orientation="h", text=[f"{v:+.3g}" for v in values],
        textposition="auto", marker_color=["#2ca02c" if v >= 0 else "#d62728" for v in values],
    ))  # fmt: skip
    figure.update_yaxes(type="category", autorange="reversed")
    figure.update_xaxes(title_text=f"{html.escape(what)}: with the column minus without it")
    figure.update_layout(height=80 + 30 * len(parts), margin={"t": 10, "b": 40, "l": 10, "r": 30})
    return figure


def sweep_figure(
    xs: list[float], lines: dict[str, list[float]], current: float | None, column: str, what: str
) -> go.Figure:
    """A prediction over one column's range (one line per class or value), with the row's own
    value marked."""
    figure = go.Figure()
    for name, ys in lines.items():
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=html.escape(str(name))))
    if current is not None:
        figure.add_vline(x=current, line_dash="dot", line_color="#555")
    figure.update_xaxes(title_text=html.escape(column))
    figure.update_yaxes(title_text=html.escape(what))
    figure.update_layout(height=320, margin={"t": 10, "b": 40, "l": 10, "r": 10})
    return figure


def saliency_figure(pixels: np.ndarray, drop: np.ndarray, what: str) -> go.Figure:
    """The image with a grid of how much `what` drops when each cell is covered, laid over it
    (the cells where it drops most are what the prediction rests on)."""
    rgb = np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels[..., :3]
    height, width = rgb.shape[:2]
    rows, columns = drop.shape
    figure = go.Figure(go.Image(z=rgb))
    figure.add_trace(go.Heatmap(
        z=drop.tolist(), x0=width / columns / 2 - 0.5, dx=width / columns,
        y0=height / rows / 2 - 0.5, dy=height / rows, colorscale="Reds", zmin=0, opacity=0.5,
        colorbar={"title": {"text": html.escape(f"drop of the {what}")}},
    ))  # fmt: skip
    figure.update_layout(height=340, margin={"t": 10, "b": 10, "l": 10, "r": 10})
    return figure


def forecast_figure(
    history: np.ndarray | None, forecast: np.ndarray, came: np.ndarray, column: str
) -> go.Figure:
    """A window's values of the forecast column (steps up to 0), the forecast after it (steps
    1..horizon) and what came then."""
    figure = go.Figure()
    if history is not None:
        steps = list(range(1 - len(history), 1))
        figure.add_trace(go.Scatter(x=steps, y=history.tolist(), name="window", mode="lines"))
    ahead = list(range(1, len(forecast) + 1))
    figure.add_trace(go.Scatter(x=ahead, y=forecast.tolist(), name="forecast",
                                mode="lines+markers", marker={"size": 10}))  # fmt: skip
    if len(came):
        figure.add_trace(go.Scatter(x=ahead[: len(came)], y=came.astype(float).tolist(),
                                    name="what came", mode="markers",
                                    marker={"size": 10, "symbol": "x"}))  # fmt: skip
    figure.update_xaxes(title_text="step")
    figure.update_yaxes(title_text=html.escape(column))
    figure.update_layout(height=320, margin={"t": 10, "b": 40, "l": 10, "r": 10})
    return figure


def reconstruction_figure(names: list[str], lines: dict[str, np.ndarray]) -> go.Figure:
    """Values of the model's input features, one line each: an input beside its reconstruction,
    or two inputs and a decoding between them."""
    figure = go.Figure()
    shown = [html.escape(name) for name in names]
    for label, values in lines.items():
        figure.add_trace(go.Scatter(x=shown, y=np.asarray(values, float).tolist(),
                                    name=html.escape(label), mode="lines+markers"))  # fmt: skip
    figure.update_xaxes(title_text="feature (as the model is given it)")
    figure.update_layout(height=320, margin={"t": 10, "b": 40, "l": 10, "r": 10},
                         legend={"orientation": "h", "y": 1.1})  # fmt: skip
    return figure


def errors_figure(errors: list[float], threshold: float, this: float) -> go.Figure:
    """The reconstruction errors of test rows, the anomaly threshold and this input's error."""
    figure = go.Figure(go.Histogram(x=list(errors), nbinsx=40, name="test rows"))
    left, right = ("top left", "top right") if this >= threshold else ("top right", "top left")
    figure.add_vline(x=threshold, line_dash="dash", annotation_text="threshold",
                     annotation_position=left)  # fmt: skip
    figure.add_vline(x=this, line_color="red", annotation_text="this input",
                     annotation_position=right)  # fmt: skip
    figure.update_xaxes(title_text="reconstruction error (mean squared)")
    figure.update_yaxes(title_text="test rows")
    figure.update_layout(height=260, margin={"t": 20, "b": 40, "l": 10, "r": 10})
    return figure


def node_times_figure(nodes: list[dict[str, Any]], index: int) -> go.Figure:
    """Each measured node's forward and backward time at batch size number `index`, stacked,
    the slowest on top."""
    timed = sorted((n for n in nodes if n.get("forward_ms")),
                   key=lambda n: n["forward_ms"][index] + n["backward_ms"][index])  # fmt: skip
    names = [html.escape(n["id"]) for n in timed]
    figure = go.Figure()
    for part in ("forward", "backward"):
        figure.add_trace(go.Bar(y=names, x=[n[f"{part}_ms"][index] for n in timed], name=part,
                                orientation="h"))  # fmt: skip
    figure.update_layout(barmode="stack", height=max(240, 22 * len(timed) + 80),
                         margin={"t": 10, "b": 40, "l": 10, "r": 10}, xaxis_title="ms")  # fmt: skip
    return figure


def node_memory_figure(nodes: list[dict[str, Any]], index: int) -> go.Figure:
    """Each node's memory at batch size number `index` by kind (weights, gradients, optimizer
    slots, activations kept for backward), stacked, the largest on top."""
    kinds = ("weights", "gradients", "optimizer", "activations")
    found = sorted((n for n in nodes if n["memory"][index]),
                   key=lambda n: n["memory"][index]["total"])  # fmt: skip
    names = [html.escape(n["id"]) for n in found]
    figure = go.Figure()
    for kind in kinds:
        figure.add_trace(go.Bar(y=names, x=[n["memory"][index][kind] / 1e6 for n in found],
                                name=kind, orientation="h"))  # fmt: skip
    figure.update_layout(barmode="stack", height=max(240, 22 * len(found) + 80),
                         margin={"t": 10, "b": 40, "l": 10, "r": 10}, xaxis_title="MB")  # fmt: skip
    return figure


def batch_whatif_figure(report: dict[str, Any]) -> go.Figure:
    """Skyline's what-if: the training step time and the memory against the batch size, the
    measured points and the fitted lines, with the predictions at sizes not measured."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("training step (ms)", "memory (MB)"))
    measured, predicted = report["whole"], report.get("whatif") or []
    fits = report.get("fits") or {}
    sizes = [w["batch"] for w in measured] + [w["batch"] for w in predicted]
    span = np.geomspace(min(sizes), max(sizes), 50)  # a line, drawn on a log axis
    for col, key, scale, points in ((1, "step_ms", 1.0, "measured"),
                                    (2, "memory_bytes", 1e-6, "analytic")):  # fmt: skip
        first = col == 1
        figure.add_trace(go.Scatter(x=[w["batch"] for w in measured],
                                    y=[w[key] * scale for w in measured], mode="markers",
                                    name=points, marker={"size": 10, "color": "#1f77b4"}),
                         row=1, col=col)  # fmt: skip
        if key in fits:
            line = fits[key]
            ys = (line["intercept"] + line["slope"] * span) * scale
            figure.add_trace(go.Scatter(x=span.tolist(), y=ys.tolist(), mode="lines", name="fit",
                                        line={"dash": "dash", "color": "#7f7f7f"},
                                        showlegend=first), row=1, col=col)  # fmt: skip
        if predicted:
            figure.add_trace(go.Scatter(x=[w["batch"] for w in predicted],
                                        y=[w[key] * scale for w in predicted], mode="markers",
                                        name="predicted", showlegend=first,
                                        marker={"symbol": "circle-open", "size": 10,
                                                "color": "#d62728"}),
                             row=1, col=col)  # fmt: skip
    figure.update_xaxes(title_text="batch size", type="log")
    figure.update_layout(height=320, margin={"t": 30, "b": 40, "l": 10, "r": 10})
    return figure
