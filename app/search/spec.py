"""What a search is asked to do: the metric to optimise, the cost to set against it, the limits
a trial must keep, and the budget. Parsed from the command line's words ('val_accuracy:max',
'params<=50000') and checked against the graph before a study is made, one message per fault.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

COSTS = ("params", "flops", "size", "latency")
# What each cost is, in words and in its unit; params and flops come from the engine before
# training, size and latency are measured on the trained model.
COST_UNITS = {"params": "parameters", "flops": "FLOPs per sample", "size": "bytes of weights",
              "latency": "ms per sample"}  # fmt: skip
BEFORE_TRAINING = ("params", "flops")
AFTER_TRAINING = ("size", "latency")
DIRECTIONS = {"max": "maximize", "min": "minimize"}
CONSTRAINT = re.compile(r"^\s*(params|flops|size|latency)\s*<=\s*([0-9.eE+]+)\s*(ms)?\s*$")


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str
    direction: Literal["maximize", "minimize"]

    def __str__(self) -> str:
        return f"{self.metric}:{'max' if self.direction == 'maximize' else 'min'}"


class Constraint(BaseModel):
    """At most `limit` of `measure` (params, flops, size in bytes, latency in ms per sample)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    measure: Literal[COSTS]  # type: ignore[valid-type]
    limit: float = Field(gt=0)

    def __str__(self) -> str:
        unit = " ms" if self.measure == "latency" else ""
        return f"{self.measure}<={self.limit:g}{unit}"


class SearchSpec(BaseModel):
    """A search as asked: kept in the study itself, so a worker anywhere needs only the study's
    name and storage."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    graph: dict[str, Any]  # the graph document, with its search space
    data: str
    trials: int = Field(ge=1)
    objective: Objective
    cost: Literal[COSTS] | None = None  # type: ignore[valid-type]  # a second objective
    constraints: list[Constraint] = []
    settings: dict[str, Any] = {}  # the training settings the trials start from
    seed: int = 0
    created: float = 0.0
    command: list[str] | None = None

    @property
    def directions(self) -> list[str]:
        return [self.objective.direction, *(["minimize"] if self.cost else [])]


def parse_objective(text: str) -> Objective:
    """'val_accuracy:max' (or ':min'; a bare name maximises an accuracy-like metric and
    minimises a loss or an error)."""
    name, _, way = text.strip().partition(":")
    if not name or (way and way not in DIRECTIONS):
        raise ValueError(
            f"Received an invalid value for `objective`, expected METRIC:max or METRIC:min "
            f"(e.g. val_accuracy:max). Received: objective={text!r}"
        )
    if not way:
        way = "min" if any(word in name for word in ("loss", "error")) else "max"
    return Objective(metric=name, direction=DIRECTIONS[way])


def parse_constraint(text: str) -> Constraint:
    """'params<=50000', 'flops<=1e6', 'size<=200000' (bytes), 'latency<=5ms'."""
    found = CONSTRAINT.match(text)
    if not found or (found[3] and found[1] != "latency"):
        raise ValueError(
            f"Received an invalid value for `constraint`, expected one of "
            f"{', '.join(f'{c}<=NUMBER' for c in COSTS)} (latency in ms). Received: {text!r}"
        )
    try:
        limit = float(found[2])
    except ValueError:
        message = f"Received an invalid value for `constraint`: {text!r} has no number"
        raise ValueError(message) from None
    if not limit > 0:
        raise ValueError(f"Received an invalid value for `constraint`: {text!r} must be above 0")
    return Constraint(measure=found[1], limit=limit)


def default_objective(names: list[str], validation: bool) -> Objective:
    """val_accuracy:max where the model logs accuracy, else val_loss:min (without the val_
    prefix when the data has no validation rows)."""
    prefix = "val_" if validation else ""
    if "accuracy" in names:
        return Objective(metric=f"{prefix}accuracy", direction="maximize")
    return Objective(metric=f"{prefix}loss", direction="minimize")


def objective_problem(objective: Objective, names: list[str], validation: bool) -> str | None:
    """Why the metric will not be logged by the trials' training, or None."""
    known = names + ([f"val_{n}" for n in names] if validation else [])
    if objective.metric in known:
        return None
    hint = "" if validation or not objective.metric.startswith("val_") else (
        " (the dataset has no validation rows)"
    )
    return (
        f"Received an invalid value for `objective`, expected one of {', '.join(known)}{hint}. "
        f"Received: objective={objective.metric!r}"
    )
