"""Baselines: what simple models score on the same test split as the run's model, on the metric
the model is headlined by (HEADLINE: accuracy for classification, R² for regression and
forecasting, mean IoU for segmentation), so that every number in a report has an honest
comparison beside it.

  classification  majority class (scikit-learn's DummyClassifier), logistic regression and,
                  on tables, HistGradientBoosting
  regression      the train mean (DummyRegressor), linear regression (ridge on images and
                  text, where columns can outnumber rows) and, on tables, HistGradientBoosting
  forecasting     naive (every step of the horizon is the window's last value) and seasonal
                  naive (the value one season back); each with MASE, its MAE over the naive
                  forecast's MAE on the test split (the naive forecast's is 1)
  segmentation    all background: every pixel the first class (mask value), usually background
  anomaly         scores that need no network, fitted on the normal train rows and judged as
                  the autoencoder's error is (ROC AUC against the label column): each row's
                  mean squared distance from the normal rows' mean in their standard
                  deviations, and scikit-learn's IsolationForest

Fitted baselines learn on the train split (an even random subset of at most TRAIN_ROWS rows,
fewer when the inputs are large) and are scored on every test row the model was. They see the
model's inputs as preprocessing makes them (scaled numbers, one-hot categories, pixels
flattened), except text, which they read as it is, as TF-IDF bags of words.

The season of seasonal naive is not recorded with a dataset, so it is detected in the train
series (`detect_period`): the shortest lag, from 2 to the window's size, where the
autocorrelation of its first differences (differences, so that a trend does not hide it) peaks
near its highest, when that is clear (above 0.2 and 3/sqrt(n): white noise stays below it
over the lags tried). A season longer than the window is not looked for: the window would not
hold the value one season back.

A baseline that cannot be computed is reported as skipped, with one line saying why.
Importing this module does not import TensorFlow or scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from app.errors import one_line
from app.evaluate.predictions import BATCH, HOLD_BYTES, Predictions
from app.evaluate.regression import regression_metrics
from app.evaluate.segmentation import segmentation_metrics
from app.evaluate.subject import Subject

HEADLINE = {
    "classification": "accuracy",
    "regression": "r2",
    "segmentation": "mean_iou",
    "anomaly": "roc_auc",
}
TRAIN_ROWS = 5000  # most train rows a baseline is fitted on
MAX_ITER = 300  # logistic regression's iterations
PEAK_SHARE = 0.8  # a season's autocorrelation peak is at least this share of the highest
SEASON_CORRELATION = 0.2  # the least autocorrelation that makes a season
Baseline = dict[str, Any]


def compute_baselines(
    subject: Subject, predictions: Predictions, summary: dict[str, float], seed: int = 0
) -> dict[str, Any]:
    """The baselines of a run's test, beside the model.

    Returns:
        {metric (the headline metric), model (the model's), model_metrics (the model's values
        of the metrics the baselines give; with MASE when forecasting), results: [{name,
        value (of the headline metric, None when skipped), metrics, detail, skipped (why, or
        None)}], best and best_value (the name and headline metric of the best computed
        baseline, or None), margin (the model's headline metric minus the best baseline's;
        positive when the model beats it), fit ({rows, of: train rows fitted on, inputs}) or
        season (forecasting: {period, autocorrelation, detail})}.
    """
    metric = HEADLINE[subject.kind]
    extra: dict[str, Any] = {}
    model_metrics = {k: summary[k] for k in _shown(subject) if k in summary}
    try:
        if subject.kind == "segmentation":
            results = [_guarded("all background", lambda: all_background(predictions, subject))]
        elif subject.kind == "anomaly":
            results, extra = anomaly_baselines(subject, predictions, seed)
        elif subject.config.window is not None:
            results, extra = forecast_baselines(subject, predictions)
        else:
            results, extra = fitted_baselines(subject, predictions, seed)
    except Exception as err:  # reading the train split failed: no baseline, and why
        results = [_skipped("baselines", one_line(err, plain=(ValueError,)))]
    naive = next((r for r in results if r["name"] == "naive" and r["value"] is not None), None)
    if naive and naive["metrics"]["mae"] > 0 and "mae" in summary:
        model_metrics["mase"] = summary["mae"] / naive["metrics"]["mae"]
    computed = [r for r in results if r["value"] is not None]
    best = max(computed, key=lambda r: r["value"]) if computed else None
    model = summary.get(metric)
    return {
        "metric": metric,
        "model": model,
        "model_metrics": model_metrics,
        "results": results,
        "best": best["name"] if best else None,
        "best_value": best["value"] if best else None,
        "margin": model - best["value"] if best and model is not None else None,
        **extra,
    }


def _shown(subject: Subject) -> tuple[str, ...]:
    if subject.kind == "classification":
        return ("accuracy", "balanced_accuracy")
    if subject.kind == "segmentation":
        return ("mean_iou", "pixel_accuracy")
    if subject.kind == "anomaly":
        return ("roc_auc", "average_precision")
    return ("r2", "mae", "rmse")


def _guarded(name: str, compute: Callable[[], tuple[dict[str, float], str]]) -> Baseline:
    """A baseline's entry: its metrics and detail, or skipped with the one-line reason."""
    try:
        metrics, detail = compute()
    except Exception as err:  # a baseline never fails the report; it says why it is missing
        return _skipped(name, one_line(err, plain=(ValueError,)))
    value = next((metrics[m] for m in HEADLINE.values() if m in metrics), None)
    return {"name": name, "value": value, "metrics": metrics, "detail": detail, "skipped": None}


def _skipped(name: str, reason: str) -> Baseline:
    return {"name": name, "value": None, "metrics": {}, "detail": None, "skipped": reason}


# Scores, on the metrics the model's summary uses


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """accuracy and balanced accuracy of class ids, as classification_metrics computes them."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
    }


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """r2, mae and rmse, from regression_metrics (the model's own)."""
    summary, _ = regression_metrics(y_true, y_pred, max_points=10)
    return {k: summary[k] for k in ("r2", "mae", "rmse") if k in summary}


# Segmentation


def all_background(predictions: Predictions, subject: Subject) -> tuple[dict[str, float], str]:
    """Every pixel predicted the first class: the model's pixel confusion matrix with all of
    each true class's pixels moved to the first column."""
    confusion = np.asarray(predictions.confusion)
    background = np.zeros_like(confusion)
    background[:, 0] = confusion.sum(axis=1)
    summary, _ = segmentation_metrics(background, subject.classes)
    names = subject.classes or ["0"]
    metrics = {k: summary[k] for k in ("mean_iou", "pixel_accuracy") if k in summary}
    return metrics, f"every pixel class '{names[0]}'"


# Anomaly detection: scores fitted on the normal train rows


def anomaly_baselines(
    subject: Subject, predictions: Predictions, seed: int = 0
) -> tuple[list[Baseline], dict[str, Any]]:
    """The distance from the normal rows' mean and IsolationForest, fitted on (a subset of)
    the train split's normal rows and scored by ROC AUC and average precision of "anomalous"
    (not of the normal class) on the test rows, as the autoencoder's error is."""
    from app.data.anomaly import normal_rows
    from app.runtime.transform import transform

    names = ("distance from the normal mean", "IsolationForest")
    normal = (predictions.extra.get("normal_errors") or {}).get("normal")
    if normal is None:
        why = "the dataset has no label column to tell anomalous rows by"
        return [_skipped(n, why) for n in names], {}
    train = {"train": sorted(int(i) for i in subject.dataset.splits.get("train", []))}
    cut, _ = normal_rows(subject.config, subject.state, subject.source, train, normal)
    rows = cut["train"]
    if not rows:
        return [_skipped(n, f"the train split has no rows of class '{normal}'") for n in names], {}
    if len(rows) > TRAIN_ROWS:
        rows = sorted(np.random.default_rng(seed).choice(rows, TRAIN_ROWS, replace=False).tolist())
    inputs, _ = transform(subject.config, subject.state, subject.source, rows)
    design = Design({}, {})
    x_train = np.asarray(design.fit(inputs), dtype=np.float64)
    anomalous = np.asarray(predictions.targets).reshape(-1) != subject.classes.index(normal)
    mean, spread = x_train.mean(axis=0), x_train.std(axis=0)
    spread[spread == 0] = 1.0

    def scored(score: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        from sklearn.metrics import average_precision_score, roc_auc_score

        parts = []
        for start in range(0, len(predictions.rows), BATCH * 8):
            positions = range(start, min(start + BATCH * 8, len(predictions.rows)))
            chunk = predictions.inputs.take(positions)
            parts.append(score(np.asarray(design.transform(chunk, {}), dtype=np.float64)))
        values = np.concatenate(parts)
        return {
            "roc_auc": float(roc_auc_score(anomalous, values)),
            "average_precision": float(average_precision_score(anomalous, values)),
        }

    def distance() -> tuple[dict[str, float], str]:
        metrics = scored(lambda x: (((x - mean) / spread) ** 2).mean(axis=1))
        return metrics, f"{design.described}, in standard deviations of the normal rows"

    def forest() -> tuple[dict[str, float], str]:
        from sklearn.ensemble import IsolationForest
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):  # as score() in fitted_baselines
            model = IsolationForest(random_state=seed).fit(x_train)
            metrics = scored(lambda x: -model.score_samples(x))
        return metrics, f"{design.described}; 100 trees"

    results = [_guarded(names[0], distance), _guarded(names[1], forest)]
    fit = {"rows": len(rows), "of": len(cut["train"]), "inputs": design.described}
    return results, {"fit": fit}


# Classification and regression: models fitted on the train split


def fitted_baselines(
    subject: Subject, predictions: Predictions, seed: int = 0
) -> tuple[list[Baseline], dict[str, Any]]:
    """Majority class, logistic regression and HistGradientBoosting (classification), or the
    mean, linear regression and HistGradientBoosting (regression), fitted on (a subset of) the
    train split and scored on the test positions the model predicted."""
    from app.runtime.transform import input_spec, transform

    classify = subject.kind == "classification"
    config, state = subject.config, subject.state
    spec = input_spec(config, state)
    train = sorted(int(i) for i in subject.dataset.splits.get("train", []))
    if not train:
        names = ["majority class"] if classify else ["mean"]
        return [_skipped(n, "the dataset has no train split to fit on") for n in names], {}
    per_row = sum(int(np.prod(shape)) * 4 for shape, _ in spec.values())
    most = max(1, min(TRAIN_ROWS, HOLD_BYTES // max(per_row, 1)))
    rows = train
    if len(train) > most:
        rows = sorted(np.random.default_rng(seed).choice(train, most, replace=False).tolist())
    texts = _text_inputs(subject)
    inputs, y_train = transform(config, state, subject.source, rows)
    design = Design(texts, _documents(subject, texts, rows))
    x_train = design.fit(inputs)
    test_documents = _documents(subject, texts, predictions.rows)
    y_test = np.asarray(predictions.targets)
    y_test = y_test.reshape(-1) if classify else y_test.reshape(len(y_test), -1)
    y_train = np.asarray(y_train)

    def score(model) -> dict[str, float]:
        from threadpoolctl import threadpool_limits

        # One thread: OpenMP's, beside TensorFlow's on a busy machine, oversubscribe the cores
        # (HistGradientBoosting took 17 s on 398 rows, 1 s on one thread).
        with threadpool_limits(limits=1):
            model.fit(x_train, y_train)
            predicted = []
            for start in range(0, len(predictions.rows), BATCH * 8):
                positions = range(start, min(start + BATCH * 8, len(predictions.rows)))
                chunk = predictions.inputs.take(positions)
                documents = {n: d[start : positions.stop] for n, d in test_documents.items()}
                x = design.transform(chunk, documents)
                predicted.append(np.asarray(model.predict(x)))
        values = np.concatenate(predicted)
        if classify:
            return classification_scores(y_test, values)
        return regression_scores(y_test, values.reshape(len(values), -1))

    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    tabular = set(inputs) == {"features"}
    boosts = tabular and (classify or y_train.ndim == 1)
    if classify:
        majority = int(np.bincount(y_train.astype(np.int64)).argmax())
        name = subject.classes[majority] if majority < len(subject.classes) else str(majority)
        plan = [
            (
                "majority class",
                DummyClassifier(strategy="most_frequent"),
                f"always '{name}', the train split's most frequent class",
            ),
            ("logistic regression", LogisticRegression(max_iter=MAX_ITER), design.described),
            (
                "HistGradientBoosting",
                HistGradientBoostingClassifier(random_state=seed) if boosts else None,
                design.described,
            ),
        ]
    else:
        # Ridge where columns (pixels, words) can outnumber rows.
        linear = (
            ("linear regression", LinearRegression()) if tabular else ("ridge regression", Ridge())
        )
        plan = [
            ("mean", DummyRegressor(strategy="mean"), "always the train split's mean"),
            (*linear, design.described),
            (
                "HistGradientBoosting",
                HistGradientBoostingRegressor(random_state=seed) if boosts else None,
                design.described,
            ),
        ]
    why_not = (
        "for table features only, not image or text inputs"
        if not tabular
        else f"predicts one value, and the target has {y_train.shape[-1]}"
    )
    results = [
        _guarded(name, lambda model=model, detail=detail: (score(model), detail))
        if model is not None
        else _skipped(name, why_not)
        for name, model, detail in plan
    ]
    return results, {"fit": {"rows": len(rows), "of": len(train), "inputs": design.described}}


def _text_inputs(subject: Subject) -> dict[str, str]:
    """Text input name -> its column."""
    from app.runtime.config import input_names

    names = input_names(subject.config)
    return {
        names[spec.column]: spec.column for spec in subject.config.features if spec.kind == "text"
    }


def _documents(subject: Subject, texts: dict[str, str], rows: Sequence[int]) -> dict[str, list]:
    """Each text input's documents as they are in the data, for the rows `rows` (sorted)."""
    from app.runtime.columns import texts as column_texts
    from app.runtime.rows import parts

    if not texts:
        return {}
    found: dict[str, list] = {name: [] for name in texts}
    for part in parts(subject.source, rows):
        for name, column in texts.items():
            found[name] += column_texts(part, column)
    return found


class Design:
    """The baselines' inputs: the model's inputs, flattened and side by side, with each text
    input's documents as TF-IDF bags of words (fitted on the train documents)."""

    def __init__(self, texts: dict[str, str], documents: dict[str, list]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.texts = texts
        self.vectorizers = {
            name: TfidfVectorizer(max_features=20_000).fit(documents[name]) for name in texts
        }
        self.train_documents = documents
        self.described = ""

    def fit(self, inputs: dict[str, np.ndarray]) -> Any:
        parts = [
            "the model's features"
            if name == "features"
            else f"{name} as a TF-IDF bag of words"
            if name in self.texts
            else f"{name} flattened"
            for name in sorted(inputs)
        ]
        self.described = ", ".join(parts)
        return self.transform(inputs, self.train_documents)

    def transform(self, inputs: dict[str, np.ndarray], documents: dict[str, list]) -> Any:
        blocks = [
            self.vectorizers[name].transform(documents[name])
            if name in self.texts
            else np.asarray(values, dtype=np.float32).reshape(len(values), -1)
            for name, values in sorted(inputs.items())
        ]
        if any(name in self.texts for name in inputs):
            from scipy import sparse

            return sparse.hstack([sparse.csr_matrix(b) for b in blocks], format="csr")
        return blocks[0] if len(blocks) == 1 else np.hstack(blocks)


# Forecasting


def naive_forecasts(series: np.ndarray, starts: np.ndarray, size: int, horizon: int) -> np.ndarray:
    """(windows, horizon): the last value of each window, for every step."""
    last = np.asarray(series, dtype=np.float64)[np.asarray(starts) + size - 1]
    return np.repeat(last[:, None], horizon, axis=1)


def seasonal_naive_forecasts(
    series: np.ndarray, starts: np.ndarray, size: int, horizon: int, period: int
) -> np.ndarray:
    """(windows, horizon): for step h (1..horizon), the value one season (`period` rows) back
    from it, or as many seasons as it takes to fall inside the window."""
    if not 1 <= period <= size:
        raise ValueError(f"a season of {period} rows does not fit in a window of {size} rows")
    steps = np.arange(1, horizon + 1)
    back = steps - period * np.ceil(steps / period).astype(np.int64)  # in (-period, 0]
    last = np.asarray(starts)[:, None] + size - 1
    return np.asarray(series, dtype=np.float64)[last + back[None, :]]


def mase(y_true: np.ndarray, y_pred: np.ndarray, naive: np.ndarray) -> float:
    """The forecast's mean absolute error over the naive forecast's, on the same values."""
    naive_mae = float(np.mean(np.abs(np.asarray(y_true) - np.asarray(naive))))
    if naive_mae == 0:
        raise ValueError("the naive forecast is exact on the test split; MASE is undefined")
    return float(np.mean(np.abs(np.asarray(y_true) - np.asarray(y_pred)))) / naive_mae


def detect_period(series: np.ndarray, max_lag: int) -> tuple[int | None, float | None]:
    """The season of a series and its autocorrelation: of the lags 2..max_lag, the shortest
    where the autocorrelation of the first differences peaks within PEAK_SHARE of the highest
    (a season's multiples correlate about as well as the season), when it is above
    SEASON_CORRELATION and 3/sqrt(n); (None, the highest) when none is, (None, None) when the
    series is too short. pandas' autocorr skips missing values."""
    import pandas as pd

    differences = pd.Series(np.asarray(series, dtype=np.float64)).diff().dropna()
    lags = np.arange(2, min(max_lag, len(differences) // 2) + 1)
    if not len(lags):
        return None, None
    found = np.array([differences.autocorr(int(lag)) for lag in lags])
    found = np.nan_to_num(found, nan=-1.0)
    highest = float(found.max())
    if highest <= max(SEASON_CORRELATION, 3 / math.sqrt(len(differences))):
        return None, highest
    padded = np.concatenate([[-np.inf], found, [-np.inf]])
    peaks = (found >= padded[:-2]) & (found >= padded[2:]) & (found >= PEAK_SHARE * highest)
    first = int(np.flatnonzero(peaks)[0])
    return int(lags[first]), float(found[first])


def forecast_baselines(
    subject: Subject, predictions: Predictions
) -> tuple[list[Baseline], dict[str, Any]]:
    """Naive and seasonal-naive forecasts of the test windows, each with r2, mae, rmse and
    MASE, and the season found in the train series."""
    from app.runtime.transform import transform_series, window_starts

    config = subject.config
    window = config.window
    assert window is not None
    _, series, positions = transform_series(config, subject.state, subject.source, subject.rows)
    starts = window_starts(config, positions)
    y_test = np.asarray(predictions.targets, dtype=np.float64).reshape(len(starts), -1)
    naive = naive_forecasts(series, starts, window.size, window.horizon)

    def scored(forecast: np.ndarray) -> dict[str, float]:
        return {**regression_scores(y_test, forecast), "mase": mase(y_test, forecast, naive)}

    results = [
        _guarded(
            "naive", lambda: (scored(naive), f"every step the window's last '{window.column}'")
        )
    ]
    train = sorted(int(i) for i in subject.dataset.splits.get("train", []))[-TRAIN_ROWS * 4 :]
    period, correlation = None, None
    if len(train) > 2:
        _, train_series, _ = transform_series(config, subject.state, subject.source, train)
        period, correlation = detect_period(train_series, window.size)
    if period is None:
        found = "" if correlation is None else f" (highest autocorrelation {correlation:.2f})"
        why = f"no season of 2 to {window.size} rows (the window) found in the train series{found}"
        results.append(_skipped("seasonal naive", why))
        season = {"period": None, "autocorrelation": correlation, "detail": why}
    else:
        detail = (
            f"season of {period} rows, detected in the train series (autocorrelation "
            f"of its first differences {correlation:.2f})"
        )
        results.append(
            _guarded(
                "seasonal naive",
                lambda: (
                    scored(
                        seasonal_naive_forecasts(
                            series, starts, window.size, window.horizon, period
                        )
                    ),
                    detail,
                ),
            )
        )
        season = {"period": period, "autocorrelation": correlation, "detail": detail}
    return results, {"season": season}


# What a reader is told


def headline(baselines: dict[str, Any]) -> str:
    """One sentence: the model's headline metric against the best baseline's."""
    metric, model, best = baselines.get("metric"), baselines.get("model"), baselines.get("best")
    if model is None:
        return f"The model's {metric} was not measured; nothing to compare."
    if best is None:
        return f"No baseline could be computed; the model's {metric} is {model:.4g}."
    value, margin = baselines["best_value"], baselines["margin"]
    if margin > 0:
        verdict = f"beats the best baseline, {best} ({value:.4g}), by {margin:.4g}"
    elif margin == 0:
        verdict = f"only ties the best baseline, {best}"
    else:
        verdict = f"is below the best baseline, {best} ({value:.4g}), by {-margin:.4g}"
    return f"Your model's {metric}, {model:.4g}, {verdict}."


__all__ = [
    "HEADLINE",
    "all_background",
    "compute_baselines",
    "detect_period",
    "headline",
    "mase",
    "naive_forecasts",
    "seasonal_naive_forecasts",
]
