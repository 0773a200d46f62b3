"""Plots for people: SVG drawn in pure Python, gathered in one self-contained HTML page.

No plotting library (and nothing fetched from the network when the page opens): a confusion
matrix, line charts (ROC, precision-recall), scatter plots (predicted against actual, residuals)
and horizontal bars (per slice). `render_html(evaluation, plots)` builds the page.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

from mlops.reports.evaluation import fmt, gate_rows

W, H = 360, 300
M = {"l": 52, "r": 12, "t": 30, "b": 40}
COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")


def _svg(body: list[str], title: str, width: int = W, height: int = H) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{escape(title)}</text>" + "".join(body) + "</svg>"
    )


def _scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _axes(
    xlo: float, xhi: float, ylo: float, yhi: float, xlabel: str, ylabel: str
) -> tuple[list[str], Any, Any]:
    x0, x1, y0, y1 = M["l"], W - M["r"], H - M["b"], M["t"]
    pad = 6  # keep lines on the edge of the range (a perfect ROC curve) off the frame
    sx, sy = _scale(xlo, xhi, x0 + pad, x1 - pad), _scale(ylo, yhi, y0 - pad, y1 + pad)
    body = [
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#999"/>'
    ]
    for i in range(5):
        xv, yv = xlo + (xhi - xlo) * i / 4, ylo + (yhi - ylo) * i / 4
        body.append(f'<text x="{sx(xv):.1f}" y="{y0 + 14}" text-anchor="middle">{xv:.3g}</text>')
        body.append(f'<text x="{x0 - 4}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
    body.append(
        f'<text x="{(x0 + x1) / 2}" y="{H - 6}" text-anchor="middle">{escape(xlabel)}</text>'
    )
    body.append(
        f'<text x="12" y="{(y0 + y1) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(y0 + y1) / 2})">{escape(ylabel)}</text>'
    )
    return body, sx, sy


def lines_svg(
    series: dict[str, tuple[list[float], list[float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    diagonal: bool = False,
) -> str:
    """Line chart on [0, 1] x [0, 1]: one line per series, with a legend."""
    body, sx, sy = _axes(0.0, 1.0, 0.0, 1.0, xlabel, ylabel)
    if diagonal:
        body.append(
            f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(1)}" y2="{sy(1)}" stroke="#bbb" '
            'stroke-dasharray="4 3"/>'
        )
    for i, (name, (xs, ys)) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
        body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        ly = M["t"] + 14 + 14 * i
        body.append(f'<rect x="{W - 110}" y="{ly - 8}" width="10" height="10" fill="{color}"/>')
        body.append(f'<text x="{W - 96}" y="{ly + 1}">{escape(name)}</text>')
    return _svg(body, title)


def scatter_svg(
    xs: list[float], ys: list[float], title: str, xlabel: str, ylabel: str, line: str = ""
) -> str:
    """Scatter plot; `line` = "identity" draws y = x, "zero" draws y = 0."""
    if not xs:
        return _svg([], title)
    xlo, xhi, ylo, yhi = min(xs), max(xs), min(ys), max(ys)
    if line == "identity":
        xlo = ylo = min(xlo, ylo)
        xhi = yhi = max(xhi, yhi)
    if line == "zero":
        ylo, yhi = min(ylo, 0.0), max(yhi, 0.0)
    body, sx, sy = _axes(xlo, xhi, ylo, yhi, xlabel, ylabel)
    if line == "identity":
        body.append(
            f'<line x1="{sx(xlo)}" y1="{sy(xlo)}" x2="{sx(xhi)}" y2="{sy(xhi)}" stroke="#bbb"/>'
        )
    elif line == "zero":
        body.append(
            f'<line x1="{sx(xlo)}" y1="{sy(0)}" x2="{sx(xhi)}" y2="{sy(0)}" stroke="#bbb"/>'
        )
    step = max(1, len(xs) // 2000)
    for x, y in list(zip(xs, ys, strict=True))[::step]:
        body.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2" fill="{COLORS[0]}" '
            'fill-opacity="0.5"/>'
        )
    return _svg(body, title)


def confusion_svg(labels: list[str], matrix: list[list[int]], title: str) -> str:
    """Confusion matrix: rows are actual classes, columns predicted; counts in the cells."""
    n = len(labels)
    size = min(60, 240 // max(n, 1))
    left, top = 110, 50
    width, height = left + n * size + 20, top + n * size + 40
    peak = max((max(r) for r in matrix if r), default=1) or 1
    body = [f'<text x="{left + n * size / 2}" y="{top - 8}" text-anchor="middle">predicted</text>']
    for i, row in enumerate(matrix):
        body.append(
            f'<text x="{left - 6}" y="{top + i * size + size / 2 + 4}" text-anchor="end">'
            f"{escape(labels[i])}</text>"
        )
        for j, count in enumerate(row):
            shade = count / peak
            fill = f"rgb({int(255 - 180 * shade)},{int(255 - 140 * shade)},{int(255 - 60 * shade)})"
            x, y = left + j * size, top + i * size
            body.append(
                f'<rect x="{x}" y="{y}" width="{size}" height="{size}" fill="{fill}" '
                'stroke="#fff"/>'
            )
            color = "#fff" if shade > 0.6 else "#000"
            body.append(
                f'<text x="{x + size / 2}" y="{y + size / 2 + 4}" text-anchor="middle" '
                f'fill="{color}">{count}</text>'
            )
    for j, label in enumerate(labels):
        body.append(
            f'<text x="{left + j * size + size / 2}" y="{top + n * size + 14}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    body.append(
        f'<text x="14" y="{top + n * size / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + n * size / 2})">actual</text>'
    )
    return _svg(body, title, width=max(width, 220), height=height)


def bars_svg(labels: list[str], values: list[float], title: str, note: list[str]) -> str:
    """Horizontal bars, one per label, with the value (and a note such as the row count)."""
    bar, left = 18, 190
    width = 520
    height = 40 + bar * len(labels) + 10
    hi = max([abs(v) for v in values] + [1e-12])
    body = []
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = 30 + i * bar
        length = (width - left - 90) * abs(v) / hi
        body.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{escape(label)}</text>')
        body.append(
            f'<rect x="{left}" y="{y + 2}" width="{length:.1f}" height="{bar - 5}" '
            f'fill="{COLORS[0]}"/>'
        )
        body.append(
            f'<text x="{left + length + 4:.1f}" y="{y + 12}">{v:.4g} {escape(note[i])}</text>'
        )
    return _svg(body, title, width=width, height=height)


def _html_table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c)).replace('**', '')}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


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
