"""A monitoring report as text: table rows (the CLI prints them), Markdown (a merge request or
an issue), and a self-contained HTML page with plots over time drawn as inline SVG."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from mlops.data.render import CSS, drift_html, drift_markdown, drift_summary
from mlops.rendering import (  # noqa: F401 - the names this module used
    COLORS,
    _tick,
    timeseries_svg,
)
from mlops.rendering import html_table as _table
from mlops.rendering import md_table as _md_table
from mlops.rendering import num as _num
from mlops.rendering import when as _when

if TYPE_CHECKING:
    from mlops.monitor.checks import MonitorReport


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
