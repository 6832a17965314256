"""The warnings LayerFlowCallback writes while a model trains: a NaN loss, a diverging loss, a
plateau, dead ReLUs, vanishing or exploding gradients.

Each is written once when its condition begins and forgotten when it ends, so that it is written
again if the condition comes back; the messages say what to change.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from typing import Any

import keras

VANISHING_GRADIENT = 1e-7
EXPLODING_GRADIENT = 1e3
DEAD_RELU_FRACTION = 0.9
DIVERGENCE_FACTOR = 3.0  # an epoch loss this many times the best so far is diverging
RISING_EPOCHS = 3
PLATEAU_MIN_IMPROVEMENT = 1e-3  # relative; smaller gains count as no improvement


class TrainingWarnings:
    """The warning conditions of one run, and the loss history they are judged on.

    Args:
        write: writes one warning event, as `write(code, message, layer, step)`; `layer` is
            None for a warning about the whole model, `step` None for the current step.
        lock: held while a warning is decided and written, since batch ends may come from
            several threads.
    """

    def __init__(
        self,
        write: Callable[[str, str, str | None, int | None], None],
        lock: threading.RLock,
    ):
        self._write = write
        self._lock = lock
        self._active: set[tuple[str, str | None]] = set()
        self._epoch_losses: list[float] = []
        self._best_loss = math.inf
        self._epochs_without_improvement = 0

    def warn(self, code: str, message: str, active: bool = True, layer: str | None = None,
             step: int | None = None) -> None:  # fmt: skip
        """Write a warning when its condition begins; forget it when the condition ends, so
        that it is written again if the condition comes back."""
        key = (code, layer)
        with self._lock:
            if not active:
                self._active.discard(key)
                return
            if key in self._active:
                return
            self._active.add(key)
            self._write(code, message, layer, step)

    def check_nan(self, loss: float, epoch: int, step: int) -> None:
        self.warn(
            "nan_loss",
            f"The loss is {loss} at epoch {epoch}, step {step}: look at the data first (the "
            "run's reason names a column holding NaN or an infinity); if it is finite, the "
            "learning rate is likely too high, or the inputs are not normalized.",
            active=not math.isfinite(loss), step=step,
        )  # fmt: skip

    def check_loss_trend(self, loss: Any, epoch: int, plateau_epochs: int) -> None:
        """Diverging: rising for RISING_EPOCHS epochs, or DIVERGENCE_FACTOR times the best;
        a plateau: no improvement for `plateau_epochs` epochs."""
        if not isinstance(loss, float) or not math.isfinite(loss):
            return
        best = self._best_loss
        self._epoch_losses.append(loss)
        recent = self._epoch_losses[-RISING_EPOCHS - 1 :]
        rising = len(recent) > RISING_EPOCHS and all(a < b for a, b in itertools.pairwise(recent))
        self.warn(
            "loss_diverging",
            f"The loss is diverging ({loss:.4g} at epoch {epoch}, best {best:.4g}): the learning "
            "rate is likely too high. Lower it.",
            active=rising or (math.isfinite(best) and loss > DIVERGENCE_FACTOR * best > 0),
        )  # fmt: skip
        if not math.isfinite(best) or loss < best - abs(best) * PLATEAU_MIN_IMPROVEMENT:
            self._best_loss = loss
            self._epochs_without_improvement = 0
        else:
            self._epochs_without_improvement += 1
        self.warn(
            "loss_plateau",
            f"The loss has not improved for {self._epochs_without_improvement} epochs (best "
            f"{self._best_loss:.4g}): lower the learning rate, or use a bigger model.",
            active=self._epochs_without_improvement >= plateau_epochs,
        )  # fmt: skip

    def check_gradient(self, name: str, norm: float, step: int) -> str | None:
        """Warn of a vanishing or exploding gradient norm; which of them it is, or None."""
        vanishing = norm < VANISHING_GRADIENT
        exploding = not math.isfinite(norm) or norm > EXPLODING_GRADIENT
        self.warn(
            "vanishing_gradients",
            f"The gradient norm of layer `{name}` is {norm:.2g} on the sample: vanishing "
            "gradients, the layer barely learns. Use ReLU-family activations, "
            "BatchNormalization, residual connections or a better initializer.",
            active=vanishing, layer=name, step=step,
        )  # fmt: skip
        self.warn(
            "exploding_gradients",
            f"The gradient norm of layer `{name}` is {norm:.3g} on the sample: exploding "
            "gradients. Lower the learning rate or clip gradients (clipnorm).",
            active=exploding, layer=name, step=step,
        )  # fmt: skip
        return "vanishing" if vanishing else "exploding" if exploding else None

    def check_zeros(self, layer: keras.layers.Layer, zeros: float, step: int) -> None:
        """Dead ReLUs: more than DEAD_RELU_FRACTION of a ReLU layer's outputs are zero."""
        if _is_relu(layer):
            self.warn(
                "dead_relu",
                f"{zeros:.0%} of the outputs of ReLU layer `{layer.name}` are zero on "
                "the sample: dead ReLUs. Lower the learning rate or use leaky_relu.",
                active=zeros > DEAD_RELU_FRACTION, layer=layer.name, step=step,
            )  # fmt: skip


def _is_relu(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return not layer.negative_slope
    return getattr(getattr(layer, "activation", None), "__name__", None) == "relu"
