"""A test report (report.json, see app.evaluate.suite) as one self-contained HTML page.

The page holds everything it shows: plotly's JavaScript once, inline, then the charts (confusion
matrix, ROC and precision-recall curves, calibration; predicted against actual and residuals;
IoU and Dice per class; reconstruction errors against the threshold; feature importance),
summary cards, the model against its baselines (a sentence, a table and a bar chart), the
per-class table, the samples and saliency maps as inline PNGs, and the production checks and
gates with pass or fail.

Every string that comes from the user's data or settings (class names, column names, run and
dataset names, details) is HTML-escaped: the template autoescapes, chart labels are escaped
before plotly sees them, and an image is inlined only when it is base64.

Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import datetime
import html
import re
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from app.evaluate.baselines import headline

BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
SAMPLE_GROUPS = (
    ("worst", "Worst predicted"),
    ("misclassified", "Misclassified"),
    ("best", "Best predicted"),
)


def render(report: dict[str, Any]) -> str:
    """The report as a self-contained HTML page.

    Args:
        report: a report as app.evaluate.suite.run_suite returns it (report.json).
    """
    from plotly.offline import get_plotlyjs

    return _template().render(
        report=report,
        plotly_js=Markup(get_plotlyjs()),
        charts=_charts(report),
        groups=[
            (key, title, (report.get("samples") or {}).get(key) or [])
            for key, title in SAMPLE_GROUPS
        ],
        created=_when(report.get("created")),
        per_class_columns=_per_class_columns(report),
        baselines=_baselines(report),
    )


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, list):
        return ", ".join(_number(v, digits) for v in value[:8]) + (" ..." if len(value) > 8 else "")
    return str(value)


def _image(data: Any) -> str | None:
    """A data URI for a base64 PNG; None for anything else."""
    if not isinstance(data, str) or not data or not BASE64.match(data):
        return None
    return "data:image/png;base64," + data


def _verdict(passed: Any) -> str:
    return {True: "pass", False: "fail"}.get(passed, "skip")


def _template():
    environment = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(number=_number, image=_image, verdict=_verdict)
    return environment.from_string(TEMPLATE)


def _baselines(report: dict[str, Any]) -> dict[str, Any] | None:
    """What the page shows of the baselines: the sentence, the table's columns (the model's
    metrics) and the chart; None for a report without them."""
    baselines = report.get("baselines")
    if not baselines:
        return None
    return {
        **baselines,
        "headline": headline(baselines),
        "columns": list(baselines.get("model_metrics") or {}),
        "chart": _baseline_chart(baselines),
    }


def _per_class_columns(report: dict[str, Any]) -> list[str]:
    rows = report.get("metrics", {}).get("per_class") or []
    return [key for key in rows[0] if key != "class"] if rows else []


# Charts


def _label(text: Any) -> str:
    """A user's string as a chart label: escaped, since plotly reads some HTML in labels."""
    return html.escape(str(text))


def _figure_html(figure, height: int = 380) -> Markup:
    import plotly.io as pio

    figure.update_layout(
        margin={"l": 50, "r": 20, "t": 50, "b": 50}, height=height, template="plotly_white"
    )
    # plotly writes the figure's data as JSON with <, > and & escaped, so labels cannot end
    # the script element.
    return Markup(
        pio.to_html(figure, full_html=False, include_plotlyjs=False, config={"responsive": True})
    )


def _charts(report: dict[str, Any]) -> dict[str, Markup]:
    kind = report.get("kind")
    metrics = report.get("metrics", {})
    charts: dict[str, Markup] = {}
    if kind == "classification":
        charts.update(_classification_charts(metrics))
    elif kind == "regression":
        charts.update(_regression_charts(metrics))
    elif kind == "segmentation":
        charts.update(_segmentation_charts(metrics))
    elif kind == "anomaly":
        charts.update(_anomaly_charts(metrics))
    explanations = report.get("explanations") or {}
    if explanations.get("permutation_importance"):
        charts["importance"] = _importance_chart(explanations)
    return charts


def _classification_charts(metrics: dict[str, Any]) -> dict[str, Markup]:
    import plotly.graph_objects as go

    charts = {}
    confusion = metrics.get("confusion")
    if confusion:
        labels = [_label(name) for name in confusion["labels"]]
        figure = go.Figure(
            go.Heatmap(
                z=confusion["matrix"],
                x=labels,
                y=labels,
                colorscale="Blues",
                texttemplate="%{z}",
                hovertemplate="true %{y}<br>predicted %{x}<br>%{z} samples<extra></extra>",
            )
        )
        figure.update_layout(
            title="Confusion matrix",
            xaxis={"title": "predicted", "type": "category"},
            yaxis={"title": "true", "type": "category", "autorange": "reversed"},
        )
        charts["confusion"] = _figure_html(figure)
    if metrics.get("roc"):
        figure = go.Figure()
        for curve in metrics["roc"]:
            figure.add_scatter(
                x=curve["fpr"],
                y=curve["tpr"],
                mode="lines",
                name=f"{_label(curve['class'])} (AUC {curve['auc']:.3f})",
            )
        figure.add_scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="chance"
        )
        figure.update_layout(
            title="ROC curves", xaxis_title="false positive rate", yaxis_title="true positive rate"
        )
        charts["roc"] = _figure_html(figure)
    if metrics.get("pr"):
        figure = go.Figure()
        for curve in metrics["pr"]:
            figure.add_scatter(
                x=curve["recall"],
                y=curve["precision"],
                mode="lines",
                name=f"{_label(curve['class'])} (AP {curve['average_precision']:.3f})",
            )
        figure.update_layout(
            title="Precision-recall curves", xaxis_title="recall", yaxis_title="precision"
        )
        charts["pr"] = _figure_html(figure)
    calibration = metrics.get("calibration")
    if calibration:
        figure = go.Figure()
        figure.add_scatter(
            x=calibration["predicted"],
            y=calibration["observed"],
            mode="lines+markers",
            name=calibration["kind"],
            customdata=calibration["counts"],
            hovertemplate="predicted %{x:.3f}<br>observed %{y:.3f}<br>%{customdata} samples"
            "<extra></extra>",
        )
        figure.add_scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            line={"dash": "dot", "color": "grey"},
            name="perfectly calibrated",
        )
        figure.update_layout(
            title=f"Calibration ({calibration['kind']}), ECE {calibration['ece']:.3f}",
            xaxis_title="predicted probability",
            yaxis_title="observed frequency",
        )
        charts["calibration"] = _figure_html(figure)
    return charts


def _regression_charts(metrics: dict[str, Any]) -> dict[str, Markup]:
    import plotly.graph_objects as go

    charts = {}
    points = metrics.get("points")
    if points and points["actual"]:
        low = min(min(points["actual"]), min(points["predicted"]))
        high = max(max(points["actual"]), max(points["predicted"]))
        figure = go.Figure()
        figure.add_scatter(
            x=points["actual"], y=points["predicted"], mode="markers", name="samples"
        )
        figure.add_scatter(
            x=[low, high],
            y=[low, high],
            mode="lines",
            line={"dash": "dot", "color": "grey"},
            name="perfect",
        )
        shown = len(points["actual"])
        figure.update_layout(
            title=f"Predicted against actual ({shown:,} of {points['total']:,} values)",
            xaxis_title="actual",
            yaxis_title="predicted",
        )
        charts["predicted_actual"] = _figure_html(figure)
        figure = go.Figure()
        figure.add_scatter(
            x=points["predicted"], y=points["residual"], mode="markers", name="samples"
        )
        figure.add_hline(y=0, line={"dash": "dot", "color": "grey"})
        figure.update_layout(
            title="Residuals (actual - predicted)",
            xaxis_title="predicted",
            yaxis_title="residual",
        )
        charts["residuals"] = _figure_html(figure)
    histogram = metrics.get("residual_histogram")
    if histogram and histogram["counts"]:
        edges = histogram["edges"]
        centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        figure = go.Figure(go.Bar(x=centers, y=histogram["counts"], name="residuals"))
        figure.update_layout(
            title="Residual distribution", xaxis_title="residual", yaxis_title="values"
        )
        charts["residual_histogram"] = _figure_html(figure)
    return charts


def _anomaly_charts(metrics: dict[str, Any]) -> dict[str, Markup]:
    """The reconstruction errors against the threshold, then the confusion at the threshold
    and the ROC and precision-recall curves, drawn as a classifier's."""
    charts = {}
    if metrics.get("histogram"):
        charts["error_histogram"] = _figure_html(error_histogram(metrics))
    return {**charts, **_classification_charts(metrics)}


def error_histogram(metrics: dict[str, Any]):
    """A plotly figure of an anomaly report's reconstruction errors (normal and anomalous
    rows overlaid, or all rows without labels) with its threshold."""
    import plotly.graph_objects as go

    histogram = metrics["histogram"]
    edges = histogram["edges"]
    centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    figure = go.Figure()
    for name in ("all", "normal", "anomalous"):
        if name in histogram:
            figure.add_bar(x=centers, y=histogram[name], name=name, opacity=0.7)
    figure.add_vline(
        x=metrics["threshold"],
        line={"dash": "dash", "color": "red"},
        annotation_text=f"threshold {metrics['threshold']:.4g}",
    )
    figure.update_layout(
        title="Reconstruction error on the test rows",
        xaxis_title="reconstruction error (mean squared)",
        yaxis_title="rows",
        barmode="overlay",
    )
    return figure


def _segmentation_charts(metrics: dict[str, Any]) -> dict[str, Markup]:
    import plotly.graph_objects as go

    rows = metrics.get("per_class") or []
    if not rows:
        return {}
    names = [_label(row["class"]) for row in rows]
    figure = go.Figure()
    figure.add_bar(x=names, y=[row["iou"] for row in rows], name="IoU")
    figure.add_bar(x=names, y=[row["dice"] for row in rows], name="Dice")
    figure.update_layout(
        title="IoU and Dice per class",
        xaxis={"title": "class", "type": "category"},
        yaxis={"range": [0, 1]},
        barmode="group",
    )
    return {"per_class": _figure_html(figure)}


def _baseline_chart(baselines: dict[str, Any]) -> Markup | None:
    import plotly.graph_objects as go

    computed = [r for r in baselines.get("results") or [] if r.get("value") is not None]
    if baselines.get("model") is None or not computed:
        return None
    names = ["your model"] + [_label(r["name"]) for r in computed]
    values = [baselines["model"]] + [r["value"] for r in computed]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            marker_color=["#2f6fdf"] + ["#9aa3ad"] * len(computed),
            text=[f"{v:.4g}" for v in values],
            textposition="auto",
        )
    )
    metric = _label(baselines["metric"])
    figure.update_layout(
        title=f"{metric}: the model and its baselines",
        xaxis_title=metric,
        yaxis={"type": "category", "autorange": "reversed"},
    )
    return _figure_html(figure, height=120 + 45 * len(values))


def _importance_chart(explanations: dict[str, Any]) -> Markup:
    import plotly.graph_objects as go

    items = list(reversed(explanations["permutation_importance"][:30]))
    figure = go.Figure(
        go.Bar(
            x=[item["importance"] for item in items],
            y=[_label(item["feature"]) for item in items],
            error_x={"type": "data", "array": [item["std"] for item in items]},
            orientation="h",
        )
    )
    figure.update_layout(
        title=f"Permutation importance (drop of {_label(explanations['metric'])})",
        xaxis_title=f"{_label(explanations['metric'])} drop",
        yaxis={"type": "category"},
        height=max(320, 22 * len(items) + 120),
    )
    return _figure_html(figure)


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test report: {{ report.model }} / {{ report.run }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       background: #f6f7f9; color: #1d232b; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 32px 0 12px; border-bottom: 1px solid #d8dde3;
     padding-bottom: 4px; }
.meta { color: #5b6470; font-size: 0.9rem; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600;
         font-size: 0.85rem; vertical-align: middle; }
.pass { background: #dcf3e1; color: #17692b; }
.fail { background: #fbdcdc; color: #9b1c1c; }
.skip { background: #eceef1; color: #5b6470; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
.card { background: white; border-radius: 8px; padding: 12px 14px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card .name { color: #5b6470; font-size: 0.8rem; }
.card .value { font-size: 1.4rem; font-weight: 600; margin-top: 4px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 12px; }
.chart { background: white; border-radius: 8px; padding: 6px;
         box-shadow: 0 1px 2px rgba(0,0,0,.08); }
table { border-collapse: collapse; background: white; width: 100%; font-size: 0.9rem;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th, td { padding: 6px 10px; border-bottom: 1px solid #eceef1; text-align: left; }
th { background: #f0f2f5; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }
.sample { background: white; border-radius: 8px; padding: 8px; font-size: 0.8rem;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); overflow-wrap: anywhere; }
.sample img { image-rendering: pixelated; max-width: 100%; display: block; margin-bottom: 4px; }
.sample .images { display: flex; gap: 4px; }
.sample .images img { max-width: 32%; }
.wrong { color: #9b1c1c; font-weight: 600; }
details { margin-top: 8px; }
pre { background: white; padding: 12px; overflow: auto; font-size: 0.8rem; }
</style>
<script type="text/javascript">{{ plotly_js }}</script>
</head>
<body>
{% macro picture(data, title) %}
{% if data|image %}<img src="{{ data|image }}" alt="{{ title }}" title="{{ title }}">{% endif %}
{% endmacro %}
<main>
<h1>Test report
  <span class="badge {{ report.passed|verdict }}">
    {{- "PASSED" if report.passed else "FAILED" -}}
  </span>
</h1>
<div class="meta">
  model <b>{{ report.model }}</b>, run <b>{{ report.run }}</b>, {{ report.checkpoint }} checkpoint
  {% if report.checkpoint_state and report.checkpoint_state.best %}
  (epoch {{ report.checkpoint_state.best.epoch }})
  {% endif %}
  &middot; task {{ report.task }}
  &middot; data <b>{{ report.data.name }}</b>
  version {{ (report.data.version or "-")[:10] }}, {{ report.data.split }} split,
  {{ report.data.rows|number }} rows
  &middot; tested {{ created }} in {{ report.duration_s|number(3) }} s
</div>

<h2>Summary</h2>
<div class="cards">
{% for name, value in report.summary.items() %}
  <div class="card"><div class="name">{{ name }}</div>
    <div class="value">{{ value|number }}</div></div>
{% endfor %}
{% for name in ["latency_p50_ms", "latency_p95_ms", "model_size_mb"] %}
  {% if report.performance and report.performance[name] is not none %}
  <div class="card"><div class="name">{{ name }}</div>
    <div class="value">{{ report.performance[name]|number(3) }}</div></div>
  {% endif %}
{% endfor %}
</div>

{% if baselines %}
<h2 id="baselines">Model vs baselines</h2>
<p><b>{{ baselines.headline }}</b></p>
<table>
<tr><th></th>{% for column in baselines.columns %}<th>{{ column }}</th>{% endfor %}
  <th>detail</th></tr>
<tr><td><b>your model</b></td>
  {% for column in baselines.columns %}
  <td class="num"><b>{{ baselines.model_metrics[column]|number }}</b></td>
  {% endfor %}<td></td></tr>
{% for result in baselines.results %}
<tr><td>{{ result.name }}{% if result.name == baselines.best %} (best){% endif %}</td>
  {% if result.skipped %}
  <td colspan="{{ baselines.columns|length + 1 }}" class="meta">skipped: {{ result.skipped }}</td>
  {% else %}
  {% for column in baselines.columns %}
  <td class="num">{{ result.metrics[column]|number }}</td>
  {% endfor %}<td>{{ result.detail }}</td>
  {% endif %}</tr>
{% endfor %}
</table>
<p class="meta">Baselines score the same test split as the model.
{% if baselines.fit %} Fitted on {{ baselines.fit.rows|number }} of the
{{ baselines.fit.of|number }} train rows.{% endif %}
{% if baselines.season %} Seasonal naive: {{ baselines.season.detail }}.{% endif %}
{% if "mase" in baselines.columns %} MASE: mean absolute error over the naive forecast's, on
the test split.{% endif %}</p>
{% if baselines.chart %}
<div class="chart" id="chart-baselines">{{ baselines.chart }}</div>
{% endif %}
{% endif %}

<h2>Gates <span class="badge {{ report.gates.passed|verdict }}">
  {{ "passed" if report.gates.passed else "failed" }}</span></h2>
{% if report.gates.results %}
<table>
<tr><th>result</th><th>gate</th><th>actual</th><th>detail</th></tr>
{% for gate in report.gates.results %}
<tr><td><span class="badge {{ gate.passed|verdict }}">{{ gate.passed|verdict }}</span></td>
  <td>{{ gate.metric }} {{ gate.op }} {{ gate.value|number }}</td>
  <td class="num">{{ gate.actual|number }}</td><td>{{ gate.detail }}</td></tr>
{% endfor %}
</table>
{% else %}
<p class="meta">No gates are set for this model.</p>
{% endif %}

<h2>Production checks</h2>
<table>
<tr><th>result</th><th>check</th><th>value</th><th>detail</th></tr>
{% for check in report.checks %}
<tr><td><span class="badge {{ check.passed|verdict }}">
  {{- "info" if check.informational and check.passed is not none else check.passed|verdict -}}
  </span></td>
  <td>{{ check.name }}</td><td class="num">{{ check.value|number }}</td>
  <td>{{ check.detail }}</td></tr>
{% endfor %}
</table>

{% if report.metrics.per_class %}
<h2>Per class</h2>
<table>
<tr><th>class</th>{% for column in per_class_columns %}<th>{{ column }}</th>{% endfor %}</tr>
{% for row in report.metrics.per_class %}
<tr><td>{{ row["class"] }}</td>
  {% for column in per_class_columns %}
  <td class="num">{{ row[column]|number }}</td>
  {% endfor %}</tr>
{% endfor %}
</table>
{% endif %}

{% if charts %}
<h2>Charts</h2>
<div class="charts">
{% for name, chart in charts.items() %}
  <div class="chart" id="chart-{{ name }}">{{ chart }}</div>
{% endfor %}
</div>
{% endif %}

{% for key, title, items in groups %}
{% if items %}
<h2>{{ title }} samples</h2>
<div class="samples">
{% for sample in items %}
  <div class="sample">
    {% if sample.image|image or sample.mask|image %}
    <div class="images">
      {{ picture(sample.image, "input") }}
      {{ picture(sample.target_mask, "true mask") }}
      {{ picture(sample.mask, "predicted mask") }}
    </div>
    {% endif %}
    <div>row {{ sample.index }}</div>
    {% if sample.target is not none %}
    <div>true <b>{{ sample.target|number }}</b></div>
    <div {% if sample.correct == false %}class="wrong"{% endif %}>
      predicted <b>{{ sample.prediction|number }}</b>
      {% if sample.confidence is not none %}({{ sample.confidence|number(3) }}){% endif %}
    </div>
    {% elif sample.pixel_accuracy is not none %}
    <div>pixel accuracy {{ sample.pixel_accuracy|number(3) }}</div>
    {% endif %}
    <div class="meta">loss {{ sample.loss|number(3) }}</div>
    {% if sample["values"] %}
    <details><summary>values</summary>
      {% for column, value in sample["values"].items() %}
      <div>{{ column }}: {{ value|number }}</div>
      {% endfor %}
    </details>
    {% endif %}
  </div>
{% endfor %}
</div>
{% endif %}
{% endfor %}

<h2>Explanations</h2>
{% set explanations = report.explanations or {} %}
{% if explanations.method == "saliency" %}
<p class="meta">Saliency: {{ explanations.detail }}.</p>
<div class="samples">
{% for item in explanations.saliency %}
  <div class="sample">
    <div class="images">
      {{ picture(item.input, "input") }}
      {{ picture(item.image, "saliency") }}
    </div>
    <div>row {{ item.index }}</div>
    {% if item.target is not none %}
    <div>true {{ item.target|number }}, predicted {{ item.prediction|number }}</div>
    {% endif %}
  </div>
{% endfor %}
</div>
{% elif explanations.method == "permutation_importance" %}
<p class="meta">Permutation importance: {{ explanations.detail }}
  ({{ explanations.repeats }} times each, {{ explanations.rows|number }} rows;
  baseline {{ explanations.metric }} {{ explanations.baseline|number }}).</p>
<table>
<tr><th>feature</th><th>importance</th><th>std</th><th>model columns</th></tr>
{% for item in explanations.permutation_importance %}
<tr><td>{{ item.feature }}</td><td class="num">{{ item.importance|number }}</td>
  <td class="num">{{ item.std|number }}</td><td class="num">{{ item.columns }}</td></tr>
{% endfor %}
</table>
{% else %}
<p class="meta">{{ explanations.detail or "No explanations." }}</p>
{% endif %}

<h2>Settings</h2>
<details><summary>the settings of this test</summary>
<table>
{% for name, value in (report.settings or {}).items() %}
<tr><td>{{ name }}</td><td>{{ value }}</td></tr>
{% endfor %}
</table>
</details>
</main>
</body>
</html>
"""


__all__ = ["render"]
