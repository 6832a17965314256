"""Benchmark: the Playground's step and redraw, the work the page does at each tick, against
its budget of 100 ms, in one run.

Run with `.venv/bin/python bench/bench_playground.py` (seconds). For the smallest and the
largest network the page offers, on the two-spirals set: the milliseconds of one step (five
epochs) and of its redraw: the decision boundary and the hidden units' maps as PNG images and
the losses as Plotly JSON, encoded as Streamlit sends them (Streamlit builds a validated
go.Figure from a Plotly dict); each the median of 20. Prints a Markdown table.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.playground.data import toy_set  # noqa: E402
from app.playground.network import Playground  # noqa: E402
from ui.playground import boundary_image, loss_figure, units_image  # noqa: E402

REPEATS = 20
BUDGET_MS = 100


def redraw(playground: Playground) -> None:
    """What the page sends at a step: two PNGs and one Plotly figure."""
    import plotly.io
    import plotly.tools
    from PIL import Image

    for image in (boundary_image(playground), units_image(playground)):
        Image.fromarray(image).save(io.BytesIO(), format="PNG")
    figure = plotly.tools.return_figure_from_figure_or_data(loss_figure(playground), True)
    plotly.io.to_json(figure, validate=False)


def median_ms(call) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    print("| network | step ms | redraw ms | total ms | share of the 100 ms budget |")
    print("|---|---|---|---|---|")
    for layers in ((1,), (4, 4), (8, 8, 8, 8)):
        playground = Playground(toy_set("spirals"), layers=layers, activation="tanh")
        playground.step(5)
        step = median_ms(lambda p=playground: p.step(5))
        draw = median_ms(lambda p=playground: redraw(p))
        total = step + draw
        print(f"| {'x'.join(map(str, layers))} units | {step:.1f} | {draw:.1f} | {total:.1f} | "
              f"{total / BUDGET_MS:.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
