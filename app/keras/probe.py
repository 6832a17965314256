"""Asking Keras itself for the shapes of layers that have no pure-Python rule.

The generic KerasLayer component and custom code are the only nodes whose shapes need Keras,
and this module is the only owner of their shapes: importing it registers it with
app.graph.shapes. A process that has not imported it (the Streamlit server, the CLI) runs the
whole inference here, as `python -m app.keras.probe`, so it never imports TensorFlow for it.
Importing this module does not import TensorFlow; probing does.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from typing import Any

from app.errors import one_line
from app.graph import shapes
from app.graph.components import LayerInfo, Shape, ShapeError
from app.graph.document import check, parse

CUSTOM_FUNCTION = "custom_fn"


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


def _symbolic_inputs(shapes: list[Shape]):
    keras = _keras()
    return [keras.Input(batch_shape=tuple(shape)) for shape in shapes]


def _count(weights) -> int:
    total = 0
    for w in weights:
        n = 1
        for d in w.shape:
            n *= int(d)
        total += n
    return total


def layer_info(settings: dict[str, Any], shapes: list[Shape]) -> LayerInfo:
    """Shape and parameters of a KerasLayer node's layer called on shapes: the layer Keras
    deserializes from the node's module, class_name, registered_name and config, in safe mode
    (Keras imports no module outside its own packages, and runs no lambda)."""
    keras = _keras()
    where = f"{settings['module']}.{settings['class_name']}"
    serialized = {key: settings[key] for key in ("module", "class_name", "registered_name")}
    try:
        layer = keras.saving.deserialize_keras_object(
            {**serialized, "config": dict(settings["config"])}, safe_mode=True
        )
    except Exception as err:  # Keras raises many kinds; report the first line of any
        raise ShapeError(f"`class_name`: Keras cannot rebuild {where}: {one_line(err)}") from None
    if not isinstance(layer, keras.layers.Layer):
        raise ShapeError(f"`class_name`: {where} is a {type(layer).__name__}, not a Keras layer")
    try:
        inputs = _symbolic_inputs(shapes)
        if len(inputs) == 1:
            output = layer(inputs[0])
        else:
            output = layer(*inputs) if settings["call"] == "positional" else layer(inputs)
    except Exception as err:  # Keras raises many kinds; report the first line of any
        raise ShapeError(f"Keras rejected {settings['class_name']}: {one_line(err)}") from None
    if isinstance(output, list | tuple):
        raise ShapeError(
            f"{settings['class_name']} returns {len(output)} tensors; a node has one output"
        )
    return LayerInfo(
        tuple(output.shape), _count(layer.trainable_weights), _count(layer.non_trainable_weights)
    )


def compile_custom(code: str):
    """The function a node's code defines: `def custom_fn(inputs): <code>`."""
    keras = _keras()
    source = f"def {CUSTOM_FUNCTION}(inputs):\n" + textwrap.indent(code, "    ") + "\n"
    namespace: dict[str, Any] = {"keras": keras, "layers": keras.layers, "ops": keras.ops}
    exec(compile(source, "<custom code>", "exec"), namespace)  # noqa: S102 - custom code is Python
    return namespace[CUSTOM_FUNCTION]


def custom_info(code: str, shapes: list[Shape]) -> LayerInfo:
    keras = _keras()
    try:
        function = compile_custom(code)
        inputs = _symbolic_inputs(shapes)
        output = function(inputs)
        model = keras.Model(inputs, output)
    except Exception as err:
        raise ShapeError(f"custom code failed: {one_line(err)}") from None
    if not hasattr(output, "shape"):
        raise ShapeError("custom code must return one tensor")
    return LayerInfo(
        tuple(output.shape), _count(model.trainable_weights), _count(model.non_trainable_weights)
    )


class KerasProber:
    """The prober app.graph.shapes uses for KerasLayer and Custom nodes."""

    layer_info = staticmethod(layer_info)
    custom_info = staticmethod(custom_info)


shapes.register_prober(KerasProber())


def _main() -> None:
    _keras()
    doc = parse(json.loads(sys.stdin.read()))
    answer = sys.stdout
    sys.stdout = sys.stderr  # what custom code prints must not corrupt the answer
    try:
        result = shapes.result_to_json(shapes.infer(doc, check(doc)))
    finally:
        sys.stdout = answer
    json.dump(result, answer)


if __name__ == "__main__":
    _main()
