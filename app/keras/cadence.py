"""How often LayerFlowCallback records each kind of statistic: `Cadence`, checked as it is made,
with errors that name the field, what was expected and what was received."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cadence:
    """How often `LayerFlowCallback` records each kind of statistic.

    Args:
        batch_metrics_every: write the loss and metrics every this many training batches.
        layers_every_epochs: write layer statistics at the end of every this many epochs;
            None for never.
        layers_every_batches: also write layer statistics every this many batches; None (the
            default) for never, since layer statistics cost far more than batch metrics.
        layers_max_share: skip a layer-statistics point while they have taken more than this
            share of the training time so far (their first call, which traces the sample
            probe, aside), so that large models or short epochs get them less often rather
            than slow down; the last epoch is never skipped. None for no limit.
        system_every_seconds: write CPU, memory and GPU use at most this often.
        histogram_bins: bins of the weight and activation histograms.
    """

    batch_metrics_every: int = 10
    layers_every_epochs: int | None = 1
    layers_every_batches: int | None = None
    layers_max_share: float | None = 0.03
    system_every_seconds: float = 5.0
    histogram_bins: int = 30

    def __post_init__(self) -> None:
        for name in ("batch_metrics_every", "histogram_bins"):
            _check_positive_int(name, getattr(self, name), optional=False)
        for name in ("layers_every_epochs", "layers_every_batches"):
            _check_positive_int(name, getattr(self, name), optional=True)
        share = self.layers_max_share
        if share is not None and (
            isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1
        ):
            raise ValueError(
                "Received an invalid value for `layers_max_share`, expected a number in (0, 1] "
                f"or None. Received: layers_max_share={share!r}"
            )
        seconds = self.system_every_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(
                "Received an invalid value for `system_every_seconds`, expected a positive "
                f"number of seconds. Received: system_every_seconds={seconds!r}"
            )

    @classmethod
    def of(cls, value: Cadence | dict | None) -> Cadence:
        """A Cadence from a Cadence, a dict of its fields, or None for the defaults."""
        if value is None:
            return cls()
        if isinstance(value, Cadence):
            return value
        if not isinstance(value, dict):
            raise ValueError(
                "Received an invalid value for `cadence`, expected a Cadence, a dict or None. "
                f"Received: cadence={value!r}"
            )
        fields = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ValueError(
                f"Received unknown keys for `cadence`: {', '.join(unknown)}. Expected some of: "
                f"{', '.join(fields)}. Received: cadence={value!r}"
            )
        return cls(**value)


def _check_positive_int(name: str, value: Any, optional: bool) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = "a positive integer or None" if optional else "a positive integer"
        raise ValueError(
            f"Received an invalid value for `{name}`, expected {expected}. "
            f"Received: {name}={value!r}"
        )
