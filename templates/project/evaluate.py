"""Stage `evaluate`: the trained model's metrics on the test split (the validation split when
there is no test row), in metrics.json.

    python evaluate.py

Reads params.yaml (`preprocessing`), model/model.keras and prepared/; writes metrics.json:
accuracy for classes (of every pixel for masks), mean absolute and root mean squared error for
values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from runtime.predictor import Predictor
from train import MODEL, load_split


def main() -> None:
    config = yaml.safe_load(Path("params.yaml").read_text())["preprocessing"]
    split = "test"
    found = load_split(split)
    if found is None:
        split, found = "validation", load_split("validation")
    if found is None or found[1] is None:
        raise SystemExit("prepared/ has no test or validation rows with targets")
    inputs, target = found
    outputs = Predictor.load(MODEL, "keras").predict_all(inputs)
    metrics: dict = {"split": split, "rows": int(len(target))}
    for name, predicted in outputs.items():
        prefix = "" if len(outputs) == 1 else f"{name}_"
        if config["target_kind"] in ("classes", "mask"):
            if predicted.shape[-1] == 1:
                ids = (predicted[..., 0] > 0.5).astype(np.int64)
            else:
                ids = predicted.argmax(axis=-1)
            metrics[f"{prefix}accuracy"] = float(np.mean(ids == target))
        else:
            errors = predicted.reshape(target.shape) - target
            metrics[f"{prefix}mae"] = float(np.mean(np.abs(errors)))
            metrics[f"{prefix}rmse"] = float(np.sqrt(np.mean(errors**2)))
    Path("metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
