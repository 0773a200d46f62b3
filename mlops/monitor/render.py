"""A monitoring report as text: table rows (the CLI prints them), Markdown (a merge request or
an issue), and a self-contained HTML page with plots over time drawn as inline SVG."""

from __future__ import annotations

import html
import itertools
import time
from typing import TYPE_CHECKING, Any

from mlops.data.render import CSS, drift_html, drift_markdown, drift_summary
from mlops.reports.figures import COLORS

if TYPE_CHECKING:
    from mlops.monitor.checks import MonitorReport


def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def headline(r: MonitorReport) -> str:
    """What was looked at: environment, version, window, traffic."""
    t = r.traffic
    parts = [
        f"{r.env}: {r.model} {r.version or '(nothing live)'}"
        + (f" (before it: {r.previous})" if r.previous else ""),
        f"window {r.window.label}",
        f"{t.get('requests', 0):,} requests",
        f"{t.get('rows', 0):,} rows ({t.get('live_rows', 0):,} of {r.version})",
    ]
    labelled = (r.performance.get("online") or {}).get("labelled")
    if labelled:
        parts.append(f"{labelled:,} labelled")
    return " · ".join(parts)


def verdict(r: MonitorReport) -> str:
    """BREACH with its reasons, or why not."""
    if r.empty:
        return "no traffic in the window: nothing to judge"
    if not r.breaches:
        return "no breach"
    return "BREACH: " + "; ".join(b.message for b in r.breaches)


def quality_line(r: MonitorReport) -> str:
    q = r.quality
    if not q:
        return "data quality: -"
    text = (
        f"data quality: {q['rejected']:,} of {q['requests']:,} requests refused "
        f"({q['rejected_share']:.2%}; max {q['max_rejected']:.0%}): {q['out_of_schema']:,} out "
        f"of schema, {q['malformed']:,} malformed"
    )
    if q.get("fields"):
        text += "; fields refused: " + ", ".join(f"{k} {v}" for k, v in q["fields"].items())
    return text


def health_line(r: MonitorReport) -> str:
    h = r.health
    if not h:
        return "health: -"
    lat = h["latency_ms"]
    return (
        f"health: server errors {h['server_errors']:,} of {h['requests']:,} "
        f"({h['error_rate']:.2%}; max {h['max_error_rate']:.0%}); latency p50 "
        f"{_num(lat.get('p50'), 3)} ms, p95 {_num(lat.get('p95'), 3)} ms, p99 "
        f"{_num(lat.get('p99'), 3)} ms"
    )


def performance_rows(r: MonitorReport) -> list[tuple[str, ...]]:
    """(version, metric, online value, interval, labelled rows, offline, note) per version."""
    p = r.performance
    if not p:
        return []
    conf = f"{p['confidence']:.0%}"
    rows = []
    online = p.get("online") or {}

    def row(version: str, est: dict[str, Any], offline: Any, note: str) -> tuple[str, ...]:
        interval = (
            f"[{_num(est.get('low'))}, {_num(est.get('high'))}]"
            if est.get("low") is not None
            else "-"
        )
        return (
            version,
            p["metric"],
            _num(est.get("value")),
            interval,
            f"{est.get('labelled', 0):,}",
            _num(offline),
            note,
        )

    note = "live"
    if p.get("drop") is not None and p.get("offline") is not None:
        note += f"; {p['drop']:.3g} worse than offline" if p["drop"] > 0 else "; not worse"
    if not p.get("judged"):
        note += f"; fewer than {p['min_labels']} labelled rows: not judged"
    rows.append(row(str(r.version), online, p.get("offline"), note))
    for version, est in (p.get("by_version") or {}).items():
        rows.append(row(version, est, None, ""))
    cmp = p.get("previous")
    if cmp:
        verdict = (
            f"{r.version} is worse (z = {cmp['z']:.2f})"
            if cmp["worse"]
            else (cmp.get("note") or "no significant difference")
        )
        rows.append(("", "", "", f"{conf} intervals", "", "", f"vs {cmp['other_version']}: "
                     + verdict))  # fmt: skip
    return rows


PERF_HEADER = ("version", "metric", "online", "interval", "labelled", "offline", "note")


def action_lines(r: MonitorReport) -> list[str]:
    a = r.action
    if not a:
        return []
    lines = [f"action: {a.get('kind', 'none')}" + (f" ({a['status']})" if a.get("status") else "")]
    if a.get("reason"):
        lines.append(f"  why: {a['reason']}")
    for step in a.get("steps", []):
        lines.append(f"  - {step}")
    if a.get("error"):
        lines.append(f"  error: {a['error']}")
    if a.get("next_step"):
        lines.append(f"  next: {a['next_step']}")
    return lines


# ---- Markdown --------------------------------------------------------------------------------


def _md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    def cell(c: str) -> str:
        return c.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]


def markdown(r: MonitorReport) -> str:
    """The report as Markdown (an issue, a merge-request comment, a CI job summary)."""
    mark = "BREACH" if r.breaches else ("empty window" if r.empty else "ok")
    lines = [f"## Monitoring `{r.env}`: **{mark}**", "", headline(r), "", f"**{verdict(r)}**", ""]
    if r.breaches:
        lines += [f"- **{b.check}**: {b.message}" for b in r.breaches] + [""]
    if r.drift is not None:
        lines += ["### Input drift", "", *drift_markdown(r.drift), ""]
    elif r.drift_note:
        lines += ["### Input drift", "", f"_{r.drift_note}_", ""]
    if r.prediction_drift is not None:
        lines += ["### Prediction drift", "", *drift_markdown(r.prediction_drift), ""]
    lines += ["### Data quality", "", quality_line(r), ""]
    rows = performance_rows(r)
    if rows:
        lines += ["### Online performance", "", *_md_table(PERF_HEADER, rows), ""]
    lines += ["### Service health", "", health_line(r), ""]
    if r.action:
        lines += ["### Action", "", *[f"    {ln}" for ln in action_lines(r)], ""]
    for note in r.notes:
        lines.append(f"_{note}_")
    return "\n".join(lines).rstrip() + "\n"


# ---- HTML ------------------------------------------------------------------------------------

W, H = 520, 220
L, R, T, B = 48, 110, 26, 34


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
    x0, x1, y0, y1 = L, W - R, H - B, T

    def sx(t: float) -> float:
        span = (edges[-1] - edges[0]) or 1.0
        return x0 + (t - edges[0]) / span * (x1 - x0)

    def sy(v: float) -> float:
        return y0 - (v - lo) / (hi - lo) * (y0 - y1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="10">',
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
        for t, v in zip(mids, vals, strict=True):
            if v is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{sx(t):.1f},{sy(v):.1f}")
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
        ly = T + 10 + 13 * i
        parts.append(
            f'<rect x="{x1 + 8}" y="{ly - 8}" width="9" height="9" fill="{color}"/>'
            f'<text x="{x1 + 21}" y="{ly}">{html.escape(name[:16])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def figures(r: MonitorReport) -> list[str]:
    """The plots over time of a report, in display order."""
    s = r.series
    edges = s.get("edges") or []
    if len(edges) < 2:
        return []
    out = [
        timeseries_svg(
            edges,
            {"rows": s["rows"], "refused": s["refused"], "errors": s["errors"]},
            "Traffic per bucket",
            "count",
            ymin=0.0,
        )
    ]
    lat = {f"p{q}": s[f"latency_p{q}"] for q in (50, 95, 99) if f"latency_p{q}" in s}
    if lat:
        out.append(timeseries_svg(edges, lat, "Latency", "ms", ymin=0.0))
    metric = "accuracy" if "accuracy" in s else ("mae" if "mae" in s else None)
    if metric:
        threshold = r.performance.get("min") if metric == "accuracy" else None
        out.append(
            timeseries_svg(
                edges,
                {f"online {metric}": s[metric]},
                f"Online {metric} (labelled rows of {r.version})",
                metric,
                threshold=threshold,
                ymin=0.0 if metric == "accuracy" else None,
                ymax=1.0 if metric == "accuracy" else None,
            )
        )
    if s.get("drift_js"):
        out.append(
            timeseries_svg(
                edges,
                s["drift_js"],
                "Drift per feature (Jensen-Shannon distance to training)",
                "distance",
                threshold=0.1,
                ymin=0.0,
            )
        )
    if s.get("prediction_shares"):
        out.append(
            timeseries_svg(
                edges, s["prediction_shares"], "Share of each predicted class", "share", ymin=0.0
            )
        )
    return out


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def html_report(r: MonitorReport) -> str:
    """One self-contained page: verdict, plots over time, drift cards, quality, performance."""
    cls = "bad" if r.breaches else "ok"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Monitoring {html.escape(r.env)}</title><style>{CSS}"
        ".figs svg{margin:6px;border:1px solid #eaeef2}pre{white-space:pre-wrap}</style>",
        "</head><body>",
        f"<h1>Monitoring {html.escape(r.env)}: {html.escape(r.model)} "
        f"{html.escape(r.version or '')}</h1>",
        f"<p>{html.escape(headline(r))}</p>",
        f"<p class='muted'>from {_when(r.window.start or r.traffic.get('first'))} to "
        f"{_when(r.window.end)}</p>",
        f'<p class="{cls}">{html.escape(verdict(r))}</p>',
    ]
    if r.breaches:
        parts.append(
            "<ul>"
            + "".join(
                f"<li><b>{html.escape(b.check)}</b>: {html.escape(b.message)}</li>"
                for b in r.breaches
            )
            + "</ul>"
        )
    if r.action:
        parts.append("<h2>Action</h2><pre>" + html.escape("\n".join(action_lines(r))) + "</pre>")
    figs = figures(r)
    if figs:
        parts += ["<h2>Over time</h2><div class='figs'>", *figs, "</div>"]
    rows = performance_rows(r)
    if rows:
        parts += ["<h2>Online performance</h2>", _table(PERF_HEADER, rows)]
    parts += [f"<h2>Data quality</h2><p>{html.escape(quality_line(r))}</p>"]
    missing = r.quality.get("missing") or {}
    if missing:
        parts.append(
            _table(
                ("feature", "missing live", "missing in training"),
                [(k, f"{v['live']:.2%}", f"{v['training']:.2%}") for k, v in missing.items()],
            )
        )
    parts.append(f"<h2>Service health</h2><p>{html.escape(health_line(r))}</p>")
    if r.drift is not None:
        parts.append(drift_html(r.drift, "training data (live inputs)"))
    elif r.drift_note:
        parts.append(f"<h2>Input drift</h2><p class='muted'>{html.escape(r.drift_note)}</p>")
    if r.prediction_drift is not None:
        parts.append(drift_html(r.prediction_drift, "evaluation predictions"))
    for note in r.notes:
        parts.append(f'<p class="muted">{html.escape(note)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def drift_title(r: MonitorReport) -> str:
    """The one-line summary of the input drift (or why it was not judged)."""
    return drift_summary(r.drift) if r.drift is not None else (r.drift_note or "-")
