"""Rendering shared by every report: times, numbers, tables (Markdown, HTML) and SVG plots.

Pure Python and the standard library (no plotting library, nothing fetched when a page opens):
the evaluation report (`mlops.reports.figures`), the validation and drift report
(`mlops.data.render`) and the monitoring report (`mlops.monitor.render`) draw with these, and
the CLI prints times with `when`.
"""

from __future__ import annotations

import html
import itertools
import time
from collections.abc import Sequence
from html import escape
from typing import Any

W, H = 360, 300
M = {"l": 52, "r": 12, "t": 30, "b": 40}
COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")
REF_COLOR = "#8c959f"
CUR_COLOR = "#0969da"
TS_W, TS_H = 520, 220  # a plot over time
TS_L, TS_R, TS_T, TS_B = 48, 110, 26, 34


def when(ts: float | str | None, *, seconds: bool = True) -> str:
    """A time for people, in UTC: epoch seconds or an ISO 8601 text (`2026-11-22T01:35:04+00:00`)
    as `2026-11-22 01:35:04 UTC` (`seconds=False`: `2026-11-22 01:35 UTC`); `-` for none."""
    if ts is None or ts == "":
        return "-"
    if isinstance(ts, str):
        from datetime import UTC, datetime

        try:
            parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            return ts
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC)
        text = parsed.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
        return f"{text} UTC" if parsed.tzinfo is not None else text
    fmt = "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    return time.strftime(fmt, time.gmtime(float(ts)))


def num(v: Any, digits: int = 4) -> str:
    """A value for a table cell: floats to `digits` significant digits, `-` for None."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table (lines); a cell's `|` is escaped and its line breaks become spaces."""

    def cell(c: str) -> str:
        return c.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A plain-text table, one string per line: each column as wide as its widest cell, cells
    left-justified and two spaces apart (what rich prints for the CLI's borderless tables on a
    stream that is not a terminal, when the table fits the width)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]


def html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    bad_col: int = -1,
    unbold: bool = False,
) -> str:
    """An HTML table, every cell escaped; a `yes` in column `bad_col` is marked bad; `unbold`
    drops Markdown's `**` from cells (text written for Markdown first)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            text = html.escape(str(c))
            if unbold:
                text = text.replace("**", "")
            cls = ' class="bad"' if i == bad_col and c == "yes" else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _svg(body: list[str], title: str, width: int = W, height: int = H) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{escape(title)}</text>" + "".join(body) + "</svg>"
    )


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _axes(xlo, xhi, ylo, yhi, xlabel: str, ylabel: str) -> tuple[list[str], Any, Any]:
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


def shares_svg(labels: list[str], ref: list[float], cur: list[float]) -> str:
    """Grouped bars of reference and current shares; inline SVG, no scripts."""
    w, h, pad = 320, 150, 18
    n = max(len(ref), 1)
    rs = sum(ref) or 1.0
    cs = sum(cur) or 1.0
    rp = [v / rs for v in ref]
    cp = [v / cs for v in cur]
    top = max([*rp, *cp, 1e-9])
    slot = (w - 2) / n
    bw = max(slot / 2 - 1, 0.5)
    parts = [f'<svg width="{w}" height="{h + pad}" viewBox="0 0 {w} {h + pad}" role="img">']
    for i in range(n):
        x = 1 + i * slot
        for j, (share, color) in enumerate(((rp[i], REF_COLOR), (cp[i], CUR_COLOR))):
            bh = share / top * (h - 4)
            tip = html.escape(f"{labels[i] if i < len(labels) else i}: {share:.1%}")
            parts.append(
                f'<rect x="{x + j * bw:.1f}" y="{h - bh:.1f}" width="{bw:.1f}" '
                f'height="{bh:.1f}" fill="{color}"><title>{tip}</title></rect>'
            )
    parts.append(f'<line x1="0" y1="{h}" x2="{w}" y2="{h}" stroke="#d0d7de"/>')
    if labels:
        parts.append(
            f'<text x="1" y="{h + 13}" font-size="10" fill="#656d76">'
            f"{html.escape(labels[0][:18])}</text>"
        )
        parts.append(
            f'<text x="{w - 1}" y="{h + 13}" font-size="10" fill="#656d76" text-anchor="end">'
            f"{html.escape(labels[-1][:18])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _tick(ts: float, step: float) -> str:
    fmt = "%H:%M" if step < 86400 else "%m-%d"
    return time.strftime(fmt, time.gmtime(ts))


def timeseries_svg(
    edges: list[float],
    lines: dict[str, list[float | None]],
    title: str,
    ylabel: str,
    *,
    threshold: float | None = None,
    ymin: float | None = None,
    ymax: float | None = None,
) -> str:
    """Lines over time buckets (a gap where a bucket has no value), with a legend and an
    optional dashed threshold. Pure SVG, no scripts."""
    step = edges[1] - edges[0] if len(edges) > 1 else 1.0
    mids = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    values = [v for vs in lines.values() for v in vs if v is not None]
    if threshold is not None:
        values.append(threshold)
    lo = min(values) if ymin is None and values else (ymin or 0.0)
    hi = max(values) if ymax is None and values else (ymax if ymax is not None else 1.0)
    if hi <= lo:
        hi = lo + 1.0
    x0, x1, y0, y1 = TS_L, TS_W - TS_R, TS_H - TS_B, TS_T

    def sx(t: float) -> float:
        span = (edges[-1] - edges[0]) or 1.0
        return x0 + (t - edges[0]) / span * (x1 - x0)

    def sy(v: float) -> float:
        return y0 - (v - lo) / (hi - lo) * (y0 - y1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{TS_W}" height="{TS_H}" '
        f'viewBox="0 0 {TS_W} {TS_H}" font-family="sans-serif" font-size="10">',
        f'<text x="{(x0 + x1) / 2}" y="14" text-anchor="middle" font-size="12" '
        f'font-weight="bold">{html.escape(title)}</text>',
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#bbb"/>',
    ]
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        parts.append(
            f'<text x="{x0 - 4}" y="{sy(v) + 3:.1f}" text-anchor="end">{v:.3g}</text>'
            f'<line x1="{x0}" y1="{sy(v):.1f}" x2="{x1}" y2="{sy(v):.1f}" stroke="#eee"/>'
        )
    n_ticks = min(6, len(edges))
    for i in range(n_ticks):
        t = edges[0] + (edges[-1] - edges[0]) * i / max(n_ticks - 1, 1)
        parts.append(
            f'<text x="{sx(t):.1f}" y="{y0 + 14}" text-anchor="middle">{_tick(t, step)}</text>'
        )
    parts.append(
        f'<text x="12" y="{(y0 + y1) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(y0 + y1) / 2})">{html.escape(ylabel)}</text>'
    )
    if threshold is not None:
        parts.append(
            f'<line x1="{x0}" y1="{sy(threshold):.1f}" x2="{x1}" y2="{sy(threshold):.1f}" '
            'stroke="#cf222e" stroke-dasharray="4 3"/>'
        )
    for i, (name, vals) in enumerate(lines.items()):
        color = COLORS[i % len(COLORS)]
        segment: list[str] = []
        segments = []
        for mid, val in zip(mids, vals, strict=True):
            if val is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{sx(mid):.1f},{sy(val):.1f}")
        if segment:
            segments.append(segment)
        for seg in segments:
            if len(seg) == 1:
                x, y = seg[0].split(",")
                parts.append(f'<circle cx="{x}" cy="{y}" r="2" fill="{color}"/>')
            else:
                parts.append(
                    f'<polyline points="{" ".join(seg)}" fill="none" stroke="{color}" '
                    'stroke-width="1.6"/>'
                )
        ly = TS_T + 10 + 13 * i
        parts.append(
            f'<rect x="{x1 + 8}" y="{ly - 8}" width="9" height="9" fill="{color}"/>'
            f'<text x="{x1 + 21}" y="{ly}">{html.escape(name[:16])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
