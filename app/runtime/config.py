"""Preprocessing settings and fitted state: what a project keeps beside its graph and its data.

`PreprocessConfig` (per feature: its column, kind and method, for a date the parts derived from
it; the target and its kind; a window for forecasting) lives in the project; `FittedState`
(means, deviations, ranges, category lists, vocabularies, classes) is what `fit` learns on the
train rows and is saved, as JSON, with the dataset version. `check_config` refuses settings
that cannot work, naming the column and the setting; `input_names` says which model input each
feature feeds.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FeatureKind = Literal["numeric", "categorical", "date", "image", "text", "passthrough"]
TargetKind = Literal["classes", "values", "mask", "none"]
METHODS: dict[str, tuple[str | None, ...]] = {
    "numeric": ("standardize", "minmax", "none"),
    "categorical": ("onehot", "integer"),
    "date": (None,),
    "image": (None,),
    "text": (None,),
    "passthrough": (None,),
}
TABULAR_KINDS = ("numeric", "categorical", "date", "passthrough")
DatePart = Literal["year", "month", "weekday", "yearday"]
DATE_PARTS: tuple[DatePart, ...] = ("year", "month", "weekday", "yearday")

UNSEEN = 0  # the id (and one-hot slot) of a category the train split did not have
PADDING, UNKNOWN_WORD = 0, 1  # TextVectorization's reserved ids
DEFAULT_VOCAB_SIZE = 10_000
DEFAULT_SEQUENCE_LENGTH = 100
DEFAULT_WINDOW, DEFAULT_HORIZON = 24, 1


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureSpec(_Settings):
    """How one column (npz: one array) becomes part of the model's inputs."""

    column: str
    kind: FeatureKind
    method: str | None = Field(
        default=None,
        description="numeric: standardize (default), minmax or none; "
        "categorical: onehot (default) or integer",
    )
    # date
    date_parts: list[DatePart] = Field(
        default_factory=lambda: list(DATE_PARTS),
        description="what a date gives the model: year (scaled over the train years), month, "
        "weekday, yearday (each as sin and cos); leave one out to turn it off",
    )
    # image
    height: int | None = None
    width: int | None = None
    grayscale: bool = False
    normalize: bool = Field(default=True, description="scale pixel values to [0, 1]")
    flip: bool = Field(default=False, description="random horizontal flips in training")
    rotation: float = Field(
        default=0.0, description="random rotations up to this fraction of a turn in training"
    )
    zoom: float = Field(default=0.0, description="random zooms up to this fraction in training")
    # text
    vocab_size: int = Field(
        default=DEFAULT_VOCAB_SIZE, description="ids in all, two of them for padding and unknown"
    )
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH

    @property
    def resolved_method(self) -> str | None:
        if self.method is None:
            return {"numeric": "standardize", "categorical": "onehot"}.get(self.kind)
        return self.method

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    @property
    def augments(self) -> bool:
        return self.kind == "image" and (self.flip or self.rotation > 0 or self.zoom > 0)


class WindowSpec(_Settings):
    """Forecasting: inputs are `size` consecutive rows, the target the next `horizon` values of
    `column`."""

    size: int = DEFAULT_WINDOW
    horizon: int = DEFAULT_HORIZON
    column: str


class PreprocessConfig(_Settings):
    """The preprocessing of a data set: its features, its target and, to forecast, a window."""

    features: list[FeatureSpec]
    target: str | None = None
    target_kind: TargetKind = "none"
    window: WindowSpec | None = None


class ColumnState(_Settings):
    """What fitting learned about one feature. Numbers are per element for an npz array."""

    # A date's mean is its mean day number (standing in for a missing date), its min and max
    # the first and last year.
    mean: float | list[float] | None = None
    std: float | list[float] | None = None
    min: float | list[float] | None = None
    max: float | list[float] | None = None
    shape: list[int] | None = None  # an npz array's shape per sample
    categories: list[int] | list[str] | None = None
    vocabulary: list[str] | None = None


class FittedState(_Settings):
    """What fitting learned on the train rows, per feature column and about the target."""

    rows: int  # train rows it was fitted on
    columns: dict[str, ColumnState]
    classes: list[str] | None = None  # class names in id order (as the profile names them)
    mask_values: list[int] | None = None  # mask pixel values in class-id order


# Settings


def check_config(config: PreprocessConfig) -> None:
    """Raise ValueError, naming the column and setting, for settings that cannot work."""
    seen: set[str] = set()
    for spec in config.features:
        where = f"Column '{spec.column}'"
        if spec.column in seen:
            raise ValueError(f"{where} appears twice in the preprocessing features")
        seen.add(spec.column)
        if spec.method not in (None, *METHODS[spec.kind]):
            allowed = [m for m in METHODS[spec.kind] if m]
            expected = f"one of {', '.join(allowed)}" if allowed else "None"
            raise ValueError(
                f"{where} ({spec.kind}): received an invalid value for `method`, expected "
                f"{expected}. Received: method={spec.method!r}"
            )
        if spec.kind == "image":
            _check_image_settings(spec, where)
        if spec.kind == "date" and (
            not spec.date_parts or len(set(spec.date_parts)) < len(spec.date_parts)
        ):
            raise ValueError(
                f"{where} (date): received an invalid value for `date_parts`, expected some of "
                f"{', '.join(DATE_PARTS)}, each once (leave the column out to use none). "
                f"Received: date_parts={spec.date_parts}"
            )
        if spec.kind == "text":
            if spec.vocab_size < 3:
                raise ValueError(
                    f"{where} (text): received an invalid value for `vocab_size`, expected an "
                    "integer >= 3 (ids 0 and 1 are padding and unknown word). "
                    f"Received: vocab_size={spec.vocab_size}"
                )
            if spec.sequence_length < 1:
                raise ValueError(
                    f"{where} (text): received an invalid value for `sequence_length`, expected "
                    f"a positive integer. Received: sequence_length={spec.sequence_length}"
                )
    if not config.features:
        raise ValueError("The preprocessing has no features; the model needs at least one input")
    _check_target(config)


def _check_image_settings(spec: FeatureSpec, where: str) -> None:
    for name in ("height", "width"):
        value = getattr(spec, name)
        if value is None or value < 1:
            raise ValueError(
                f"{where} (image): received an invalid value for `{name}`, expected a positive "
                f"integer. Received: {name}={value}"
            )
    for name in ("rotation", "zoom"):
        value = getattr(spec, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(
                f"{where} (image): received an invalid value for `{name}`, expected a fraction "
                f"in [0, 1) (0 turns it off). Received: {name}={value}"
            )


def _check_target(config: PreprocessConfig) -> None:
    columns = [spec.column for spec in config.features]
    window = config.window
    if window is not None:
        for name in ("size", "horizon"):
            value = getattr(window, name)
            if value < 1:
                raise ValueError(
                    f"Window on '{window.column}': received an invalid value for `{name}`, "
                    f"expected a positive integer. Received: {name}={value}"
                )
        if config.target not in (None, window.column):
            raise ValueError(
                f"Window on '{window.column}': the target is the column the window forecasts; "
                f"received target={config.target!r}"
            )
        if config.target_kind not in ("values", "none"):
            raise ValueError(
                f"Window on '{window.column}': received an invalid value for `target_kind`, "
                f"expected 'values'. Received: target_kind={config.target_kind!r}"
            )
        for spec in config.features:
            if spec.kind not in ("numeric", "passthrough"):
                raise ValueError(
                    f"Column '{spec.column}' ({spec.kind}): a window takes numeric features "
                    "only; set its kind to 'numeric' or leave it out"
                )
        return
    if config.target_kind == "none":
        return
    if config.target is None:
        raise ValueError(
            f"Received target_kind={config.target_kind!r} but no `target`; name the column "
            "to predict"
        )
    if config.target in columns:
        raise ValueError(f"Column '{config.target}' is the target, so it cannot also be a feature")
    if config.target_kind == "mask":
        images = [spec for spec in config.features if spec.kind == "image"]
        if len(images) != 1:
            raise ValueError(
                f"Target '{config.target}' (mask): segmentation needs exactly one image "
                f"feature for the masks' size; found {len(images)}"
            )


def numeric_verb(spec: FeatureSpec) -> str:
    """What a numeric feature's method does to its column, for messages: "standardize it"."""
    return {"standardize": "standardize it", "minmax": "scale it to [0, 1]"}.get(
        spec.resolved_method or "", "use it as a number"
    )


# Names and states


def input_names(config: PreprocessConfig) -> dict[str, str]:
    """Feature column -> the model input it feeds: "features" for the numbers, categories and dates,
    "image" and "text" for the one image or text column (by column name when there are
    several)."""
    names = {}
    for kind in ("image", "text"):
        specs = [spec for spec in config.features if spec.kind == kind]
        for spec in specs:
            names[spec.column] = kind if len(specs) == 1 else identifier(spec.column)
    for spec in config.features:
        if spec.kind in TABULAR_KINDS:
            names[spec.column] = "features"
    return names


def identifier(column: str) -> str:
    """A name Keras accepts for an input: runs of other characters become "_"."""
    return re.sub(r"\W+", "_", column).strip("_") or "input"


def column_state(state: FittedState, spec: FeatureSpec) -> ColumnState:
    """What fitting learned about a feature; an error when the settings changed since."""
    if spec.column not in state.columns:
        raise ValueError(
            f"Column '{spec.column}' is in the preprocessing settings but not in the fitted "
            "state; fit again after changing the features"
        )
    return state.columns[spec.column]
