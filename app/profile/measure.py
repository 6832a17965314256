"""Where a model's time goes, measured on this machine: each node's forward and backward time
as Keras runs it, the whole training step and inference, at several batch sizes.

The model is built from the graph (its layers named by node id) and its training step, a
tf.function, is run under TensorFlow's profiler. Each op the trace records carries the name
scope of the layer that made it (`model/conv1_1/Conv2D`, `gradient_tape/model/conv1_1/...` for
its gradient), so its time goes to that layer's node: its forward time from a traced forward
pass (training mode), its backward time from the ops of a traced training step under
`gradient_tape`; the optimizer's update and anything else are kept apart. A node owns the
layers of its own part of the model (cut out from the outputs of the nodes that feed it to its
own): one layer, a Block's layers, all that a Custom node's code makes.

Whole-model times are wall-clock medians after warm-up, the least of three rounds (a shared
machine stalls now and then). A tf.function call costs a
fixed dispatch time whatever it computes (`overhead_ms`, an identity function's); the nodes'
forward times are compared with the whole forward call less that (`gap`). TensorFlow fuses some
ops of neighbouring layers (a convolution with its activation, a Dense with a following Add):
a fused op's time goes to the layer whose op it keeps. With one inter-op thread
(launch.ENVIRONMENT, set by the profiling processes) ops do not overlap, and the nodes' forward
times add up to the whole forward's (within 11% on the templates at large batches).

Importing this module imports TensorFlow.
"""

from __future__ import annotations

import collections
import re
import resource
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from app.errors import one_line
from app.graph.analysis import Analysis
from app.graph.document import GraphDocument
from app.keras.builder import build_model, node_layers
from app.keras.timing import times_ms
from app.runtime.predictor import structured

REPEATS = 25
BUDGET_S = 0.3  # a measurement stops repeating after this long (with at least 5 calls)
ROUNDS = 3
PROFILED_STEPS = 10  # training steps traced per batch size
TRACE_STEPS = 5
GRADIENT = "gradient_tape"
OPTIMIZER, OTHER = "(optimizer)", "(other)"

Progress = Callable[[float, str], None]


def median_ms(call: Callable[[], Any], repeats: int = REPEATS) -> float:
    """The median time of `call()` in milliseconds (app.keras.timing: after warm-up, up to
    `repeats` calls or BUDGET_S seconds)."""
    return statistics.median(times_ms(call, repeats, budget_s=BUDGET_S))


def steady_ms(call: Callable[[], Any], repeats: int = REPEATS, rounds: int = ROUNDS) -> float:
    """The least of `rounds` medians of `call()`: a round caught by other work on the machine
    (a shared CPU stalls for tenths of a second) does not count."""
    return min(median_ms(call, repeats) for _ in range(rounds))


def synthetic_inputs(model: Any, batch: int, seed: int = 0) -> list[np.ndarray]:
    """A batch for each model input, of its shape and dtype: normal values for numbers, zeros
    (a valid index) for integers; a dimension of any size counts 1."""
    rng = np.random.default_rng(seed)
    found = []
    for tensor in model.inputs:
        shape = (batch, *(d if d is not None else 1 for d in tensor.shape[1:]))
        dtype = np.dtype(tensor.dtype)
        if np.issubdtype(dtype, np.floating):
            found.append(rng.standard_normal(shape).astype(dtype))
        else:
            found.append(np.zeros(shape, dtype=dtype))
    return found


def node_output(model: Any, doc: GraphDocument, node_id: str) -> list[Any]:
    """The tensors a node gives: those of its layers (app.keras.builder.node_layers) that no
    other of its layers takes. ValueError when no layer carries its name; a layer called more
    than once has no one output (Keras raises AttributeError)."""
    layers = node_layers(model, doc, node_id)
    if not layers:
        raise ValueError("no Keras layer carries its name")
    taken = {id(t) for layer in layers for t in keras.tree.flatten(layer.input)}
    given = [t for layer in layers for t in keras.tree.flatten(layer.output)]
    return [t for t in given if id(t) not in taken] or given[-1:]


def node_owned_layers(model: Any, doc: GraphDocument, node_id: str) -> tuple[list[Any], bool]:
    """The Keras layers of a node's part of the model: those between the outputs of the nodes
    that feed it and its own (a Custom node's code makes layers named by Keras, not by it); and
    whether the part also calls `keras.ops` functions, which open no name scope of their own
    (their time counts as unattributed)."""
    sources = sorted((e for e in doc.edges if e.target == node_id), key=lambda e: e.slot)
    try:
        entering = [node_output(model, doc, e.source)[0] for e in sources]
        part = keras.Model(entering, node_output(model, doc, node_id))
    except (AttributeError, ValueError):  # no layer of its name, or one called twice
        return node_layers(model, doc, node_id), False
    named = {layer.name: layer for layer in model.layers}
    inputs = keras.layers.InputLayer
    layers = [named[layer.name] for layer in part.layers
              if not isinstance(layer, inputs) and layer.name in named]  # fmt: skip
    bare = any(not isinstance(op, keras.layers.Layer) for op in part.operations)
    return layers, bare


def _arranged(model: Any) -> Callable[[list], Any]:
    """A list of tensors, one per model input in order -> the structure the model takes."""
    names = [tensor.name for tensor in model.inputs]
    return lambda tensors: structured(model, dict(zip(names, tensors, strict=True)))


def _forward(model: Any, training: bool) -> Callable[[list], Any]:
    """A tf.function of a list of inputs: the model's forward pass."""
    arrange = _arranged(model)
    return tf.function(lambda xs: model(arrange(xs), training=training), reduce_retracing=True)


def _train_step(model: Any, optimizer: str) -> Callable[[list], Any]:
    """A tf.function: one training step (forward, a loss over every output, gradients and the
    optimizer's update), as fit runs it."""
    opt = keras.optimizers.get(optimizer)
    arrange = _arranged(model)

    @tf.function(reduce_retracing=True)
    def step(inputs):
        with tf.GradientTape() as tape:
            outputs = keras.tree.flatten(model(arrange(inputs), training=True))
            loss = tf.add_n([tf.reduce_mean(tf.square(tf.cast(o, tf.float32))) for o in outputs])
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply(grads, model.trainable_variables)
        return loss

    step.optimizer_name = opt.name
    return step


def op_times(call: Callable[[], Any], steps: int) -> dict[str, float]:
    """Op name -> milliseconds per call, from the ops TensorFlow's profiler records while
    `call()` runs `steps` times (after one untimed call): the median of an op's durations times
    how often it runs per call (a stall of the machine in one step does not count)."""
    call()
    with tempfile.TemporaryDirectory(prefix="layerflow-profile-") as folder:
        tf.profiler.experimental.start(folder)
        try:
            for _ in range(steps):
                call()
        finally:
            tf.profiler.experimental.stop()
        (path,) = Path(folder).glob("**/*.xplane.pb")
        space = xplane_pb2.XSpace()
        space.ParseFromString(path.read_bytes())
    durations: dict[str, list[float]] = collections.defaultdict(list)
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if "::" in name or ":" not in name:  # the executor's own events
                    continue
                durations[name.split(":", 1)[0]].append(event.duration_ps / 1e9)
    return {op: statistics.median(ms) * len(ms) / steps for op, ms in durations.items()}


def attribute(
    times: dict[str, float], owners: dict[str, str], model_name: str, optimizer: str
) -> dict[tuple[str, str], float]:
    """(node id or OPTIMIZER or OTHER, "forward" or "backward") -> milliseconds, from op times
    by op name. An op's layer is the first scope under the model's that names one of
    `owners` (layer name -> node id), as TensorFlow makes it unique: the name, or the name and
    `_N`."""
    model_scope = re.compile(rf"{re.escape(model_name)}(_\d+)?")
    found: collections.Counter[tuple[str, str]] = collections.Counter()
    for op, ms in times.items():
        parts = op.split("/")
        way = "backward" if parts[0] == GRADIENT else "forward"
        parts = parts[1:] if parts[0] == GRADIENT else parts
        owner = OTHER
        if parts and model_scope.fullmatch(parts[0]):
            for scope in parts[1:]:
                base = re.sub(r"_\d+$", "", scope)
                owner = owners.get(base) or owners.get(scope) or OTHER
                if owner != OTHER:
                    break
        elif parts and parts[0].lower().startswith(optimizer.lower()):
            owner = OPTIMIZER
        found[owner, way] += ms
    return dict(found)


def profile_times(
    analysis: Analysis,
    batch_sizes: Sequence[int],
    optimizer: str = "adam",
    inputs_of: Callable[[Any, int], list[np.ndarray]] | None = None,
    progress: Progress = lambda fraction, message: None,
    repeats: int = REPEATS,
) -> dict[str, Any]:
    """Times at each batch size (ascending): per node forward and backward (ms per step, from
    the trace), and the whole model's step, forward and inference (ms, wall clock), the traced
    forward's ops together (`traced_forward_ms`, which the nodes' forward times divide), the call
    overhead, the optimizer's and the unattributed ops' time, throughput (samples/s) and the
    process's peak resident memory after the steps.

    Args:
        analysis: the graph's analysis (it must build).
        batch_sizes: the batch sizes to measure.
        optimizer: the training step's optimizer (a Keras name).
        inputs_of: (model, batch) -> a batch for each model input; default synthetic_inputs.
        progress: called with the fraction done and what is measured.
        repeats: at most this many timed calls per wall-clock measurement.
    """
    sizes = sorted(set(int(b) for b in batch_sizes))
    if not sizes or sizes[0] < 1:
        raise ValueError(f"Received invalid batch sizes {list(batch_sizes)}: each must be >= 1")
    model = build_model(analysis)
    inputs_of = inputs_of or synthetic_inputs
    doc = analysis.doc
    ids = [n.id for n in doc.nodes if n.component != "Input"]
    owned, partial = {}, set()
    for node_id in ids:
        owned[node_id], bare = node_owned_layers(model, doc, node_id)
        if bare:
            partial.add(node_id)
    owners: dict[str, str] = {}
    for node_id, layers in owned.items():
        for layer in layers:
            owners.setdefault(layer.name, node_id)
    train_step = _train_step(model, optimizer)
    forward, inference = _forward(model, training=True), _forward(model, training=False)
    identity = tf.function(lambda xs: [tf.identity(x) for x in xs], reduce_retracing=True)
    per_node: dict[str, dict[str, Any]] = {
        node_id: {"forward_ms": [], "backward_ms": [], "layers": len(owned[node_id])}
        for node_id in ids
    }
    whole: list[dict[str, Any]] = []
    for step, batch in enumerate(sizes):
        progress(step / len(sizes), f"batch {batch}: the training step")
        feed = [tf.constant(x) for x in inputs_of(model, batch)]
        measured: dict[str, Any] = {
            "batch": batch,
            "step_ms": steady_ms(lambda f=feed: train_step(f), repeats),
            "forward_ms": steady_ms(lambda f=feed: forward(f), repeats),
            "inference_ms": steady_ms(lambda f=feed: inference(f), repeats),
            "overhead_ms": steady_ms(lambda f=feed: identity(f), repeats),
        }
        progress((step + 0.5) / len(sizes), f"batch {batch}: each node, traced")
        # forward from the forward pass alone (as the whole forward is timed: TensorFlow fuses
        # ops there that a training step keeps apart for the gradients), backward from the step
        ahead = op_times(lambda f=feed: forward(f), PROFILED_STEPS)
        ahead = attribute(ahead, owners, model.name, train_step.optimizer_name)
        times = op_times(lambda f=feed: train_step(f), PROFILED_STEPS)
        parts = attribute(times, owners, model.name, train_step.optimizer_name)
        for node_id in ids:
            per_node[node_id]["forward_ms"].append(ahead.get((node_id, "forward"), 0.0))
            per_node[node_id]["backward_ms"].append(parts.get((node_id, "backward"), 0.0))
        measured["traced_forward_ms"] = sum(ahead.values())
        for key, owner in (("optimizer_ms", OPTIMIZER), ("unattributed_ms", OTHER)):
            measured[key] = parts.get((owner, "forward"), 0.0) + parts.get((owner, "backward"), 0.0)
        measured["throughput"] = batch / (measured["step_ms"] / 1000)
        measured["inference_throughput"] = batch / (measured["inference_ms"] / 1000)
        measured["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        whole.append(measured)
    for node_id, layers in owned.items():
        if not layers:
            per_node[node_id] = {"forward_ms": None, "backward_ms": None, "layers": 0,
                                 "unmeasured": "no Keras layer is its"}  # fmt: skip
        elif node_id in partial:
            per_node[node_id]["partial"] = (
                "its code calls keras.ops functions, which TensorFlow names after no layer: "
                "their time is unattributed"
            )
    progress(1.0, "measured")
    return {"batch_sizes": sizes, "nodes": per_node, "whole": whole, "model": model}


def trace_steps(model: Any, batch: int, folder: str | Path, optimizer: str = "adam") -> None:
    """A trace of TRACE_STEPS training steps at `batch`, written into `folder` for TensorBoard's
    profile plugin (`tensorboard --logdir FOLDER`)."""
    step = _train_step(model, optimizer)
    feed = [tf.constant(x) for x in synthetic_inputs(model, batch)]
    step(feed)
    tf.profiler.experimental.start(str(folder))
    try:
        for _ in range(TRACE_STEPS):
            step(feed)
    finally:
        tf.profiler.experimental.stop()


def tflite_latency(model: Any, repeats: int = REPEATS) -> dict[str, Any]:
    """The TFLite model's latency for one sample on this CPU (the interpreter, median ms) and
    its size in bytes, in float32 and int8 (calibrated on synthetic inputs); a format the
    converter refuses has its one-line error instead."""
    from app.export.formats import write_model
    from app.runtime.predictor import Predictor, input_specs, output_names

    specs, outputs = input_specs(model), output_names(model)
    calibration = synthetic_inputs(model, 16)
    representative = {spec["name"]: x for spec, x in zip(specs, calibration, strict=True)}
    one = {name: x[:1] for name, x in representative.items()}
    found: dict[str, Any] = {}
    for variant, quantize in (("float32", None), ("int8", "int8")):
        with tempfile.TemporaryDirectory(prefix="layerflow-profile-") as folder:
            try:
                written = write_model(model, "tflite", folder, quantize, representative)
                predictor = Predictor.load(folder, "tflite", specs, outputs)
                latency = median_ms(lambda p=predictor: p.predict_all(one), repeats)
            except Exception as error:  # noqa: BLE001 - the converter's errors have no base
                found[variant] = {"error": one_line(error)}
                continue
            size = (Path(folder) / written[0]).stat().st_size
            found[variant] = {"latency_ms": latency, "bytes": size}
    return found
