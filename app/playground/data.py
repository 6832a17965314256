"""Two-dimensional toy sets for the Playground: points in [-1, 1]^2 with a 0/1 label, made from
a seed, with Gaussian noise and a train/test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import make_blobs, make_circles
from sklearn.model_selection import train_test_split

SETS = ("circles", "xor", "spirals", "blobs")


@dataclass(frozen=True)
class ToySet:
    x_train: np.ndarray  # (n, 2)
    y_train: np.ndarray  # (n,) of 0 and 1
    x_test: np.ndarray
    y_test: np.ndarray


def toy_set(kind: str, points: int = 400, noise: float = 0.1, train: float = 0.5,
            seed: int = 0) -> ToySet:  # fmt: skip
    """`points` points of the set `kind`, noise as a fraction of the plane's half-width, and
    the share `train` of them to train on."""
    if kind not in SETS:
        raise ValueError(f"Received an invalid value for `kind`, expected one of "
                         f"{', '.join(SETS)}. Received: kind={kind!r}")  # fmt: skip
    if not 0.05 <= train <= 0.95:
        raise ValueError(f"Received an invalid value for `train`, expected a share from 0.05 "
                         f"to 0.95. Received: train={train!r}")  # fmt: skip
    rng = np.random.default_rng(seed)
    if kind == "circles":
        x, y = make_circles(points, noise=noise, factor=0.5, random_state=seed)
        x = x * 0.9
    elif kind == "blobs":
        x, y = make_blobs(points, centers=[[-0.45, -0.45], [0.45, 0.45]],
                          cluster_std=0.15 + noise, random_state=seed)  # fmt: skip
    elif kind == "xor":
        x = rng.uniform(-1, 1, size=(points, 2))
        y = (x[:, 0] * x[:, 1] > 0).astype(int)
        x = x + rng.normal(0, noise, size=x.shape)
    else:  # two spirals, each turning one and a half times around the centre
        turn = np.sqrt(rng.uniform(0, 1, points // 2)) * 3 * np.pi
        arm = np.stack([turn * np.cos(turn), turn * np.sin(turn)], axis=1) / (3 * np.pi)
        x = np.concatenate([arm, -arm]) + rng.normal(0, noise, size=(2 * len(arm), 2))
        y = np.concatenate([np.zeros(len(arm), int), np.ones(len(arm), int)])
    x = np.clip(x, -1, 1).astype(np.float64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, train_size=train, random_state=seed, stratify=y
    )
    return ToySet(x_train, y_train, x_test, y_test)
