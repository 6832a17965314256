"""A graph's profile: the measured times (measure), the analytic memory (memory) and the
batch-size what-if (fit) in one JSON-ready report, as `layerflow profile` prints it and the
Model page's Profile tab draws it.

The report: `batch_sizes`; `nodes`, one per node in document order (id, component, label,
parameters, and per batch size forward_ms, backward_ms, share of the training step and memory
by kind); `whole`, per batch size (overhead, forward, forward and backward, step and inference
times, throughputs, the nodes' forward sum and its `gap` to the whole forward, analytic memory
and the process's peak resident memory); `fits` (lines of step time, inference time and memory
against the batch size, and the process's peak: that memory on top of what the runtime holds)
with `whatif` (their predictions at sizes not measured) and, with a memory budget, the largest
batch whose process peak is within it; `tflite` (latency and size, float32 and int8).

Importing this module does not import TensorFlow; `profile_graph` does.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.graph.analysis import analyze
from app.graph.document import GraphDocument
from app.profile import fit
from app.profile.memory import node_memory

DEFAULT_BATCH_SIZES = (1, 8, 32, 128)
WHATIF_FACTORS = (2, 4, 8)  # the what-if predicts at these multiples of the largest size


def profile_graph(
    doc: GraphDocument,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    optimizer: str = "adam",
    inputs_of: Callable[[Any, int], list[np.ndarray]] | None = None,
    memory_budget: int | None = None,
    trace: str | Path | None = None,
    tflite: bool = True,
    progress: Callable[[float, str], None] = lambda fraction, message: None,
    repeats: int | None = None,
) -> dict[str, Any]:
    """The profile of `doc` on this machine (see the module's doc). Raises GraphError when the
    graph does not build, ValueError for bad batch sizes or optimizer."""
    from app.profile import measure

    analysis = analyze(doc)
    started = time.time()
    # Memory is analytic and exactly linear in the batch size: its line from sizes 1 and 2
    # (and an optimizer unknown to it is named now, not after the measurements).
    at = [sum(m["total"] for m in node_memory(analysis, b, optimizer).values()) for b in (1, 2)]
    memory_line = (2 * at[0] - at[1], at[1] - at[0])
    times = measure.profile_times(
        analysis, batch_sizes, optimizer, inputs_of, lambda f, m: progress(0.9 * f, m),
        **({"repeats": repeats} if repeats else {}),
    )  # fmt: skip
    sizes, model = times["batch_sizes"], times["model"]
    memory = [node_memory(analysis, b, optimizer) for b in sizes]
    nodes = []
    for node in doc.nodes:
        if node.component == "Input":
            continue
        measured = times["nodes"][node.id]
        info = analysis.infos.get(node.id)
        row: dict[str, Any] = {
            "id": node.id,
            "component": node.component,
            "label": node.label or "",
            "params": info.params if info else None,
            "layers": measured.get("layers"),
            "forward_ms": measured["forward_ms"],
            "backward_ms": measured["backward_ms"],
            "memory": [per_batch.get(node.id) for per_batch in memory],
        }
        for key in ("unmeasured", "partial"):
            if key in measured:
                row[key] = measured[key]
        nodes.append(row)
    whole = []
    for i, measured in enumerate(times["whole"]):
        timed = [n for n in nodes if n["forward_ms"] is not None]
        forward_sum = sum(n["forward_ms"][i] for n in timed)
        backward_sum = sum(n["backward_ms"][i] for n in timed)
        net = measured["forward_ms"] - measured["overhead_ms"]  # the call's dispatch is no node's
        whole.append({
            **measured,
            "node_forward_sum_ms": forward_sum,
            "node_backward_sum_ms": backward_sum,
            "gap": (net - forward_sum) / net if net > 0 else None,
            "memory_bytes": sum(m["total"] for m in memory[i].values()),
        })  # fmt: skip
        for n in timed:
            n.setdefault("share", []).append(
                (n["forward_ms"][i] + n["backward_ms"][i]) / measured["step_ms"]
            )
    report: dict[str, Any] = {
        "graph": doc.meta.name,
        "created": started,
        "seconds": None,
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "optimizer": optimizer,
        "batch_sizes": sizes,
        "nodes": nodes,
        "whole": whole,
    }  # fmt: skip
    report.update(_fits(sizes, whole, memory_line, memory_budget))
    if tflite:
        progress(0.9, "TFLite latency")
        report["tflite"] = measure.tflite_latency(model)
    if trace is not None:
        progress(0.97, "a trace for TensorBoard")
        measure.trace_steps(model, sizes[-1], trace, optimizer)
        report["trace"] = str(trace)
    report["seconds"] = time.time() - started
    progress(1.0, "done")
    return report


def _fits(
    sizes: list[int],
    whole: list[dict[str, Any]],
    memory_line: tuple[float, float],
    budget: int | None,
) -> dict[str, Any]:
    """The what-if lines and their predictions: time from the measured sizes (two or more),
    memory from the analytic line, and the process's peak: that memory on top of what the
    runtime holds itself (the measured peak at the smallest size less the model's memory
    there; a measured peak only grows where a batch needs more than the runtime took)."""
    runtime = max(whole[0]["peak_rss_bytes"] - whole[0]["memory_bytes"], 0)
    lines = {"memory_bytes": memory_line,
             "peak_bytes": (memory_line[0] + runtime, memory_line[1])}  # fmt: skip
    if len(sizes) >= 2:
        lines.update({key: fit.line(sizes, [w[key] for w in whole])
                      for key in ("step_ms", "inference_ms")})  # fmt: skip
    whatif = []
    for size in sorted({sizes[-1] * k for k in WHATIF_FACTORS} | {max(1, sizes[0] // 2)}):
        if size in sizes or "step_ms" not in lines:
            continue
        step = fit.predict(lines["step_ms"], size)
        whatif.append({
            "batch": size,
            "step_ms": step,
            "throughput": size / (step / 1000) if step > 0 else None,
            "inference_ms": fit.predict(lines["inference_ms"], size),
            "memory_bytes": fit.predict(lines["memory_bytes"], size),
            "peak_bytes": fit.predict(lines["peak_bytes"], size),
        })  # fmt: skip
    found: dict[str, Any] = {
        "fits": {key: {"intercept": a, "slope": b} for key, (a, b) in lines.items()},
        "whatif": whatif,
    }
    if budget is not None:
        largest = fit.largest_batch(lines["peak_bytes"], budget)
        found["budget"] = {"bytes": budget, "largest_batch": largest, "runtime_bytes": runtime}
    return found


def data_inputs(dataset: Any) -> Callable[[Any, int], list[np.ndarray]]:
    """(model, batch) -> the first `batch` train rows of `dataset` (cycled when it has fewer),
    preprocessed, for each model input."""
    from app.runtime.transform import transform

    config, state = dataset.preprocessing()
    source = dataset.source()
    train = sorted(dataset.splits.get("train") or [])
    if not train:
        raise ValueError(f"Dataset '{dataset.name}' has no train rows to profile on")

    def inputs_of(model: Any, batch: int) -> list[np.ndarray]:
        rows = [train[i % len(train)] for i in range(batch)]
        found, _ = transform(config, state, source, rows)
        if len(found) == 1 and len(model.inputs) == 1:
            return [next(iter(found.values()))]
        return [found[tensor.name] for tensor in model.inputs]

    return inputs_of
