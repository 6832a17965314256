"""Production checks of a model on a batch of test inputs, each a dict {name, passed (true,
false, or None when not run), value, detail, informational}: NaN and inf inputs
(`nan_check`), batch against one-by-one predictions (`batch_check`), the same batch twice
(`determinism_check`), latency and size (`measure_performance`, informational) and export
parity (`parity_checks`, through app.export.parity).

Importing this module does not import TensorFlow; the model passed in is a Keras model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.evaluate.settings import TestSettings
from app.evaluate.subject import Subject
from app.runtime.predictor import first_output, structured
from app.workspace import runs

BATCH_ATOL, BATCH_RTOL = 1e-4, 1e-5


def _check(
    name: str, passed: bool | None, value: Any, detail: str, informational: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "passed": passed,
        "value": value,
        "detail": detail,
        "informational": informational,
    }


def behaviour_checks(
    model, inputs: dict[str, np.ndarray], settings: TestSettings
) -> list[dict[str, Any]]:
    checks = []
    if settings.nan_check:
        checks.append(nan_check(model, inputs))
    else:
        checks.append(_check("nan_inputs", None, None, "off in the settings", True))
    if settings.batch_check:
        checks.append(batch_check(model, inputs))
    else:
        checks.append(_check("batch_consistency", None, None, "off in the settings", True))
    if settings.determinism_check:
        checks.append(determinism_check(model, inputs))
    else:
        checks.append(_check("determinism", None, None, "off in the settings", True))
    return checks


def nan_check(model, inputs: dict[str, np.ndarray], samples: int = 8) -> dict[str, Any]:
    """Predict a few samples with NaN, inf or -inf put into their float inputs: passes when
    the model returns an array of the right shape without raising; value is the fraction of
    samples whose outputs are all finite."""
    count = min(samples, len(next(iter(inputs.values()))))
    floats = [name for name, values in inputs.items() if values.dtype.kind == "f"]
    if not floats:
        return _check("nan_inputs", None, None, "no float inputs to put NaN into", True)
    broken = {name: values[:count].copy() for name, values in inputs.items()}
    poison = (np.nan, np.inf, -np.inf)
    for name in floats:
        flat = broken[name].reshape(count, -1)
        for i in range(count):
            flat[i, (i * 7) % flat.shape[1]] = poison[i % 3]
        if count > 3:
            flat[3, :] = np.nan  # and one sample that is all NaN
        broken[name] = flat.reshape(broken[name].shape)
    expected = first_output(model.predict_on_batch(structured(model, _take(inputs, count)))).shape
    try:
        out = first_output(model.predict_on_batch(structured(model, broken)))
    except Exception as err:  # noqa: BLE001 - a crash is what this check finds
        return _check("nan_inputs", False, None, f"prediction raised {_one_line(err)}")
    if out.shape != expected:
        return _check(
            "nan_inputs",
            False,
            None,
            f"predicted shape {list(out.shape)} for NaN inputs, {list(expected)} otherwise",
        )
    finite = np.isfinite(out.reshape(count, -1)).all(axis=1)
    return _check(
        "nan_inputs",
        True,
        float(finite.mean()),
        f"{count} samples with NaN or inf inputs predicted without error; outputs finite for "
        f"{int(finite.sum())} of {count}",
    )


def batch_check(model, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Predictions one sample at a time against one batch: passes when they agree within
    atol 1e-4 (and rtol 1e-5, for outputs of large magnitude); value is the largest
    difference."""
    count = len(next(iter(inputs.values())))
    batch = first_output(model.predict_on_batch(structured(model, inputs)))
    single = np.concatenate(
        [
            first_output(model.predict_on_batch(structured(model, _take(inputs, i, i + 1))))
            for i in range(count)
        ]
    )
    difference = _max_difference(single, batch)
    passed = bool(np.allclose(single, batch, atol=BATCH_ATOL, rtol=BATCH_RTOL, equal_nan=True))
    return _check(
        "batch_consistency",
        passed,
        difference,
        f"batch size 1 against {count}: largest difference {difference:.3g} "
        f"(tolerance {BATCH_ATOL:g} + {BATCH_RTOL:g} x value)",
    )


def determinism_check(model, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The same batch predicted twice: passes when the two are identical."""
    first = first_output(model.predict_on_batch(structured(model, inputs)))
    second = first_output(model.predict_on_batch(structured(model, inputs)))
    difference = _max_difference(first, second)
    passed = bool(np.array_equal(first, second, equal_nan=True))
    return _check(
        "determinism",
        passed,
        difference,
        "two predictions of the same batch are identical"
        if passed
        else f"two predictions of the same batch differ by up to {difference:.3g}",
    )


def _take(inputs: dict[str, np.ndarray], start: int, stop: int | None = None) -> dict:
    if stop is None:
        start, stop = 0, start
    return {name: values[start:stop] for name, values in inputs.items()}


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
    difference = difference[np.isfinite(difference)]
    return float(difference.max()) if difference.size else 0.0


def measure_performance(
    model, inputs: dict[str, np.ndarray], subject: Subject, settings: TestSettings
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Latency of one sample and of a batch (p50, p95 in ms) and the model's size on disk."""
    size = (subject.folder / runs.CHECKPOINTS / runs.BEST).stat().st_size
    performance: dict[str, Any] = {"model_size_bytes": size, "model_size_mb": size / 2**20}
    checks = []
    if settings.latency_check:
        count = len(next(iter(inputs.values())))
        one = _latency(model, _take(inputs, 1), settings.latency_repeats)
        many = _latency(model, inputs, settings.latency_repeats)
        performance.update(
            latency_p50_ms=one[0],
            latency_p95_ms=one[1],
            batch_size=count,
            batch_latency_p50_ms=many[0],
            batch_latency_p95_ms=many[1],
            latency_repeats=settings.latency_repeats,
        )
        checks.append(
            _check(
                "latency_batch_1",
                True,
                one[1],
                f"one sample: p50 {one[0]:.2f} ms, p95 {one[1]:.2f} ms "
                f"({settings.latency_repeats} predictions)",
                informational=True,
            )
        )
        checks.append(
            _check(
                f"latency_batch_{count}",
                True,
                many[1],
                f"a batch of {count}: p50 {many[0]:.2f} ms, p95 {many[1]:.2f} ms "
                f"({many[0] / count:.3f} ms per sample at p50)",
                informational=True,
            )
        )
    else:
        checks.append(_check("latency", None, None, "off in the settings", True))
    checks.append(
        _check(
            "model_size",
            True,
            size,
            f"best.keras takes {size / 2**20:.2f} MB ({size:,} bytes)",
            informational=True,
        )
    )
    return performance, checks


def _latency(model, inputs: dict[str, np.ndarray], repeats: int) -> tuple[float, float]:
    """p50 and p95 in milliseconds of `repeats` predictions, after two untimed ones."""
    from app.keras.timing import times_ms

    fed = structured(model, inputs)
    times = times_ms(lambda: model.predict_on_batch(fed), repeats)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def parity_checks(
    model, inputs: dict[str, np.ndarray], settings: TestSettings, samples: int = 16
) -> list[dict[str, Any]]:
    """Each export format's predictions against the Keras model's (app.export.parity)."""
    if not settings.parity_formats:
        return [_check("export_parity", None, None, "no formats asked for in the settings", True)]
    try:
        from app.export.parity import parity
    except (ImportError, AttributeError):
        return [_check("export_parity", None, None, "export module not available", True)]
    names = [tensor.name for tensor in model.inputs]
    count = min(samples, len(next(iter(inputs.values()))))
    fed = structured(model, _take(inputs, count))
    by_name = fed if isinstance(fed, dict) else {names[0]: fed}
    try:
        results = parity(model, by_name, formats=tuple(settings.parity_formats))
    except Exception as err:  # noqa: BLE001 - a failing export is this check's finding
        return [_check("export_parity", False, None, f"parity raised {_one_line(err)}")]
    return [
        _check(
            f"export_parity_{result['format']}",
            result.get("passed"),
            result.get("max_abs_diff"),
            str(result.get("detail") or ""),
        )
        for result in results
    ]


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    line = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return line if len(line) <= 300 else line[:297] + "..."
