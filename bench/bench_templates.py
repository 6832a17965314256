"""Benchmark: every model template on its sample data at its default settings, beside the
baselines of its test report, with the wall time of training and testing, in one run.

Run with `.venv/bin/python bench/bench_templates.py [--only TEMPLATE ...]` (about half an hour
on two cores for all of them). Each template is trained as a new user would train it, with the
Python API behind `layerflow data samples`, `new --template`, `data configure`, `train` and
`test`: its sample (meta.sample) is added to a fresh temporary workspace with the default
splits, the template is configured from the data, trained at the default settings in its own
process, and tested. The test report's baselines are fitted on the same train split and scored
on the same test split (app.evaluate.baselines); the table prints the model's headline metric,
the best baseline's, the margin, HistGradientBoosting's where there is one (tables), and
seconds. The image-classification template also runs on `objects`, the harder image set that
the ResNet-blocks template is meant to win on.

Prints a Markdown table (the README's) and, with --json PATH, writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.graph.model_templates import load_template  # noqa: E402

# (template, sample); each template on the sample it names, and the small CNN on objects too
EXTRA = [("image_classification", "objects")]
TEST_SETTINGS = {"parity_formats": [], "latency_repeats": 1, "explanations": False}


def plan(only: list[str]) -> list[tuple[str, str]]:
    folder = Path(__file__).resolve().parent.parent / "model_templates"
    pairs = [(p.stem, load_template(p.stem).meta.sample) for p in sorted(folder.glob("*.json"))]
    pairs += EXTRA
    return [(t, s) for t, s in pairs if s and (not only or t in only)]


def bench(template: str, sample: str) -> dict:
    """Train and test `template` on `sample` in a fresh workspace; the report's figures."""
    from app.data.samples import make_sample
    from app.evaluate.suite import run_suite
    from app.train import launch
    from app.workspace import Workspace, runs

    with tempfile.TemporaryDirectory() as root:
        os.environ["LAYERFLOW_WORKSPACE"] = root
        workspace = Workspace(Path(root))
        dataset = workspace.add_dataset(make_sample(sample, Path(root) / "raw" / sample), sample)
        doc, _ = dataset.configure(load_template(template))
        started = time.perf_counter()
        folder = launch.create_run(doc, {}, sample)
        launch.start_run(folder).wait()
        trained = time.perf_counter() - started
        status = runs.status(folder)
        if status["state"] != "finished":
            return {"template": template, "sample": sample, "failed": status.get("reason")}
        started = time.perf_counter()
        report = run_suite(folder, TEST_SETTINGS)
        tested = time.perf_counter() - started
    baselines = report["baselines"]
    found = {r["name"]: r["value"] for r in baselines["results"]}
    return {
        "template": template,
        "sample": sample,
        "metric": baselines["metric"],
        "model": baselines["model"],
        "best_baseline": baselines["best"],
        "baseline": baselines["best_value"],
        "margin": baselines["margin"],
        "hgb": found.get("HistGradientBoosting"),
        "mase": baselines["model_metrics"].get("mase"),
        "epochs": status.get("epoch"),
        "train_s": trained,
        "test_s": tested,
    }


def table(rows: list[dict]) -> str:
    def number(value) -> str:
        return "–" if value is None else f"{value:.3f}"

    lines = [
        "| template | sample | metric | model | best baseline | margin | HGB | epochs | train s "
        "| test s |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['template']} | {r['sample']} | failed: {r['failed']} |")
            continue
        metric = r["metric"] + (f" (MASE {r['mase']:.3f})" if r["mase"] is not None else "")
        lines.append(
            f"| {r['template']} | {r['sample']} | {metric} | {number(r['model'])} "
            f"| {r['best_baseline']} {number(r['baseline'])} | {number(r['margin'])} "
            f"| {number(r['hgb'])} | {r['epochs']} | {r['train_s']:.0f} | {r['test_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], metavar="TEMPLATE")
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args()
    rows = []
    for template, sample in plan(args.only):
        print(f"{template} on {sample} ...", file=sys.stderr, flush=True)
        rows.append(bench(template, sample))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
