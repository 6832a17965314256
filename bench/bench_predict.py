"""Benchmark: the latency of one prediction from the warm model server, beside a cold process
and the model called directly, in one run.

Run with `.venv/bin/python bench/bench_predict.py [--repeats N] [--cold N]` (about five minutes
on two cores, most of it training). Two short runs are trained in a temporary workspace as
tests/trained.py trains them: the tabular-classification template on iris and the
image-classification template on digits. Each is asked for ONE row (iris: its 4 columns; digits:
one 8x8x1 image of pixel values 0..16), the instance built from the inputs the server describes
(`client.metadata`), in three ways:
  - warm: the run's server (`app.serve.client.start`) asked over HTTP on 127.0.0.1 with
    `client.predict(record, {"instances": [row]})`, after a warm-up; --repeats requests;
  - cold: a fresh `python -c` process that loads the run with `exporter.run_predictor(run)`
    (the best checkpoint behind its preprocessing, called eagerly) and predicts the row, timed
    from process start to the answer on its stdout (the exit is not counted); --cold repeats.
    This is what each prediction cost before the warm server;
  - floor: the same model of raw data in this process, `run_predictor(run, compiled=True)`
    (as the server loads it) and `predictor.predict(row)`, after a warm-up: no HTTP, no JSON.

Prints a Markdown table of p50 and p95 in ms per path and input, the ratios cold/warm and
warm/floor (of the p50s), and whether warm p50 meets the target of 20 ms. The servers are
stopped (SIGTERM) and the workspace removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TARGET_MS = 20.0
WARMUP = 10
IMAGE_SIDE = 8  # the digits' size; the model of raw data takes images of any size
RUNS = {"iris": "classification", "digits": "image"}  # input -> tests.trained run
COLD = """
import json, sys
import numpy as np
from app.export.exporter import run_predictor
row = json.loads(sys.argv[2])
answer = run_predictor(sys.argv[1]).predict({k: np.asarray([v]) for k, v in row.items()})
print(json.dumps(np.asarray(answer).tolist()), flush=True)
"""


def instance(specs: list[dict], rng: np.random.Generator) -> dict:
    """One row for inputs described as the server describes them, keyed by column (a table's)
    or name: pixels 0..16 for an image, measurement-like numbers 0..8 for a column."""
    row = {}
    for spec in specs:
        shape = [IMAGE_SIDE if size is None else size for size in spec["shape"]]
        high = 16 if len(shape) == 3 else 8
        value = np.round(rng.uniform(0, high, shape), 1).astype(spec["dtype"])
        key = spec.get("column") or spec["name"]
        row[key] = value.item() if value.size == 1 else value.tolist()
    return row


def timed(call, repeats: int, warmup: int = WARMUP) -> list[float]:
    """Milliseconds of each of `repeats` calls, after `warmup` calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return times


def cold_ms(run: Path, row: dict, root: Path) -> float:
    """Milliseconds from starting a fresh Python process to its prediction of `row`."""
    env = {**os.environ, "LAYERFLOW_WORKSPACE": str(root)}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", COLD, str(run), json.dumps(row)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    answer = process.stdout.readline()
    seconds = time.perf_counter() - started
    if process.wait() != 0 or not answer.startswith("["):
        raise RuntimeError(f"the cold process for {run.name} failed (exit {process.returncode})")
    return 1000 * seconds


def bench(run: Path, root: Path, repeats: int, cold: int) -> dict[str, list[float]]:
    """Milliseconds per path (warm, cold, floor) for one row of the run's inputs."""
    from app.export.exporter import run_predictor
    from app.serve import client

    record = client.start(run)
    specs = client.metadata(record)["layerflow"]["inputs"]
    row = instance(specs, np.random.default_rng(0))
    body = {"instances": [row]}
    found = {"warm": timed(lambda: client.predict(record, body), repeats)}
    predictor = run_predictor(run, compiled=True)
    raw = {key: np.asarray([value]) for key, value in row.items()}
    found["floor"] = timed(lambda: predictor.predict(raw), repeats)
    found["cold"] = [cold_ms(run, row, root) for _ in range(cold)]
    return found


def stop(run: Path) -> None:
    """SIGTERM the run's server, if it runs, and wait for it to go."""
    from app.serve import client

    record = client.running(run)
    if record is None:
        return
    os.kill(record["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 10
    while client.running(run) is not None and time.monotonic() < deadline:
        time.sleep(0.1)


def table(results: dict[str, dict[str, list[float]]]) -> str:
    lines = [
        "| input | warm p50 | warm p95 | cold p50 | cold p95 | floor p50 | floor p95 "
        "| cold/warm | warm/floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, found in results.items():
        p50 = {path: np.percentile(times, 50) for path, times in found.items()}
        cells = [f"{np.percentile(found[path], q):.1f}" for path in ("warm", "cold", "floor")
                 for q in (50, 95)]  # fmt: skip
        ratios = f"{p50['cold'] / p50['warm']:.0f}x | {p50['warm'] / p50['floor']:.1f}x"
        lines.append(f"| {name} | {' | '.join(cells)} | {ratios} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="warm and floor calls")
    parser.add_argument("--cold", type=int, default=3, help="cold processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="layerflow-bench-") as folder:
        root = Path(folder)
        os.environ["LAYERFLOW_WORKSPACE"] = str(root)
        from tests.trained import RUNS as TRAINED
        from tests.trained import make_trained

        print("training iris and digits ...", file=sys.stderr, flush=True)
        made = make_trained(root, {k: TRAINED[k] for k in RUNS.values()})
        folders = {name: root / made.runs[run] for name, run in RUNS.items()}
        results = {}
        try:
            for name, run in folders.items():
                print(f"{name} ...", file=sys.stderr, flush=True)
                results[name] = bench(run, root, args.repeats, args.cold)
        finally:
            for run in folders.values():
                stop(run)
    print(f"one row per request, ms; warm and floor: {args.repeats} calls after {WARMUP}; "
          f"cold: {args.cold} processes; {os.cpu_count()} CPU cores")  # fmt: skip
    print()
    print(table(results))
    print()
    for name, found in results.items():
        p50 = np.percentile(found["warm"], 50)
        verdict = "met" if p50 < TARGET_MS else "MISSED"
        print(f"target warm p50 under {TARGET_MS:.0f} ms, {name}: {p50:.1f} ms, {verdict}")


if __name__ == "__main__":
    main()
