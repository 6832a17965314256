"""The sample probe of LayerFlowCallback: gradient norms, activation statistics and previews of
a model on one fixed batch, since Keras callbacks never see the training batches.

A probe that fails warns once (`stats_unavailable`) and is off from then on: a monitor must not
stop the training it watches.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from app.keras.previews import (
    PREVIEW_MAPS,
    PREVIEW_SAMPLES,
    PREVIEW_SIZE,
    feature_maps,
    output_preview,
    preview_side,
)
from app.keras.statistics import array_stats, significant


class SampleProbe:
    """Gradient norms, activations and previews of one model on one fixed batch.

    One traced function runs the sample forward through a model of every layer's output (which
    includes the model's outputs, for the loss) and back for the gradients: a few milliseconds
    a call after a one-time trace, against tens of milliseconds for each eager call.

    Args:
        model: the model being trained.
        sample: a small fixed batch `(x, y)`; without `y` (None), no gradient norms.
        warn: called as `warn(code, message)` when part of the probe turns itself off.
    """

    def __init__(self, model: keras.Model, sample: tuple, warn: Any):
        self.model = model
        x, y = sample
        self.x = keras.tree.map_structure(tf.convert_to_tensor, x)
        self.y = None if y is None else keras.tree.map_structure(np.asarray, y)
        self._warn = warn
        self._output_names = _output_layer_names(model)
        self._layers: list = []  # the layers whose outputs the probe returns, in order
        self._graded: list = []  # the layers whose gradient norms it returns, in order
        self._preview_side = PREVIEW_SIZE
        self._function = None
        self._failed = False

    def run(self) -> tuple[dict[str, float], list[tuple[keras.layers.Layer, np.ndarray]]]:
        """The gradient norm of the loss over each layer's trainable weights (by layer name;
        none without a target or a compiled loss) and each layer's output on the sample."""
        if self._failed:
            return {}, []
        # A multi-output loss updates the per-output loss metrics: put them back afterwards.
        metrics = [variable for metric in self.model.metrics for variable in metric.variables]
        saved = [variable.numpy() for variable in metrics] if len(self._output_names) > 1 else []
        try:
            if self._function is None:
                self._function = self._build()
            outputs, squares = self._function(self.x, self.y)
        except Exception as error:  # a monitor must not stop the training it watches
            self._failed = True
            self._warn("stats_unavailable", f"Gradients and activations are off: {error}")
            return {}, []
        for variable, value in zip(metrics if saved else [], saved, strict=True):
            variable.assign(value)
        # -1 marks a layer the loss does not depend on: no norm rather than a zero one.
        norms = {layer.name: significant(np.sqrt(value))
                 for layer, value in zip(self._graded, squares.numpy(), strict=True)
                 if value != -1}  # fmt: skip
        values = [output.numpy() for output in outputs]
        return norms, list(zip(self._layers, values, strict=True))

    def describe(self, outputs: list[tuple[keras.layers.Layer, np.ndarray]],
                 bins: int) -> dict[str, dict[str, Any]]:  # fmt: skip
        """Per layer name: {"activation": stats with zero_fraction, "preview": ...}."""
        result = {}
        for layer, values in outputs:
            if values.dtype.kind not in "fiu" or not values.size:
                continue  # token ids as strings, masks as booleans: nothing to average
            stats = array_stats(values, bins)
            stats["zero_fraction"] = round(np.count_nonzero(values == 0) / values.size, 4)
            entry: dict[str, Any] = {"activation": stats}
            if layer.name in self._output_names:
                target = _target_of(self.y, layer.name, self._output_names)
                entry["preview"] = output_preview(values, target, self._preview_side)
            elif values.ndim == 4 and _is_convolution(layer):
                data_format = getattr(layer, "data_format", None)
                entry["preview"] = feature_maps(values, data_format, self._preview_side)
            result[layer.name] = entry
        return result

    def _build(self):
        model = self.model
        both = self._model_of_every_output()
        if both is None:

            def both(x, training):
                return model(x, training=training), []

        self._graded = [layer for layer in model.layers if layer.trainable_weights]
        variables = [weight for layer in self._graded for weight in layer.trainable_weights]
        with_gradients = self.y is not None and getattr(model, "loss", None) is not None
        if not with_gradients:
            self._graded = []

        def probe(x, y):
            if not with_gradients:
                return both(x, training=False)[1], tf.zeros([0])
            with tf.GradientTape() as tape:
                y_pred, outputs = both(x, training=False)
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred)
            gradients = iter(tape.gradient(loss, variables))
            squares = []
            for layer in self._graded:
                parts = [next(gradients) for _ in layer.trainable_weights]
                parts = [tf.reduce_sum(tf.square(tf.cast(tf.convert_to_tensor(g), tf.float32)))
                         for g in parts if g is not None]  # fmt: skip
                squares.append(tf.add_n(parts) if parts else tf.constant(-1.0))
            return outputs, tf.stack(squares) if squares else tf.zeros([0])

        # autograph=False: the probe has no control flow on tensors, and converting Keras'
        # code would only lengthen the trace.
        return tf.function(probe, autograph=False)

    def _model_of_every_output(self) -> keras.Model | None:
        """A model of the model's outputs and every layer's output; None when the model has no
        layer graph (a subclassed model) or it cannot be cut into one."""
        model = self.model
        layers, tensors = [], []
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                continue  # a nested model's `output` is in its own graph, not this one
            try:
                output = layer.output
            except (AttributeError, ValueError):
                continue  # a layer called twice has no single output; a subclassed model none
            if isinstance(output, keras.KerasTensor):
                layers.append(layer)
                tensors.append(output)
        if not tensors:
            return None
        try:
            both = keras.Model(_symbolic(model, "input"), [_symbolic(model, "output"), tensors])
        except ValueError as error:
            self._warn("stats_unavailable", f"Activation statistics are off: {error}")
            return None
        self._layers = layers
        maps = sum(min(PREVIEW_MAPS, tensor.shape[-1] or PREVIEW_MAPS)
                   for layer, tensor in zip(layers, tensors, strict=True)
                   if len(tensor.shape) == 4 and _is_convolution(layer))  # fmt: skip
        maps += sum(2 * PREVIEW_SAMPLES for layer, tensor in zip(layers, tensors, strict=True)
                    if layer.name in self._output_names and len(tensor.shape) >= 3)  # fmt: skip
        self._preview_side = preview_side(maps)
        return both


def _symbolic(model: keras.Model, name: str) -> Any:
    """model.input or model.output as the model declares it; a Sequential model only has the
    lists model.inputs and model.outputs."""
    try:
        return getattr(model, name)
    except (AttributeError, ValueError):
        tensors = getattr(model, name + "s")
        return tensors[0] if len(tensors) == 1 else tensors


def _target_of(y: Any, name: str, output_names: list[str]) -> Any:
    """The part of y that is the target of output `name`."""
    if y is None:
        return None
    if isinstance(y, dict):
        return y.get(name)
    if isinstance(y, list | tuple) and len(y) == len(output_names):
        return y[output_names.index(name)]
    return y if len(output_names) == 1 else None


def _output_layer_names(model: keras.Model) -> list[str]:
    names = getattr(model, "output_names", None)  # functional models; Sequential has none
    if names:
        return list(names)
    return [model.layers[-1].name] if model.layers else []


def _is_convolution(layer: keras.layers.Layer) -> bool:
    """Conv1D/2D/3D, their transposed and separable kinds: the layers whose maps are previewed."""
    return "Conv" in type(layer).__name__
