"""Convolutions, pooling and the spatial resampling layers (1D, 2D and 3D, channels last)."""

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
from app.graph.components.core import activation_setting, initializer_settings

PADDINGS = ("valid", "same")


def conv_length(n: int | None, kernel: int, stride: int, padding: str, dilation: int = 1):
    """Output length of a convolution or pooling window along one axis, as Keras computes it."""
    if n is None:
        return None
    effective = kernel + (kernel - 1) * (dilation - 1)
    if padding == "same":
        return math.ceil(n / stride)
    out = (n - effective) // stride + 1
    if out < 1:
        raise ShapeError(f"a window of {effective} does not fit an input of length {n}")
    return out


def deconv_length(n: int | None, kernel: int, stride: int, padding: str, dilation: int = 1):
    if n is None:
        return None
    effective = kernel + (kernel - 1) * (dilation - 1)
    return n * stride if padding == "same" else n * stride + max(effective - stride, 0)


def _spatial(s, shape, rank: int, length_rule=conv_length):
    need_rank(shape, rank + 2)
    dilation = s.get("dilation_rate", (1,) * rank)
    strides = s["strides"] if s.get("strides") is not None else s["pool_size"]
    window = s["kernel_size"] if "kernel_size" in s else s["pool_size"]
    return tuple(
        length_rule(shape[1 + i], window[i], strides[i], s["padding"], dilation[i])
        for i in range(rank)
    )


def _conv(rank: int):
    def infer(s, inputs):
        (shape,) = inputs
        if max(s["dilation_rate"]) > 1 and max(s["strides"]) > 1:
            raise ShapeError("`strides` > 1 cannot be combined with `dilation_rate` > 1")
        spatial = _spatial(s, shape, rank)
        cin = known(shape[-1], "channel dimension")
        kernel = math.prod(s["kernel_size"])
        trainable = kernel * cin * s["filters"] + (s["filters"] if s["use_bias"] else 0)
        out = (None, *spatial, s["filters"])
        return LayerInfo(out, trainable, 0, 2 * kernel * cin * size(out))

    return infer


def _conv2d_transpose(s, inputs):
    (shape,) = inputs
    if max(s["dilation_rate"]) > 1 and max(s["strides"]) > 1:
        raise ShapeError("`strides` > 1 cannot be combined with `dilation_rate` > 1")
    spatial = _spatial(s, shape, 2, deconv_length)
    cin = known(shape[-1], "channel dimension")
    kernel = math.prod(s["kernel_size"])
    trainable = kernel * cin * s["filters"] + (s["filters"] if s["use_bias"] else 0)
    return LayerInfo(
        (None, *spatial, s["filters"]),
        trainable,
        0,
        2 * kernel * cin * s["filters"] * size(shape[:-1]),
    )


def _separable(s, inputs):
    (shape,) = inputs
    spatial = _spatial(s, shape, 2)
    cin = known(shape[-1], "channel dimension")
    kernel = math.prod(s["kernel_size"])
    depthwise = kernel * cin * s["depth_multiplier"]
    pointwise = cin * s["depth_multiplier"] * s["filters"]
    trainable = depthwise + pointwise + (s["filters"] if s["use_bias"] else 0)
    pixels = math.prod(d or 1 for d in spatial)
    return LayerInfo(
        (None, *spatial, s["filters"]), trainable, 0, 2 * pixels * (depthwise + pointwise)
    )


def _depthwise(s, inputs):
    (shape,) = inputs
    spatial = _spatial(s, shape, 2)
    cin = known(shape[-1], "channel dimension")
    out_channels = cin * s["depth_multiplier"]
    kernel = math.prod(s["kernel_size"])
    trainable = kernel * out_channels + (out_channels if s["use_bias"] else 0)
    pixels = math.prod(d or 1 for d in spatial)
    return LayerInfo(
        (None, *spatial, out_channels), trainable, 0, 2 * pixels * kernel * out_channels
    )


def _pool(rank: int):
    def infer(s, inputs):
        (shape,) = inputs
        spatial = _spatial(s, shape, rank)
        out = (None, *spatial, shape[-1])
        return LayerInfo(out, 0, 0, math.prod(s["pool_size"]) * size(out))

    return infer


def _global_pool(rank: int):
    def infer(s, inputs):
        (shape,) = inputs
        need_rank(shape, rank + 2)
        out = (None, *(1,) * rank, shape[-1]) if s["keepdims"] else (None, shape[-1])
        return LayerInfo(out, 0, 0, size(shape))

    return infer


def _scale(n, factor):
    return None if n is None else n * factor


def _upsampling(s, inputs):
    (shape,) = inputs
    need_rank(shape, 4)
    h, w = s["size"]
    return LayerInfo((None, _scale(shape[1], h), _scale(shape[2], w), shape[3]))


def _sides(amount: tuple) -> list[tuple[int, int]]:
    """(before, after) along each axis of a ZeroPadding2D or Cropping2D amount."""
    return [a if isinstance(a, tuple) else (a, a) for a in amount]


def _zero_padding(s, inputs):
    (shape,) = inputs
    need_rank(shape, 4)
    out = [
        None if d is None else d + before + after
        for d, (before, after) in zip(shape[1:3], _sides(s["padding"]), strict=True)
    ]
    return LayerInfo((None, *out, shape[3]))


def _cropping(s, inputs):
    (shape,) = inputs
    need_rank(shape, 4)
    out = []
    for d, (before, after) in zip(shape[1:3], _sides(s["cropping"]), strict=True):
        if d is not None and d - before - after < 1:
            raise ShapeError(
                f"cropping {before} and {after} from the sides leaves nothing of {fmt_shape(shape)}"
            )
        out.append(None if d is None else d - before - after)
    return LayerInfo((None, *out, shape[3]))


def _window_settings(rank: int, filters: bool = True, kernel: int = 3) -> tuple[Setting, ...]:
    out = []
    if filters:
        out.append(Setting("filters", "int", 32, "Number of output channels.", min=1, max=100_000))
    out += [
        Setting("kernel_size", "ints", [kernel] * rank, "Size of the window.", min=1, length=rank),
        Setting("strides", "ints", [1] * rank, "Step of the window.", min=1, length=rank),
        Setting(
            "padding", "choice", "same", "'same' keeps the size at stride 1.", choices=PADDINGS
        ),
    ]
    return tuple(out)


def _conv_settings(rank: int) -> tuple[Setting, ...]:
    return (
        *_window_settings(rank),
        Setting(
            "dilation_rate", "ints", [1] * rank, "Spacing between window taps.", min=1, length=rank
        ),
        activation_setting("relu"),
        Setting("use_bias", "bool", True, "Add a learned bias."),
    )


def _pool_settings(rank: int) -> tuple[Setting, ...]:
    return (
        Setting("pool_size", "ints", [2] * rank, "Size of the pooling window.", min=1, length=rank),
        Setting(
            "strides",
            "ints",
            None,
            "Step of the window; empty for the pool size.",
            min=1,
            length=rank,
            optional=True,
        ),
        Setting(
            "padding", "choice", "valid", "'same' pads so every input is covered.", choices=PADDINGS
        ),
    )


KEEPDIMS = Setting("keepdims", "bool", False, "Keep the pooled axes with length 1.")

COMPONENTS = [
    *(
        Component(
            f"Conv{r}D",
            "Convolution",
            f"{r}D convolution over channels-last inputs.",
            (*_conv_settings(r), *initializer_settings()),
            _conv(r),
            keras_class=f"Conv{r}D",
        )
        for r in (1, 2, 3)
    ),
    Component(
        "Conv2DTranspose",
        "Convolution",
        "Transposed 2D convolution: learned upsampling.",
        (
            *_window_settings(2),
            Setting("dilation_rate", "ints", [1, 1], "Spacing between taps.", min=1, length=2),
            activation_setting("relu"),
            Setting("use_bias", "bool", True, "Add a learned bias."),
            *initializer_settings(),
        ),
        _conv2d_transpose,
        keras_class="Conv2DTranspose",
    ),
    Component(
        "SeparableConv2D",
        "Convolution",
        "Depthwise then pointwise 2D convolution.",
        (
            *_conv_settings(2),
            Setting("depth_multiplier", "int", 1, "Depthwise channels per input channel.", min=1),
        ),
        _separable,
        keras_class="SeparableConv2D",
    ),
    Component(
        "DepthwiseConv2D",
        "Convolution",
        "One 2D filter per input channel.",
        (
            *_window_settings(2, filters=False),
            Setting("depth_multiplier", "int", 1, "Output channels per input channel.", min=1),
            Setting("dilation_rate", "ints", [1, 1], "Spacing between taps.", min=1, length=2),
            activation_setting("linear"),
            Setting("use_bias", "bool", True, "Add a learned bias."),
        ),
        _depthwise,
        keras_class="DepthwiseConv2D",
    ),
    *(
        Component(
            f"{kind}Pooling{r}D",
            "Pooling",
            f"{kind} over windows of a {r}D input.",
            _pool_settings(r),
            _pool(r),
            keras_class=f"{kind}Pooling{r}D",
        )
        for kind in ("Max", "Average")
        for r in (1, 2)
    ),
    *(
        Component(
            f"Global{kind}Pooling{r}D",
            "Pooling",
            f"{kind} over all positions of a {r}D input.",
            (KEEPDIMS,),
            _global_pool(r),
            keras_class=f"Global{kind}Pooling{r}D",
        )
        for kind in ("Max", "Average")
        for r in (1, 2)
    ),
    Component(
        "UpSampling2D",
        "Resampling",
        "Repeats rows and columns to enlarge feature maps.",
        (
            Setting("size", "ints", [2, 2], "Factor along height and width.", min=1, length=2),
            Setting(
                "interpolation",
                "choice",
                "nearest",
                "How new pixels are filled.",
                choices=("nearest", "bilinear"),
            ),
        ),
        _upsampling,
        keras_class="UpSampling2D",
    ),
    Component(
        "ZeroPadding2D",
        "Resampling",
        "Adds rows and columns of zeros on every side.",
        (
            Setting(
                "padding",
                "ints",
                [1, 1],
                "Rows and columns added on each side: [rows, columns], or "
                "[[top, bottom], [left, right]].",
                min=0,
                length=2,
                pairs=True,
            ),
        ),
        _zero_padding,
        keras_class="ZeroPadding2D",
    ),
    Component(
        "Cropping2D",
        "Resampling",
        "Removes rows and columns from every side.",
        (
            Setting(
                "cropping",
                "ints",
                [1, 1],
                "Rows and columns removed on each side: [rows, columns], or "
                "[[top, bottom], [left, right]].",
                min=0,
                length=2,
                pairs=True,
            ),
        ),
        _cropping,
        keras_class="Cropping2D",
    ),
]
