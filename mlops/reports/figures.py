"""Plots for people: SVG drawn in pure Python, gathered in one self-contained HTML page.

No plotting library (and nothing fetched from the network when the page opens): a confusion
matrix, line charts (ROC, precision-recall), scatter plots (predicted against actual, residuals)
and horizontal bars (per slice). `render_html(evaluation, plots)` builds the page.
"""

from __future__ import annotations

from functools import partial
from html import escape
from typing import Any

from mlops.rendering import (  # noqa: F401 - kept importable from here
    COLORS,
    H,
    M,
    W,
    _axes,
    _scale,
    _svg,
    bars_svg,
    confusion_svg,
    html_table,
    lines_svg,
    scatter_svg,
)
from mlops.reports.evaluation import fmt, gate_rows


def figures(ev: dict[str, Any], plots: dict[str, Any]) -> list[str]:
    """The SVG figures of an evaluation, in display order."""
    out: list[str] = []
    if ev["task"] == "classification":
        out.append(confusion_svg(plots["labels"], plots["confusion"], "Confusion matrix"))
        if plots.get("roc"):
            out.append(
                lines_svg(
                    plots["roc"],
                    "ROC (one vs rest)",
                    "false positive rate",
                    "true positive rate",
                    diagonal=True,
                )
            )
        if plots.get("pr"):
            out.append(lines_svg(plots["pr"], "Precision-recall", "recall", "precision"))
    else:
        out.append(
            scatter_svg(
                plots["actual"],
                plots["predicted"],
                "Predicted against actual",
                "actual",
                "predicted",
                line="identity",
            )
        )
        out.append(
            scatter_svg(
                plots["predicted"],
                plots["residual"],
                "Residuals",
                "predicted",
                "actual - predicted",
                line="zero",
            )
        )
    metric = "accuracy" if ev["task"] == "classification" else "rmse"
    slices = [s for s in ev.get("slices", []) if s["metrics"].get(metric) is not None]
    if slices:
        out.append(
            bars_svg(
                [s["name"] for s in slices],
                [float(s["metrics"][metric]) for s in slices],
                f"{metric} per slice",
                [f"({s['rows']} rows)" for s in slices],
            )
        )
    return out


_html_table = partial(html_table, unbold=True)  # cells written for Markdown first


def render_html(ev: dict[str, Any], plots: dict[str, Any]) -> str:
    """One self-contained page: verdict, metrics, gates, and every figure inline."""
    verdict = ev.get("verdict", {})
    ok = verdict.get("blessed")
    metrics = [[k, fmt(v)] for k, v in ev["metrics"].items() if k != "test_rows"]
    gates = gate_rows(verdict.get("gates", []))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Evaluation of {escape(ev['name'])}</title>",
        "<style>body{font-family:sans-serif;margin:24px;color:#222}"
        "table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:left}.figs svg{margin:8px;border:1px solid #eee}"
        ".ok{color:#2a7a2a}.bad{color:#b22}</style></head><body>",
        f"<h1>Evaluation of {escape(ev['name'])}</h1>",
        f"<p class='{'ok' if ok else 'bad'}'><b>Verdict: "
        f"{'blessed' if ok else 'NOT blessed'}</b></p>",
        f"<p>{escape(ev['task'])} of <code>{escape(ev['target'])}</code>, "
        f"{ev['test_rows']} test rows.</p>",
        "<h2>Metrics</h2>",
        _html_table(["metric", "value"], metrics),
    ]
    if gates:
        parts += [
            "<h2>Quality gates</h2>",
            _html_table(
                [
                    "metric",
                    "rule",
                    "value",
                    "baseline",
                    "tolerance",
                    "threshold",
                    "margin",
                    "result",
                ],
                gates,
            ),
        ]
    parts += ["<h2>Plots</h2><div class='figs'>", *figures(ev, plots), "</div></body></html>"]
    return "\n".join(parts) + "\n"
