"""The Playground's network: scikit-learn's MLPClassifier, trained one step (epoch) at a time
with partial_fit, and what the page draws of it: the probability of class 1 over the plane,
the train and test losses, and each hidden unit's response over the plane (its activation,
computed from the network's own weights)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier

from app.playground.data import ToySet

ACTIVATIONS = ("relu", "tanh", "logistic", "identity")
GRID = 60  # points per side of the plane's grid
_ACTIVATE = {
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "logistic": lambda z: 1 / (1 + np.exp(-z)),
    "identity": lambda z: z,
}


@dataclass
class Playground:
    """A network being trained on a toy set, and its losses so far."""

    data: ToySet
    layers: tuple[int, ...] = (4, 4)
    activation: str = "tanh"
    learning_rate: float = 0.03
    regularization: float = 0.0  # L2 (scikit-learn's alpha)
    seed: int = 0
    steps: int = 0
    loss_steps: list[int] = field(default_factory=list)  # the epochs the losses were taken at
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"Received an invalid value for `activation`, expected one of "
                             f"{', '.join(ACTIVATIONS)}. Received: {self.activation!r}")
        if not self.layers or not all(1 <= units <= 64 for units in self.layers):
            raise ValueError(f"Received an invalid value for `layers`, expected 1 to 64 units "
                             f"per layer. Received: layers={self.layers!r}")  # fmt: skip
        self.model = MLPClassifier(
            hidden_layer_sizes=self.layers, activation=self.activation, solver="adam",
            learning_rate_init=self.learning_rate, alpha=self.regularization,
            batch_size=min(32, len(self.data.y_train)), random_state=self.seed,
            shuffle=True,
        )  # fmt: skip
        grid = np.linspace(-1, 1, GRID)
        self.grid = grid
        self.plane = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)

    def step(self, count: int = 1) -> None:
        """Train `count` more epochs, each a pass over the train points: one partial_fit (which
        keeps the optimizer's state from step to step) over the points repeated `count` times,
        shuffled into minibatches as `count` epochs would be."""
        x = np.tile(self.data.x_train, (count, 1))
        y = np.tile(self.data.y_train, count)
        self.model.partial_fit(x, y, classes=[0, 1])
        self.steps += count
        self.loss_steps.append(self.steps)
        self.train_loss.append(self.loss(self.data.x_train, self.data.y_train))
        self.test_loss.append(self.loss(self.data.x_test, self.data.y_test))

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(log_loss(y, self.model.predict_proba(x), labels=[0, 1]))

    def boundary(self) -> np.ndarray:
        """P(class 1) over the plane's grid, (GRID, GRID), rows by y (one half everywhere
        before the first step)."""
        if not self.steps:
            return np.full((GRID, GRID), 0.5)
        return self.model.predict_proba(self.plane)[:, 1].reshape(GRID, GRID)

    def units(self) -> list[list[np.ndarray]]:
        """Each hidden unit's activation over the plane's grid, layer by layer (none before the
        first step: the network has no weights yet)."""
        if not self.steps:
            return []
        activate = _ACTIVATE[self.activation]
        found, x = [], self.plane
        for weights, bias in zip(self.model.coefs_[:-1], self.model.intercepts_[:-1],
                                 strict=True):  # fmt: skip
            x = activate(x @ weights + bias)
            found.append([x[:, unit].reshape(GRID, GRID) for unit in range(x.shape[1])])
        return found

    def accuracy(self) -> tuple[float, float]:
        return (float(self.model.score(self.data.x_train, self.data.y_train)),
                float(self.model.score(self.data.x_test, self.data.y_test)))  # fmt: skip
