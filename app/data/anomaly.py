"""Anomaly detection with an autoencoder: a graph whose Output reconstructs its Input.

Such a graph's target is its own input features, never the dataset's label column. The label,
when the dataset has one, only says which rows are normal: an autoencoder trains (and picks
its threshold) on normal rows, and the test report scores how well reconstruction error
separates the other rows from them.

`reconstructs` finds the Input a graph reconstructs, `normal_class` which class is normal and
`normal_rows` a split's normal rows. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.graph.document import GraphDocument

ANOMALY_TASK = "anomaly_detection"


def reconstructs(doc: GraphDocument) -> str | None:
    """The id of the Input the graph's one Output reconstructs: the Input its target names,
    or the one Input of a graph whose meta.task is anomaly_detection; None for other graphs."""
    inputs = [n.id for n in doc.nodes if n.component == "Input"]
    outputs = [n for n in doc.nodes if n.component == "Output"]
    if len(outputs) != 1:
        return None
    target = outputs[0].settings.get("target")
    if target in inputs:
        return target
    if doc.meta.task == ANOMALY_TASK and len(inputs) == 1:
        return inputs[0]
    return None


def row_classes(config: Any, state: Any, source: Any, rows: Sequence[int]) -> np.ndarray | None:
    """The class ids of some rows, in row order (sorted), as transforming gives them; None
    when the data has no class target."""
    from app.runtime.transform import transform

    if config.target_kind != "classes" or not state.classes or len(rows) == 0:
        return None
    return np.asarray(transform(config, state, source, sorted(rows))[1], dtype=np.int64)


def normal_class(
    classes: Sequence[str] | None, train: np.ndarray | None, setting: str | None
) -> int | None:
    """The class id of normal rows: the class named `setting`, or when it is None the most
    common class of `train` (the train rows' class ids); None for data without classes.

    Raises ValueError naming the setting when `setting` is not one of `classes`.
    """
    if not classes:
        return None
    if setting is not None:
        if setting not in classes:
            raise ValueError(
                f"Received an invalid value for `normal_class`, expected one of the dataset's "
                f"classes ({', '.join(classes)}) or null. Received: normal_class={setting!r}"
            )
        return list(classes).index(setting)
    if train is None or len(train) == 0:
        return None
    return int(np.bincount(train, minlength=len(classes)).argmax())


def normal_rows(
    config: Any, state: Any, source: Any, splits: dict[str, list[int]], setting: str | None
) -> tuple[dict[str, list[int]], int | None]:
    """The splits cut to their normal rows, and the normal class id (None, with the splits
    as they are, for data without classes)."""
    labels = {split: row_classes(config, state, source, rows) for split, rows in splits.items()}
    normal = normal_class(state.classes, labels.get("train"), setting)
    if normal is None:
        return splits, None
    cut = {
        split: [int(r) for r, c in zip(sorted(rows), labels[split], strict=True) if c == normal]
        if labels[split] is not None
        else list(rows)
        for split, rows in splits.items()
    }
    return cut, normal
