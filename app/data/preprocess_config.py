"""Preprocessing settings for a profiled data set: sensible defaults (`default_config`), and the
checks of settings against the profile's columns (`check_against_profile`). By default a date
gives all its parts, and an identifier is left out.

The settings themselves, fitting and transforming are the runtime's (app.runtime.config,
app.runtime.fit, app.runtime.transform); what needs a `DatasetProfile` lives here.
"""

from __future__ import annotations

import math
from typing import Any

from app.data.profile import COLUMN_TYPES, DatasetProfile
from app.runtime.config import (
    DEFAULT_HORIZON,
    DEFAULT_SEQUENCE_LENGTH,
    DEFAULT_VOCAB_SIZE,
    DEFAULT_WINDOW,
    FeatureSpec,
    PreprocessConfig,
    TargetKind,
    WindowSpec,
    check_config,
    numeric_verb,
)

ONEHOT_MAX_CATEGORIES = 20  # more categories than this get integer ids


def check_against_profile(config: PreprocessConfig, profile: DatasetProfile) -> None:
    """Raise ValueError, naming the column and setting, for settings that cannot work
    (`check_config`), or that do not fit the data: a column the profile does not have, or a
    feature kind its type refuses (numbers cannot be standardized if the column holds text, and
    so on)."""
    check_config(config)
    for spec in config.features:
        _check_feature(spec, profile)


def _check_feature(spec: FeatureSpec, profile: DatasetProfile) -> None:
    try:
        column = profile.column(spec.column)
    except KeyError:
        known = ", ".join(c.name for c in profile.columns)
        raise ValueError(f"Column '{spec.column}' is not in the data; columns: {known}") from None
    wrong = {
        "numeric": {"text", "date", "image_path", "mask_path"},
        "passthrough": {"text", "date", "image_path", "mask_path"},
        "categorical": {"image_path", "mask_path"},
        "date": set(COLUMN_TYPES) - {"date"},
        "text": {"image_path", "mask_path"},
        "image": {"numeric", "categorical", "binary", "date", "identifier", "text", "mask_path"},
    }[spec.kind]
    if profile.kind == "npz" and spec.kind in ("image", "numeric", "passthrough"):
        wrong = set()  # an npz array of pixels is profiled as numeric
    if column.type in wrong:
        verb = numeric_verb(spec)
        raise ValueError(
            f"Column '{spec.column}' holds {column.type.replace('_', ' ')} values; cannot "
            f"{verb if spec.kind in ('numeric', 'passthrough') else 'use it as ' + spec.kind}"
        )


def default_config(profile: DatasetProfile) -> PreprocessConfig:
    """Sensible settings for a profiled data set: numbers standardized, few categories one-hot
    and many as integer ids, images at their commonest size, text with a vocabulary and length
    fitted to it, and for forecasting a window of 24 steps predicting the next one, with the
    forecast column unscaled."""
    target = profile.target
    features = []
    for column in profile.columns:
        if column.name == target or column.type == "mask_path":
            continue
        spec = _default_feature(profile, column)
        if spec is not None:
            features.append(spec)
    if profile.task == "forecasting" and target is not None:
        series = [f for f in features if f.kind == "numeric"]
        # The forecast column enters its windows as it is: a forecasting model predicts the
        # change from a window's last value and adds it back, which needs that value unscaled
        # (the time_series_forecasting template normalises each window itself).
        series.append(FeatureSpec(column=target, kind="numeric", method="none"))
        window = WindowSpec(size=DEFAULT_WINDOW, horizon=DEFAULT_HORIZON, column=target)
        return PreprocessConfig(features=series, target=target, target_kind="values", window=window)
    kind: TargetKind = "none"
    if profile.task in ("binary", "multiclass"):
        kind = "classes"
    elif profile.task == "regression":
        kind = "values"
    elif profile.task == "segmentation":
        kind = "mask"
    return PreprocessConfig(features=features, target=target, target_kind=kind)


def _default_feature(profile: DatasetProfile, column: Any) -> FeatureSpec | None:
    stats = column.stats or {}
    if column.type == "date":
        return FeatureSpec(column=column.name, kind="date")
    if column.type == "identifier":
        return None  # unique per row: nothing to learn from (the profile says so)
    if stats.get("time_like"):
        return None  # a clock is not a feature: it only tells the model where it is
    shape = stats.get("shape") or []
    if profile.kind == "npz" and column.type == "numeric" and len(shape) >= 2:
        channels = shape[2] if len(shape) == 3 else 1
        if len(shape) == 2 or channels in (1, 3, 4):
            return FeatureSpec(
                column=column.name,
                kind="image",
                height=shape[0],
                width=shape[1],
                grayscale=channels == 1,
                normalize=str(stats.get("dtype", "")).startswith("uint8"),
            )
    if column.type == "numeric":
        return FeatureSpec(column=column.name, kind="numeric", method="standardize")
    if column.type == "binary":
        return FeatureSpec(column=column.name, kind="categorical", method="onehot")
    if column.type == "categorical":
        method = "onehot" if column.unique <= ONEHOT_MAX_CATEGORIES else "integer"
        return FeatureSpec(column=column.name, kind="categorical", method=method)
    if column.type == "text":
        words = int(stats.get("vocab_size") or DEFAULT_VOCAB_SIZE)
        mean_words = float(stats.get("mean_words") or DEFAULT_SEQUENCE_LENGTH / 2)
        # Room for twice the mean length, in steps of 8, at most the default.
        length = min(DEFAULT_SEQUENCE_LENGTH, max(8, 8 * math.ceil(2 * mean_words / 8)))
        return FeatureSpec(
            column=column.name,
            kind="text",
            vocab_size=min(DEFAULT_VOCAB_SIZE, words + 2),
            sequence_length=length,
        )
    if column.type == "image_path":
        sizes = stats.get("sizes") or [{"size": [64, 64, 3]}]
        height, width, channels = sizes[0]["size"]
        return FeatureSpec(
            column=column.name,
            kind="image",
            height=height,
            width=width,
            grayscale=channels == 1,
        )
    return None
