"""A profiled column in words and in a chart, as the Data page and `layerflow data show` show it.

`summary` turns a column's statistics (a `ColumnProfile`, or its dict as stored with a dataset)
into one readable line: the range and mean of numbers, the commonest categories with their
shares, the first and last date, example identifiers, the length of texts, the sizes of
images. `chart` gives the counts a bar chart says better (categories, image sizes, mask values),
or None.
"""

from __future__ import annotations

from typing import Any

from app.data.profile import ColumnProfile

TOP = 3  # categories and image sizes named in a summary


def summary(column: ColumnProfile | dict[str, Any]) -> str:
    """One line describing a column's values, by its type; "" when there is nothing to say."""
    kind, stats = _fields(column)
    if kind in ("categorical", "binary") or "counts" in stats:
        unique = column.unique if isinstance(column, ColumnProfile) else column["unique"]
        return _shares(stats.get("counts") or {}, int(stats.get("others") or 0), unique)
    if kind == "numeric" or "mean" in stats:
        return _numbers(stats)
    if kind == "date":
        return f"{stats['first']} to {stats['last']}" if stats.get("first") else ""
    if kind == "identifier":
        return "e.g. " + ", ".join(stats.get("examples") or [])
    if kind == "text":
        return (
            f"{stats.get('mean_words', 0):.3g} words on average, "
            f"{int(stats.get('vocab_size', 0)):,} distinct words"
        )
    if kind in ("image_path", "mask_path"):
        return _images(stats)
    return ""


def chart(column: ColumnProfile | dict[str, Any]) -> dict[str, int] | None:
    """Counts worth a bar chart: rows per category, images per size, pixels per mask value."""
    _, stats = _fields(column)
    if stats.get("counts"):
        return dict(stats["counts"])
    if stats.get("values"):
        return dict(stats["values"])
    if len(stats.get("sizes") or []) > 1:
        return {"x".join(map(str, s["size"])): s["count"] for s in stats["sizes"]}
    return None


def _fields(column: ColumnProfile | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(column, ColumnProfile):
        return column.type, column.stats or {}
    return column["type"], column.get("stats") or {}


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _numbers(stats: dict[str, Any]) -> str:
    if stats.get("mean") is None:
        return "no values"
    text = f"{_number(stats['min'])} to {_number(stats['max'])}, mean {_number(stats['mean'])}"
    if stats.get("shape"):
        text = f"{'x'.join(map(str, stats['shape']))} per sample, " + text
    return text


def _shares(counts: dict[str, int], others: int, unique: int) -> str:
    total = sum(counts.values()) + others
    if not total:
        return "no values"
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    named = [f"{name} {count / total:.0%}" for name, count in ranked[:TOP]]
    more = max(unique, len(ranked)) - len(named)
    return ", ".join(named) + (f" and {more:,} more" if more > 0 else "")


def _images(stats: dict[str, Any]) -> str:
    sizes = stats.get("sizes") or []
    if not sizes:
        return "no images"
    named = [f"{'x'.join(map(str, s['size']))} ({s['count']:,})" for s in sizes[:TOP]]
    text = ", ".join(named) + (f", {len(sizes) - TOP} more sizes" if len(sizes) > TOP else "")
    if stats.get("values"):
        text += "; pixel values " + ", ".join(list(stats["values"])[:10])
    return text
