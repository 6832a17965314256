"""Asking Keras itself for the shapes of layers that have no pure-Python rule.

The generic KerasLayer component and custom code are the only nodes whose shapes need Keras.
`infer_in_child` runs the whole inference in a child process (`python -m app.probe`), so the
calling process (the Streamlit server, the CLI) never imports TensorFlow for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

from app.components import LayerInfo, Shape, ShapeError

if TYPE_CHECKING:
    from app.graph import GraphDocument
    from app.shapes import ShapeResult

_CHILD_CACHE: dict[str, Any] = {}
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


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def layer_info(
    class_name: str, config: dict[str, Any], shapes: list[Shape], call: str = "list"
) -> LayerInfo:
    """Shape and parameters of `keras.layers.<class_name>.from_config(config)` on shapes."""
    keras = _keras()
    layer_class = getattr(keras.layers, class_name, None)
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise ShapeError(f"`class_name`: keras.layers has no layer class {class_name!r}")
    try:
        layer = layer_class.from_config(dict(config))
        inputs = _symbolic_inputs(shapes)
        if len(inputs) == 1:
            output = layer(inputs[0])
        else:
            output = layer(*inputs) if call == "positional" else layer(inputs)
    except Exception as err:  # Keras raises many kinds; report the first line of any
        raise ShapeError(f"Keras rejected {class_name}: {_first_line(err)}") from None
    if isinstance(output, list | tuple):
        raise ShapeError(f"{class_name} returns {len(output)} tensors; a node has one output")
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
        raise ShapeError(f"custom code failed: {_first_line(err)}") from None
    if not hasattr(output, "shape"):
        raise ShapeError("custom code must return one tensor")
    return LayerInfo(
        tuple(output.shape), _count(model.trainable_weights), _count(model.non_trainable_weights)
    )


def infer_in_child(doc: GraphDocument) -> ShapeResult:
    """Run app.shapes.infer in a child process that may import Keras; cached per document."""
    from app.problems import Problem
    from app.shapes import ShapeResult

    payload = doc.to_json()
    key = hashlib.sha256(payload.encode()).hexdigest()
    if key not in _CHILD_CACHE:
        done = subprocess.run(
            [sys.executable, "-m", "app.probe"],
            input=payload,
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            timeout=300,
        )
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"the Keras shape probe failed: {tail}")
        _CHILD_CACHE[key] = json.loads(done.stdout)
    data = _CHILD_CACHE[key]
    infos = {
        k: LayerInfo(tuple(v["shape"]), v["trainable"], v["non_trainable"], v["flops"])
        for k, v in data["infos"].items()
    }
    return ShapeResult(infos, [Problem(**p) for p in data["problems"]])


def _main() -> None:
    from app.graph import check, parse
    from app.shapes import infer

    _keras()
    doc = parse(json.loads(sys.stdin.read()))
    result = infer(doc, check(doc))
    json.dump(
        {
            "infos": {
                k: {
                    "shape": list(v.shape),
                    "trainable": v.trainable,
                    "non_trainable": v.non_trainable,
                    "flops": v.flops,
                }
                for k, v in result.infos.items()
            },
            "problems": [
                {k: v for k, v in p.to_dict().items() if k != "fix"} for p in result.problems
            ],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    _main()
