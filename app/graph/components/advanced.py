"""Components beyond single layers: pretrained backbones, any Keras layer, custom code, blocks."""

from __future__ import annotations

import math
from pathlib import PurePosixPath

from app.graph.components.base import Component, LayerInfo, Setting, ShapeError, known, need_rank


class Backbone:
    """A keras.applications network without its top, described well enough to count it.

    Parameter counts are linear in the input channels (only the stem convolution sees them);
    every stride-2 stage rounds up, so the feature map is ceil(size / 32) on each side.
    """

    def __init__(
        self,
        channels: int,
        trainable: int,
        per_channel: int,
        non_trainable: int,
        per_channel_nt: int,
        gflops_224: float,
    ):
        self.channels = channels
        self.trainable = trainable
        self.per_channel = per_channel
        self.non_trainable = non_trainable
        self.per_channel_nt = per_channel_nt
        self.gflops_224 = gflops_224


BACKBONES = {
    "MobileNetV2": Backbone(1280, 2_223_008, 288, 34_112, 0, 0.6),
    "ResNet50": Backbone(2048, 23_525_184, 3136, 53_120, 0, 8.2),
    "EfficientNetB0": Backbone(1280, 4_006_684, 288, 42_017, 2, 0.78),
}


def _backbone(s, inputs):
    (shape,) = inputs
    need_rank(shape, 4, what="image input (batch, height, width, channels)")
    height, width = known(shape[1], "image height"), known(shape[2], "image width")
    if min(height, width) < 32:
        raise ShapeError(
            f"{s['architecture']} needs images of at least 32x32, received {height}x{width}"
        )
    channels = known(shape[3], "channel dimension")
    weights = s["weights_file"]
    if weights and (PurePosixPath(weights).is_absolute() or ".." in PurePosixPath(weights).parts):
        raise ShapeError(
            f"`weights_file` must be a path inside the workspace, received {weights!r}"
        )
    if weights and not weights.endswith((".weights.h5", ".keras", ".h5")):
        raise ShapeError(f"`weights_file` must be a .weights.h5, .h5 or .keras file: {weights!r}")
    net = BACKBONES[s["architecture"]]
    trainable = net.trainable + net.per_channel * channels
    frozen = net.non_trainable + net.per_channel_nt * channels
    if not s["trainable"]:
        trainable, frozen = 0, trainable + frozen
    if s["pooling"] == "none":
        out = (None, math.ceil(height / 32), math.ceil(width / 32), net.channels)
    else:
        out = (None, net.channels)
    flops = int(net.gflops_224 * 1e9 * height * width / 224**2)
    return LayerInfo(out, trainable, frozen, flops)


def _keras_layer(s, inputs):
    # app.graph.shapes asks the Keras shape probe (app.keras.probe) for these nodes.
    raise ShapeError("a KerasLayer's shape comes from Keras itself")


def _custom_without_code(s, inputs):
    # app.graph.shapes asks the Keras shape probe for every node that carries code.
    raise ShapeError("a Custom node needs code: the body of a function of `inputs`")


def _block(s, inputs):
    # Blocks are expanded by app.graph.shapes, which knows the graph's block definitions.
    raise ShapeError("a Block is inferred from its definition")


CUSTOM_EXAMPLE = "x = inputs[0]\nreturn keras.ops.relu(x)\n"

COMPONENTS = [
    Component(
        "Backbone",
        "Pretrained",
        "A keras.applications network without its top, for transfer learning.",
        (
            Setting(
                "architecture", "choice", "MobileNetV2", "The network.", choices=tuple(BACKBONES)
            ),
            Setting(
                "weights_file",
                "str",
                "",
                "A local .h5/.weights.h5 file; empty for random weights (nothing is downloaded).",
            ),
            Setting("trainable", "bool", False, "Fine-tune the backbone (off: frozen)."),
            Setting(
                "pooling",
                "choice",
                "avg",
                "Pool the last feature map.",
                choices=("none", "avg", "max"),
            ),
        ),
        _backbone,
    ),
    Component(
        "KerasLayer",
        "Advanced",
        "Any layer Keras can serialize, by its class and config, for layers without a "
        "component: keras.layers, keras.applications (ConvNeXt's LayerScale), keras_hub.",
        (
            Setting(
                "class_name",
                "str",
                "Identity",
                "The layer class, e.g. GaussianNoise.",
                pattern=r"[A-Z][A-Za-z0-9_]*",
            ),
            Setting("config", "json", {}, "Keyword arguments of the class (its get_config())."),
            Setting(
                "module",
                "str",
                "keras.layers",
                "Where Keras finds the class (keras.saving.serialize_keras_object's `module`): "
                "keras.layers, or e.g. keras.src.applications.convnext.",
                pattern=r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*",
            ),
            Setting(
                "registered_name",
                "str",
                None,
                "The class's registered name (keras.saving.get_registered_name); empty for "
                "keras.layers classes.",
                optional=True,
                pattern=r"[A-Za-z0-9_.>]+",
            ),
            Setting(
                "call",
                "choice",
                "list",
                "How several inputs are passed: as one list, or one argument each (attention).",
                choices=("list", "positional"),
            ),
        ),
        _keras_layer,
        inputs=(1, None),
        needs_keras=True,
    ),
    Component(
        "Custom",
        "Advanced",
        "Your own Python: the body of a function of `inputs` (a list of tensors) that returns "
        "a tensor. `keras` and `layers` are in scope. The body is the node's `code`.",
        (
            Setting(
                "output_shape",
                "shape",
                None,
                "The shape the code returns, without the batch dimension: used while the code "
                "is not trusted (a shared graph), so that nothing runs. Empty: found by running "
                "the code.",
                optional=True,
            ),
        ),
        _custom_without_code,
        inputs=(1, None),
        needs_keras=True,
    ),
    Component(
        "Block",
        "Blocks",
        "A reusable sub-graph (cell) from the graph's block library, repeated N times.",
        (
            Setting("block", "str", "", "Name of the block definition."),
            Setting("repeat", "int", 1, "How many times the cell is stacked.", min=1, max=100),
            Setting(
                "params",
                "json",
                None,
                "Settings of the block's nodes that differ for this node, by node id: "
                '{"conv": {"filters": 128}}. The block\'s own settings stand for the rest. '
                "Folding an import puts here what differs between uses of one motif "
                "(filters per stage, strides).",
                optional=True,
            ),
            Setting(
                "names",
                "json",
                None,
                "The Keras layer names of each repetition, by the id of the block's node: "
                '{"conv": ["stage1_conv", "stage2_conv"]}. Kept on import, so that the '
                "model's weights still load by layer name. Empty, or for a node it leaves out: "
                "'<this node>_<repetition>_<node>'.",
                optional=True,
            ),
        ),
        _block,
        inputs=(1, None),
    ),
    Component(
        "BlockInput",
        "Blocks",
        "Inside a block: where the block's input number `slot` enters.",
        (Setting("slot", "int", 0, "Which of the block's inputs this is.", min=0, max=16),),
        _block,
        inputs=(0, 0),
    ),
]
