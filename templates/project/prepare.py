"""Stage `prepare`: read the raw data, fit the preprocessing on the train split, and write each
split's raw inputs and targets.

    python prepare.py

Reads params.yaml (`data`, `preprocessing`) and data/; writes prepared/preprocessing.json and
prepared/<split>.npz (inputs as x_<name>, targets as y) for the train, validation and test
splits. Reading, fitting and transforming are LayerFlow's own (the package runtime/).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from runtime.config import PreprocessConfig
from runtime.fit import fit
from runtime.rows import read_rows
from runtime.serving import examples

PREPARED = Path("prepared")
SPLITS = ("train", "validation", "test")


def split_rows(data: dict, rows: int, ordered: bool) -> dict[str, list[int]]:
    """The rows of each split: data/splits.json (as LayerFlow made them), or, when there is
    none (data of your own), `fractions` of the rows drawn with `seed` (in order, for a time
    series)."""
    path = Path(data["splits"])
    if path.is_file():
        return json.loads(path.read_text())
    order = np.arange(rows) if ordered else np.random.default_rng(data["seed"]).permutation(rows)
    train, validation, _ = data["fractions"]
    cuts = [int(round(rows * train)), int(round(rows * (train + validation)))]
    parts = np.split(order, cuts)
    return {name: sorted(int(i) for i in part) for name, part in zip(SPLITS, parts, strict=True)}


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    data = params["data"]
    config = PreprocessConfig.model_validate(params["preprocessing"])
    rows = read_rows(data.get("table") or data["arrays"])
    splits = split_rows(data, len(rows.frame), ordered=config.window is not None)
    state = fit(config, rows, splits["train"])
    staging = PREPARED.with_name(PREPARED.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for split in SPLITS:
        index = splits.get(split) or []
        if not index:
            continue
        inputs, target = examples(config, state, rows, index)
        # Strings are kept as NumPy text, which loads without pickle.
        arrays = {
            f"x_{name}": value.astype(str) if value.dtype == object else value
            for name, value in inputs.items()
        }
        if target is not None:
            arrays["y"] = target
        np.savez(staging / f"{split}.npz", **arrays)
        print(f"{split}: {len(next(iter(inputs.values())))} examples")
    (staging / "preprocessing.json").write_text(state.model_dump_json(indent=2) + "\n")
    shutil.rmtree(PREPARED, ignore_errors=True)
    staging.rename(PREPARED)


if __name__ == "__main__":
    main()
