"""How a component is declared: its settings spec, its shape-and-cost rule, its template.

A component is one `Component(...)` call in a module of this package plus one Jinja
template in `templates/components/<Name>.py.j2`. Nothing else needs to change to add one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int | None, ...]  # always includes the batch axis, which is None


BACKENDS = ("tensorflow", "jax", "torch")  # Keras 3's backends; a component runs on all by default


class ShapeError(ValueError):
    """The component cannot take the shapes it was given; the message says why."""


class SettingError(ValueError):
    """A setting's value does not fit its spec; the message names the setting."""


@dataclass(frozen=True)
class LayerInfo:
    """What the shape rule derives for one node."""

    shape: Shape
    trainable: int = 0
    non_trainable: int = 0
    flops: int = 0  # approximate floating point operations per sample

    @property
    def params(self) -> int:
        return self.trainable + self.non_trainable


@dataclass(frozen=True)
class Setting:
    """One typed setting of a component.

    kind is one of: int, float, bool, str, choice, ints (a fixed-length tuple of ints that
    also accepts a single int; with `pairs`, each entry may be a (before, after) pair), shape
    (a list of positive ints or None), json (any JSON object), code (Python source).
    """

    name: str
    kind: str
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] = ()
    length: int | None = None
    optional: bool = False  # None is an allowed value
    pattern: str | None = None  # for str settings: a regular expression the value must match
    pairs: bool = False  # for ints settings: an entry may be a (before, after) pair

    def check(self, value: Any) -> Any:
        """Return the normalized value, or raise SettingError naming the setting."""
        if value is None:
            if self.optional:
                return None
            raise self._invalid("a value", value)
        check = _CHECKS[self.kind]
        return check(self, value)

    def _invalid(self, expected: str, value: Any) -> SettingError:
        return SettingError(
            f"Received an invalid value for `{self.name}`, expected {expected}. "
            f"Received: {self.name}={value!r}"
        )

    def _range_text(self) -> str:
        if self.min is not None and self.max is not None:
            return f" between {_num(self.min)} and {_num(self.max)}"
        if self.min is not None:
            return f" >= {_num(self.min)}"
        if self.max is not None:
            return f" <= {_num(self.max)}"
        return ""

    def _in_range(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_int(s: Setting, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not s._in_range(v):
        raise s._invalid("an integer" + s._range_text(), v)
    return v


def _check_float(s: Setting, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise s._invalid("a number" + s._range_text(), v)
    if not s._in_range(v):
        raise s._invalid("a number" + s._range_text(), v)
    return float(v)


def _check_bool(s: Setting, v: Any) -> bool:
    if not isinstance(v, bool):
        raise s._invalid("true or false", v)
    return v


def _check_str(s: Setting, v: Any) -> str:
    if not isinstance(v, str) or len(v) > 10_000:
        raise s._invalid("a string", v)
    if s.pattern is not None and not re.fullmatch(s.pattern, v):
        raise s._invalid(f"a string matching {s.pattern}", v)
    return v


def _check_choice(s: Setting, v: Any) -> Any:
    if v not in s.choices or isinstance(v, bool) != isinstance(s.choices[0], bool):
        raise s._invalid("one of " + ", ".join(repr(c) for c in s.choices), v)
    return v


def _check_ints(s: Setting, v: Any) -> tuple:
    """A tuple of ints; with pairs, a tuple of (before, after) pairs unless every pair is even
    ([[1, 1], [0, 2]] stays pairs, [[1, 1], [2, 2]] is (1, 2))."""
    expected = f"an integer{s._range_text()} or a list of {s.length} such integers"
    if s.pairs:
        expected += " or of [before, after] pairs of them"
    if _is_int(v):
        v = [v] * (s.length or 1)
    if not isinstance(v, list | tuple) or not v or (s.length is not None and len(v) != s.length):
        raise s._invalid(expected, v)
    if s.pairs and any(isinstance(i, list | tuple) for i in v):
        pairs = [tuple(i) if isinstance(i, list | tuple) else (i, i) for i in v]
        if any(len(p) != 2 or not all(_is_int(i) and s._in_range(i) for i in p) for p in pairs):
            raise s._invalid(expected, v)
        return tuple(pairs) if any(a != b for a, b in pairs) else tuple(a for a, _ in pairs)
    if not all(_is_int(i) and s._in_range(i) for i in v):
        raise s._invalid(expected, v)
    return tuple(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_shape(s: Setting, v: Any) -> tuple[int | None, ...]:
    expected = "a list of positive integers (null for a variable length)"
    if not isinstance(v, list | tuple) or not v:
        raise s._invalid(expected, v)
    for i in v:
        if i is None:
            continue
        if (
            isinstance(i, bool)
            or not isinstance(i, int)
            or not (i >= 1 or (s.min == -1 and i == -1))
        ):
            raise s._invalid(expected, v)
    return tuple(v)


def _check_json(s: Setting, v: Any) -> dict:
    if not isinstance(v, dict):
        raise s._invalid("a JSON object", v)
    return v


_CHECKS: dict[str, Callable[[Setting, Any], Any]] = {
    "int": _check_int,
    "float": _check_float,
    "bool": _check_bool,
    "str": _check_str,
    "code": _check_str,
    "choice": _check_choice,
    "ints": _check_ints,
    "shape": _check_shape,
    "json": _check_json,
}

InferRule = Callable[[dict[str, Any], list[Shape]], LayerInfo]


@dataclass(frozen=True)
class Component:
    """A component of the catalogue.

    Args:
        name: the name used in graph documents, e.g. "Conv2D".
        category: palette group.
        help: one line for the palette and the settings panel.
        settings: the typed settings, in the order the panel shows them.
        infer: the shape-and-cost rule: (settings, input shapes) -> LayerInfo. Raises
            ShapeError when the inputs do not fit.
        inputs: (min, max) number of inputs; max None means any number.
        keras_class: the `keras.layers` class this component renders, used by the Keras
            importer to recognize layers.
        needs_keras: the rule asks Keras itself (generic and custom layers).
        backends: the Keras backends its code runs on (tests/test_backends.py builds every
            component on JAX); a Custom node's own code may narrow it (`backend_notes`).
        extra_layers: the suffixes of the layers its template makes beside the one named after
            the node ('<name><suffix>'), so that each layer's name is known to belong to it.
    """

    name: str
    category: str
    help: str
    settings: tuple[Setting, ...]
    infer: InferRule
    inputs: tuple[int, int | None] = (1, 1)
    keras_class: str | None = None
    needs_keras: bool = False
    tags: frozenset[str] = field(default_factory=frozenset)
    backends: tuple[str, ...] = BACKENDS
    extra_layers: tuple[str, ...] = ()

    @property
    def template(self) -> str:
        return f"components/{self.name}.py.j2"

    def setting(self, name: str) -> Setting | None:
        return next((s for s in self.settings if s.name == name), None)

    def resolve(self, raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Fill defaults and check each value. Returns (settings, error messages)."""
        errors = [
            f"Unknown setting `{key}`; {self.name} takes: "
            + (", ".join(s.name for s in self.settings) or "no settings")
            for key in raw
            if self.setting(key) is None
        ]
        resolved: dict[str, Any] = {}
        for spec in self.settings:
            value = raw.get(spec.name, spec.default)
            try:
                resolved[spec.name] = spec.check(value)
            except SettingError as err:
                errors.append(str(err))
        return resolved, errors


# Shape helpers shared by many rules.


def need_rank(shape: Shape, *ranks: int, what: str = "input") -> None:
    if len(shape) not in ranks:
        wanted = " or ".join(str(r) for r in ranks)
        raise ShapeError(
            f"expected a rank-{wanted} {what} (batch included), received shape {fmt_shape(shape)}"
        )


def fmt_shape(shape: Sequence[int | None]) -> str:
    return (
        "("
        + ", ".join("None" if d is None else str(d) for d in shape)
        + (",)" if len(shape) == 1 else ")")
    )


def known(dim: int | None, what: str) -> int:
    if dim is None:
        raise ShapeError(f"the {what} must be known, received None")
    return dim


def size(shape: Sequence[int | None]) -> int:
    """Elements per sample (batch excluded); unknown dims count as 1."""
    n = 1
    for d in shape[1:]:
        n *= d or 1
    return n


def fmt_count(count: int) -> str:
    """A large count in a few characters: 4.1 G, 25.6 M, 13.7 k; small ones whole."""
    for size, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(count) >= size:
            return f"{count / size:.1f} {unit}"
    return str(count)
