"""Widgets for what the engine describes: a typed setting, and a problem by its level.

A setting is drawn from the engine's own description of it: a component's `Setting` on the
Model page (`component_setting`), a `TrainingSettings` field on the Train page
(`training_setting`). Both come down to `setting_input`, one widget per kind of value with the
setting's help text, which returns the value the widget holds.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import streamlit as st

from app.graph.components.base import Setting
from app.graph.problems import Problem
from app.train.settings import METRICS, TrainingSettings

KINDS = ("choice", "choices", "bool", "int", "float", "str", "json")


class InvalidJSON(ValueError):
    """The text typed for a JSON setting is not JSON; `text` is what was typed."""

    def __init__(self, text: str):
        self.text = text
        super().__init__(f"not valid JSON: {text}")


def setting_input(
    name: str,
    kind: str,
    value: Any,
    key: str,
    help_text: str | None = None,
    choices: typing.Sequence[Any] = (),
    minimum: float | None = None,
    maximum: float | None = None,
    on_change: typing.Callable[[], None] | None = None,
) -> Any:
    """The widget of one setting, labelled `name`, and the value it holds (`read_setting` of
    what the widget holds; `on_change` may read it so from st.session_state[key]).

    Args:
        kind: one of KINDS: choice (a select of `choices`), choices (a multiselect of them;
            None when none is chosen), bool (a toggle), int or float (a number input within
            `minimum` and `maximum`), str (a text input) or json (JSON text; raises
            InvalidJSON when what is typed does not parse).
    """
    if kind == "choice":
        options = list(choices)
        at = options.index(value) if value in options else 0
        raw = st.selectbox(name, options, index=at, key=key, help=help_text, on_change=on_change)
    elif kind == "choices":
        raw = st.multiselect(name, list(choices), default=value or [], key=key, help=help_text,
                             on_change=on_change)  # fmt: skip
    elif kind == "bool":
        raw = st.toggle(name, bool(value), key=key, help=help_text, on_change=on_change)
    elif kind in ("int", "float"):
        cast = int if kind == "int" else float
        raw = st.number_input(
            name,
            value=cast(value),
            min_value=cast(minimum) if minimum is not None else None,
            max_value=cast(maximum) if maximum is not None else None,
            step=1 if kind == "int" else None,
            format=None if kind == "int" else "%g",
            key=key,
            help=help_text,
            on_change=on_change,
        )
    elif kind in ("json", "str"):
        shown = json.dumps(value) if kind == "json" else str(value)
        raw = st.text_input(name, shown, key=key, help=help_text, on_change=on_change)
    else:
        raise ValueError(
            f"Received an invalid value for `kind`, expected one of {', '.join(KINDS)}. "
            f"Received: kind={kind!r}"
        )
    return read_setting(kind, raw, value)


def read_setting(kind: str, raw: Any, value: Any) -> Any:
    """The value a `setting_input` widget of `kind` holding `raw` says; `value` is the one it
    was drawn with (JSON text left as drawn keeps it exactly)."""
    if kind == "choices":
        return raw or None
    if kind in ("int", "float"):
        return (int if kind == "int" else float)(raw)
    if kind == "json":
        if raw == json.dumps(value):
            return value
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise InvalidJSON(raw) from None
    return raw


def setting_kind(setting: Setting) -> str:
    """The widget kind of a component's setting: one that may be None, and the list-like
    kinds (ints, shape, json), are JSON text."""
    list_like = setting.optional or setting.kind in ("ints", "shape", "json")
    return "json" if list_like else setting.kind


def component_setting(setting: Setting, value: Any, key: str,
                      on_change: typing.Callable[[], None] | None = None) -> Any:  # fmt: skip
    """The widget of a component's setting (not a `code` one: that is edited as code)."""
    return setting_input(setting.name, setting_kind(setting), value, key, setting.help,
                         setting.choices, setting.min, setting.max, on_change)  # fmt: skip


def training_setting(name: str, value: Any, key: str) -> Any:
    """The widget of a TrainingSettings field, typed from its annotation: select, multiselect
    (metrics), toggle, number, text, or JSON text for the rest. Text that is not JSON is
    returned as it is, for TrainingSettings to name as invalid."""
    field = TrainingSettings.model_fields[name]
    annotation, help_text = field.annotation, field.description
    choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()
    if choices:
        return setting_input(name, "choice", value, key, help_text, choices)
    if name == "metrics":
        return setting_input(name, "choices", value, key, help_text, tuple(METRICS))
    if annotation in (bool, int, float, str):
        return setting_input(name, annotation.__name__, value, key, help_text)
    try:
        return setting_input(name, "json", value, key, f"{help_text} (JSON; null: none)")
    except InvalidJSON as error:
        return error.text


def problem_box(problem: Problem, where: Any = st) -> None:
    """The problem's message as an error, a warning or an info box, by its level, drawn in
    `where` (a column, a container; default the page)."""
    {"error": where.error, "warning": where.warning}.get(problem.level, where.info)(problem.message)
