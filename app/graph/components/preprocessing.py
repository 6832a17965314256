"""Preprocessing inside the model: rescaling, normalization, resizing and augmentation.

The Random* layers change their input only while training; at inference they pass it through.
"""

from __future__ import annotations

from app.graph.components.base import Component, LayerInfo, Setting, known, need_rank, size


def _same_shape(s, inputs):
    return LayerInfo(inputs[0], 0, 0, size(inputs[0]))


def _image_same_shape(s, inputs):
    need_rank(inputs[0], 4, what="image input (batch, height, width, channels)")
    return LayerInfo(inputs[0], 0, 0, size(inputs[0]))


def _normalization(s, inputs):
    (shape,) = inputs
    features = known(shape[-1], "last dimension")
    # mean and variance per feature plus the count of adapted samples, none of them trained
    return LayerInfo(shape, 0, 2 * features + 1, 2 * size(shape))


def _resizing(s, inputs):
    (shape,) = inputs
    need_rank(shape, 4, what="image input (batch, height, width, channels)")
    return LayerInfo((None, s["height"], s["width"], shape[3]))


COMPONENTS = [
    Component(
        "Rescaling",
        "Preprocessing",
        "Multiplies by `scale` and adds `offset` (e.g. 1/255).",
        (
            Setting("scale", "float", 1 / 255, "Factor applied to every value."),
            Setting("offset", "float", 0.0, "Value added after scaling."),
        ),
        _same_shape,
        keras_class="Rescaling",
    ),
    Component(
        "Normalization",
        "Preprocessing",
        "Standardizes each feature with a mean and variance adapted from the training data.",
        (),
        _normalization,
        keras_class="Normalization",
    ),
    Component(
        "Resizing",
        "Preprocessing",
        "Resizes images to a fixed height and width.",
        (
            Setting("height", "int", 224, "Output height in pixels.", min=1, max=16_384),
            Setting("width", "int", 224, "Output width in pixels.", min=1, max=16_384),
            Setting(
                "interpolation",
                "choice",
                "bilinear",
                "How pixels are resampled.",
                choices=("bilinear", "nearest", "bicubic", "area", "lanczos3"),
            ),
            Setting("crop_to_aspect_ratio", "bool", False, "Crop instead of distorting."),
        ),
        _resizing,
        keras_class="Resizing",
    ),
    Component(
        "RandomFlip",
        "Augmentation",
        "Flips images at random while training.",
        (
            Setting(
                "mode",
                "choice",
                "horizontal",
                "Which flips are allowed.",
                choices=("horizontal", "vertical", "horizontal_and_vertical"),
            ),
        ),
        _image_same_shape,
        keras_class="RandomFlip",
    ),
    Component(
        "RandomRotation",
        "Augmentation",
        "Rotates images at random while training.",
        (
            Setting(
                "factor",
                "float",
                0.1,
                "Largest rotation as a fraction of a full turn.",
                min=0,
                max=1,
            ),
        ),
        _image_same_shape,
        keras_class="RandomRotation",
    ),
    Component(
        "RandomZoom",
        "Augmentation",
        "Zooms images in or out at random while training.",
        (
            Setting(
                "height_factor",
                "float",
                0.1,
                "Largest zoom as a fraction of the height.",
                min=0,
                max=0.99,
            ),
        ),
        _image_same_shape,
        keras_class="RandomZoom",
    ),
]
