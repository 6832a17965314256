"""The Search page's parts: the space as an editable table, and the figures of a study
(optimisation history and parameter importances from Optuna's own plots; the Pareto front of
the metric against a cost, whose points pick a trial)."""

from __future__ import annotations

import html
import json
from typing import Any

import optuna
import pandas as pd
import plotly.graph_objects as go

from app.graph.document import Choice, Range, SearchSpace
from app.graph.space import described, dimensions, split_dimension

COLUMNS = ("name", "kind", "low", "high", "log", "step", "choices")


def space_table(space: SearchSpace | None) -> pd.DataFrame:
    """One row per searched value: its name (`node.setting`, `optional.node`,
    `training.name`), a range's ends, log and step, or the choices as JSON."""
    rows = []
    for name, dimension in (dimensions(space) if space else {}).items():
        if name.startswith("optional."):
            rows.append({"name": name, "kind": "optional"})
        elif isinstance(dimension, Range):
            rows.append({"name": name, "kind": "range", "low": dimension.low,
                         "high": dimension.high, "log": dimension.log,
                         "step": dimension.step})  # fmt: skip
        else:
            rows.append({"name": name, "kind": "choices",
                         "choices": json.dumps(dimension.choices)})  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


def space_from_table(table: pd.DataFrame) -> tuple[SearchSpace | None, list[str]]:
    """The space the edited table says, or None and one message per row at fault."""
    space = SearchSpace()
    problems = []
    for number, row in enumerate(table.to_dict("records"), start=1):
        name = str(row.get("name") or "").strip()
        if not name:
            continue
        head, rest = split_dimension(name)
        if not rest or not head:
            problems.append(f"row {number}: {name!r} must be node.setting, optional.node or "
                            "training.setting")  # fmt: skip
            continue
        kind = row.get("kind") or ("choices" if _filled(row.get("choices")) else "range")
        try:
            if head == "optional" or kind == "optional":
                space.optional.append(rest if head == "optional" else head)
                continue
            if kind == "choices":
                choices = json.loads(row.get("choices") or "")
                dimension: Range | Choice = Choice(choices=choices if isinstance(choices, list)
                                                   else [choices])  # fmt: skip
            else:
                step = row.get("step")
                dimension = Range(low=float(row["low"]), high=float(row["high"]),
                                  log=bool(row.get("log")) if _filled(row.get("log")) else False,
                                  step=float(step) if _filled(step) else None)  # fmt: skip
        except (ValueError, TypeError, KeyError) as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            problems.append(f"row {number} ({name}): {message}")
            continue
        if head == "training":
            space.training[rest] = dimension
        else:
            space.settings.setdefault(head, {})[rest] = dimension
    return (None, problems) if problems else (space, [])


def _filled(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value)) and value != ""


def trials_frame(found: dict[str, Any]) -> pd.DataFrame:
    """The trials as a table: state, score, costs, the sampled values, run and reason."""
    metric = found["objective"].split(":")[0]
    rows = []
    for row in found["rows"]:
        rows.append({
            "trial": row["trial"], "state": row["state"],
            "on front": row["trial"] in found["pareto"], metric: row.get(metric),
            "params": row.get("params"), "FLOPs": row.get("flops"),
            "latency ms": row.get("latency"), "epochs": row.get("epochs"),
            **{name: plain(value) for name, value in row["values"].items()},
            "run": row.get("run"), "reason": row.get("reason"),
        })  # fmt: skip
    return pd.DataFrame(rows)


def plain(value: Any) -> Any:
    return value if isinstance(value, int | float | str | bool) else json.dumps(value)


def history_figure(study: optuna.Study, metric: str) -> go.Figure:
    """Optuna's optimisation history of the metric."""
    if len(study.directions) == 1:
        figure = optuna.visualization.plot_optimization_history(
            study, target_name=html.escape(metric))
    else:
        figure = optuna.visualization.plot_optimization_history(
            study, target=lambda t: t.values[0], target_name=html.escape(metric)
        )
    figure.update_layout(height=340, margin={"t": 40, "b": 30})
    return figure


def importances_figure(study: optuna.Study, metric: str) -> go.Figure | None:
    """Optuna's parameter importances (fANOVA, which is indifferent to the direction) for the
    metric, or None before it can tell
    (fewer than two complete trials, or nothing varied)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return None
    try:
        figure = optuna.visualization.plot_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            target=lambda t: t.values[0], target_name=html.escape(metric),
        )  # fmt: skip
    except (ValueError, RuntimeError):  # too few distinct values to tell importances
        return None
    figure.update_layout(height=340, margin={"t": 40, "b": 30})
    return figure


def pareto_figure(found: dict[str, Any], front: list[dict[str, Any]], cost: str) -> go.Figure:
    """Every complete trial's metric against its cost, the front (found by Optuna) joined by a
    line; each point's customdata is its trial number, so a click picks it."""
    metric = found["objective"].split(":")[0]
    shown = html.escape(metric)  # Plotly draws a little HTML in titles and hover text
    points = [r for r in found["rows"] if r["state"] in ("complete", "infeasible")
              and r.get(metric) is not None and r.get(cost) is not None]  # fmt: skip
    on_front = {row["trial"] for row in front}
    figure = go.Figure()
    for label, chosen, style in (
        ("trials", [p for p in points if p["trial"] not in on_front], {"color": "#9ecae1"}),
        ("Pareto front", [p for p in points if p["trial"] in on_front],
         {"color": "#d62728", "size": 11}),
    ):  # fmt: skip
        chosen = sorted(chosen, key=lambda p: p[cost])
        figure.add_trace(go.Scatter(
            x=[p[cost] for p in chosen], y=[p[metric] for p in chosen], name=label,
            mode="lines+markers" if label == "Pareto front" else "markers", marker=style,
            customdata=[p["trial"] for p in chosen],
            hovertemplate="trial %{customdata}<br>" + f"{cost} %{{x:,}}<br>{shown} "
            "%{y:.4g}<extra></extra>",
        ))  # fmt: skip
    figure.update_layout(height=380, margin={"t": 40, "b": 30}, clickmode="event+select",
                         title=f"{shown} against {cost}", xaxis_title=cost,
                         yaxis_title=shown)  # fmt: skip
    if cost in ("params", "flops"):
        figure.update_xaxes(type="log")
    return figure


def described_space(space: SearchSpace | None) -> list[str]:
    return [f"{name}: {described(d)}" for name, d in (dimensions(space) if space else {}).items()]
