"""Merging layers: element-wise Add, Subtract, Multiply, Average and Concatenate."""

from __future__ import annotations

from app.graph.components.base import (
    Component,
    LayerInfo,
    Setting,
    Shape,
    ShapeError,
    fmt_shape,
    size,
)


def broadcast(first: Shape, second: Shape, shapes: str) -> Shape:
    """Keras' element-wise merge shape: right-aligned broadcasting (batch excluded)."""
    if len(first) < len(second):
        first, second = second, first
    if not second:
        return first
    out = list(first[: len(first) - len(second)])
    for a, b in zip(first[len(first) - len(second) :], second, strict=True):
        if a is None or b is None:
            out.append(None)
        elif a == 1 or b == 1 or a == b:
            out.append(b if a == 1 else a)
        else:
            raise ShapeError(
                f"inputs must have the same or broadcastable shapes, received {shapes}"
            )
    return tuple(out)


def _elementwise(s, inputs):
    shapes = " and ".join(fmt_shape(i) for i in inputs)
    merged = inputs[0][1:]
    for other in inputs[1:]:
        merged = broadcast(merged, other[1:], shapes)
    out = (None, *merged)
    return LayerInfo(out, 0, 0, (len(inputs) - 1) * size(out))


def _concatenate(s, inputs):
    rank = len(inputs[0])
    axis = s["axis"] if s["axis"] >= 0 else rank + s["axis"]
    shapes = " and ".join(fmt_shape(i) for i in inputs)
    if not 1 <= axis < rank:
        raise ShapeError(f"`axis` {s['axis']} is out of range for inputs {shapes}")
    out = list(inputs[0])
    for other in inputs[1:]:
        if len(other) != rank or any(
            a is not None and b is not None and a != b
            for i, (a, b) in enumerate(zip(out, other, strict=True))
            if i not in (0, axis)
        ):
            raise ShapeError(f"inputs must match on every axis but {s['axis']}, received {shapes}")
    lengths = [i[axis] for i in inputs]
    out[axis] = None if None in lengths else sum(lengths)
    return LayerInfo(tuple(out))


COMPONENTS = [
    *(
        Component(kind, "Merge", help_text, (), _elementwise, inputs=(2, None), keras_class=kind)
        for kind, help_text in (
            ("Add", "Sums its inputs element-wise (residual connections)."),
            ("Multiply", "Multiplies its inputs element-wise (gating)."),
            ("Average", "Averages its inputs element-wise."),
        )
    ),
    Component(
        "Subtract",
        "Merge",
        "Subtracts the second input from the first.",
        (),
        _elementwise,
        inputs=(2, 2),
        keras_class="Subtract",
    ),
    Component(
        "Concatenate",
        "Merge",
        "Joins its inputs along one axis (DenseNet-style).",
        (Setting("axis", "int", -1, "Axis to join along; -1 is the last.", min=-8, max=8),),
        _concatenate,
        inputs=(2, None),
        keras_class="Concatenate",
    ),
]
