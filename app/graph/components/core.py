"""Inputs, outputs and the core layers: Dense, Activation, Dropout, reshaping, normalization."""

from __future__ import annotations

import math

from app.graph.components.base import (
    Component,
    LayerInfo,
    Setting,
    ShapeError,
    fmt_shape,
    known,
    need_rank,
    size,
)

ACTIVATIONS = (
    "linear",
    "relu",
    "gelu",
    "sigmoid",
    "tanh",
    "softmax",
    "leaky_relu",
    "swish",
    "silu",
    "elu",
    "selu",
    "softplus",
    "softsign",
    "relu6",
    "mish",
    "hard_sigmoid",
    "exponential",
    "log_softmax",
)
LOSSES = (
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
    "mean_squared_error",
    "mean_absolute_error",
    "huber",
)
DTYPES = ("float32", "int32", "int64")


# Keras' initializers that need no arguments, by the names keras.initializers.get takes.
INITIALIZERS = (
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "orthogonal", "random_normal", "random_uniform", "truncated_normal",
    "zeros", "ones",
)  # fmt: skip


def initializer_settings() -> tuple[Setting, Setting]:
    """How a layer's kernel and bias start; the template writes them only when not Keras'
    defaults (templates/components/initializers.j2)."""
    return (
        Setting("kernel_initializer", "choice", "glorot_uniform", "How the weights start.",
                choices=INITIALIZERS),
        Setting("bias_initializer", "choice", "zeros", "How the bias starts.",
                choices=tuple(name for name in INITIALIZERS if name != "orthogonal")),  # 2D+ only
    )  # fmt: skip


def activation_setting(default: str = "linear") -> Setting:
    return Setting(
        "activation", "choice", default, "Activation applied to the output.", choices=ACTIVATIONS
    )


def _dense_info(units: int, use_bias: bool, shape) -> LayerInfo:
    fan_in = known(shape[-1], "last input dimension")
    rows = size(shape[:-1])
    trainable = fan_in * units + (units if use_bias else 0)
    return LayerInfo((*shape[:-1], units), trainable, 0, 2 * rows * fan_in * units)


def _input(s, inputs):
    return LayerInfo((None, *s["shape"]))


def _output(s, inputs):
    (shape,) = inputs
    if s["units"] is None:
        return LayerInfo(shape)
    return _dense_info(s["units"], True, shape)


def _dense(s, inputs):
    (shape,) = inputs
    need_rank(shape, *range(2, 8))
    return _dense_info(s["units"], s["use_bias"], shape)


def _same_shape(s, inputs):
    return LayerInfo(inputs[0])


def _spatial_dropout(s, inputs):
    need_rank(inputs[0], 4)
    return LayerInfo(inputs[0])


def _flatten(s, inputs):
    (shape,) = inputs
    if len(shape) == 2:
        return LayerInfo(shape)
    dims = shape[1:]
    return LayerInfo((None, None if None in dims else math.prod(dims)))


def _reshape(s, inputs):
    (shape,) = inputs
    target = list(s["target_shape"])
    if target.count(-1) > 1:
        raise ShapeError("`target_shape` may hold -1 at most once")
    total = size(shape)
    if None in shape[1:]:
        return LayerInfo((None, *(None if d == -1 else d for d in target)))
    known_part = math.prod(d for d in target if d != -1)
    if -1 in target:
        if total % known_part:
            raise ShapeError(
                f"cannot reshape {fmt_shape(shape)} ({total} values) into {tuple(target)}"
            )
        target[target.index(-1)] = total // known_part
    elif known_part != total:
        raise ShapeError(f"cannot reshape {fmt_shape(shape)} ({total} values) into {tuple(target)}")
    return LayerInfo((None, *target))


def _permute(s, inputs):
    (shape,) = inputs
    dims = s["dims"]
    if sorted(dims) != list(range(1, len(shape))):
        raise ShapeError(
            f"`dims` must be a permutation of 1..{len(shape) - 1} for input "
            f"{fmt_shape(shape)}, received {tuple(dims)}"
        )
    return LayerInfo((None, *(shape[d] for d in dims)))


def _batch_norm(s, inputs):
    (shape,) = inputs
    channels = known(shape[-1], "channel dimension")
    trainable = channels * (int(s["center"]) + int(s["scale"]))
    return LayerInfo(shape, trainable, 2 * channels, 4 * size(shape))


def _layer_norm(s, inputs):
    (shape,) = inputs
    channels = known(shape[-1], "last dimension")
    trainable = channels * (int(s["center"]) + int(s["scale"]))
    return LayerInfo(shape, trainable, 0, 5 * size(shape))


def _embedding(s, inputs):
    (shape,) = inputs
    return LayerInfo((*shape, s["output_dim"]), s["input_dim"] * s["output_dim"])


COMPONENTS = [
    Component(
        "Input",
        "Input & Output",
        "Where data enters the model: one sample's shape.",
        (
            Setting("shape", "shape", [28, 28, 1], "Shape of one sample, batch excluded."),
            Setting("dtype", "choice", "float32", "Data type of the input.", choices=DTYPES),
        ),
        _input,
        inputs=(0, 0),
        keras_class="InputLayer",
    ),
    Component(
        "Output",
        "Input & Output",
        "The model's prediction of one target: optional Dense head, activation and loss.",
        (
            Setting("target", "str", "label", "Name of the data column this output predicts."),
            Setting(
                "loss",
                "choice",
                "sparse_categorical_crossentropy",
                "Loss comparing this output with its target.",
                choices=LOSSES,
            ),
            Setting(
                "units",
                "int",
                10,
                "Units of the Dense head; empty for no head.",
                min=1,
                optional=True,
            ),
            activation_setting("softmax"),
        ),
        _output,
    ),
    Component(
        "Dense",
        "Core",
        "Fully connected layer on the last axis: activation(x @ W + b).",
        (
            Setting("units", "int", 64, "Number of output units.", min=1, max=1_000_000),
            activation_setting("relu"),
            Setting("use_bias", "bool", True, "Add a learned bias."),
            *initializer_settings(),
        ),
        _dense,
        keras_class="Dense",
    ),
    Component(
        "Activation",
        "Core",
        "Applies an activation function element-wise.",
        (activation_setting("relu"),),
        _same_shape,
        keras_class="Activation",
    ),
    Component(
        "Dropout",
        "Regularization",
        "Sets a random fraction of inputs to 0 while training.",
        (Setting("rate", "float", 0.2, "Fraction of inputs to drop.", min=0.0, max=0.99),),
        _same_shape,
        keras_class="Dropout",
    ),
    Component(
        "SpatialDropout2D",
        "Regularization",
        "Drops whole feature maps while training.",
        (Setting("rate", "float", 0.2, "Fraction of channels to drop.", min=0.0, max=0.99),),
        _spatial_dropout,
        keras_class="SpatialDropout2D",
    ),
    Component(
        "Flatten",
        "Reshaping",
        "Flattens each sample into a vector.",
        (),
        _flatten,
        keras_class="Flatten",
    ),
    Component(
        "Reshape",
        "Reshaping",
        "Reshapes each sample; one dimension may be -1.",
        (Setting("target_shape", "shape", [-1], "New shape, batch excluded.", min=-1),),
        _reshape,
        keras_class="Reshape",
    ),
    Component(
        "Permute",
        "Reshaping",
        "Reorders the axes of each sample (1-based, batch excluded).",
        (Setting("dims", "ints", [2, 1], "The new order of the axes.", min=1),),
        _permute,
        keras_class="Permute",
    ),
    Component(
        "BatchNormalization",
        "Normalization",
        "Normalizes each channel with batch statistics while training, moving averages after.",
        (
            Setting("momentum", "float", 0.99, "Momentum of the moving averages.", min=0, max=1),
            Setting("epsilon", "float", 0.001, "Added to the variance.", min=0, max=1),
            Setting("center", "bool", True, "Learn an offset (beta)."),
            Setting("scale", "bool", True, "Learn a scale (gamma)."),
        ),
        _batch_norm,
        keras_class="BatchNormalization",
    ),
    Component(
        "LayerNormalization",
        "Normalization",
        "Normalizes each sample over its last axis.",
        (
            Setting("epsilon", "float", 0.001, "Added to the variance.", min=0, max=1),
            Setting("center", "bool", True, "Learn an offset (beta)."),
            Setting("scale", "bool", True, "Learn a scale (gamma)."),
        ),
        _layer_norm,
        keras_class="LayerNormalization",
    ),
    Component(
        "Embedding",
        "Text & Sequence",
        "Maps integer token ids to dense vectors.",
        (
            Setting("input_dim", "int", 10_000, "Vocabulary size.", min=1, max=10_000_000),
            Setting("output_dim", "int", 64, "Size of each vector.", min=1, max=100_000),
            Setting("mask_zero", "bool", False, "Treat id 0 as padding."),
        ),
        _embedding,
        keras_class="Embedding",
    ),
]
