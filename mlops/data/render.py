"""Validation and drift reports as text: a plain table (stage logs), Markdown (merge requests),
and a self-contained HTML page with per-feature histograms (reference against current)."""

from __future__ import annotations

import html
import itertools
import math
from typing import TYPE_CHECKING, Any

from mlops.rendering import CUR_COLOR, REF_COLOR, html_table
from mlops.rendering import md_table as _md_table
from mlops.rendering import shares_svg as _bars_svg

if TYPE_CHECKING:
    from mlops.data.drift import ColumnDrift, DriftReport
    from mlops.data.schema import Failure
    from mlops.data.validation import ValidationReport


def _short(values: list[Any], width: int = 40) -> str:
    text = ", ".join(repr(v) for v in values[:3])
    return text if len(text) <= width else text[: width - 3] + "..."


def failure_rows(failures: list[Failure], rows: int) -> list[tuple[str, ...]]:
    """(column, check, failing, share, examples, rows) as text, one tuple per failure."""
    return [
        (
            f.column,
            f.check,
            str(f.count),
            f"{f.count / rows:.2%}" if rows else "-",
            _short(f.examples),
            ", ".join(map(str, f.rows[:5])),
        )
        for f in failures
    ]


def failure_table(failures: list[Failure], rows: int) -> list[str]:
    """Plain-text table: column, check, failing count and share, examples, row numbers."""
    header = ("column", "check", "failing", "share", "examples", "rows")
    body = failure_rows(failures, rows)
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in (header, *body)
    ]


def fmt_score(c: ColumnDrift) -> str:
    if c.score is None:
        return "-"
    score = f"{c.score:.3g}"
    if c.p_adjusted is not None:
        score += f" (adj. {c.p_adjusted:.3g})"
    return score


def drift_rule(c: ColumnDrift) -> str:
    from mlops.data.drift import P_VALUE_METHODS

    return f"p < {c.threshold:g}" if c.method in P_VALUE_METHODS else f">= {c.threshold:g}"


def drift_summary(r: DriftReport) -> str:
    verdict = "DATASET DRIFT" if r.dataset_drift else "no dataset drift"
    moved = ", ".join(c.column for c in r.ranked()[:3] if c.drifted)
    text = (
        f"{r.label}: {verdict} ({len(r.drifted)} of {len(r.columns)} columns drifted, "
        f"share {r.share:.2f}, threshold {r.share_threshold:g})"
    )
    if moved:
        text += f"; moved most: {moved}"
    if r.missing_columns:
        text += f"; missing columns: {', '.join(r.missing_columns)}"
    return text


def drift_lines(report: ValidationReport) -> list[str]:
    """One line per comparison, then the action the settings chose (for logs and stage output)."""
    lines = [drift_summary(r) for r in (report.previous, report.reference) if r is not None]
    if report.drift:
        lines.append(f"on_drift: {report.on_drift}")
    return lines


# ---- Markdown ------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def drift_markdown(r: DriftReport) -> list[str]:
    lines = [f"**{drift_summary(r)}**", ""]
    rows = [
        (
            c.column,
            c.kind,
            c.method,
            fmt_score(c),
            drift_rule(c),
            "**yes**" if c.drifted else "no",
        )
        for c in r.ranked()
    ]
    lines += _md_table(("column", "type", "method", "score", "drift when", "drifted"), rows)
    return lines


def markdown(report: ValidationReport) -> str:
    """The report as Markdown (a merge-request comment)."""
    status = "valid" if report.valid else "INVALID"
    lines = [
        f"## Data validation: `{report.input}`",
        "",
        f"**{status}** · {report.rows} rows × {report.columns} columns · "
        f"schema `{report.schema or '-'}` · action: **{report.action}**",
        "",
    ]
    if report.failures:
        lines += ["### Failures", ""]
        lines += _md_table(
            ("column", "check", "failing", "share", "examples", "rows"),
            failure_rows(report.failures, report.rows),
        )
        lines.append("")
    for title, r in (("previous span", report.previous), ("model reference", report.reference)):
        if r is not None:
            lines += [f"### Drift against the {title}", ""]
            lines += drift_markdown(r)
            lines.append("")
    for note in report.notes:
        lines.append(f"_{note}_")
    return "\n".join(lines).rstrip() + "\n"


# ---- HTML ----------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1100px;
color:#1f2328;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;text-align:left;
border-bottom:1px solid #eaeef2}th{background:#f6f8fa}
.bad{color:#cf222e;font-weight:600}.ok{color:#1a7f37}.muted{color:#656d76}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:10px}
.card h3{font-size:15px;margin:0 0 4px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""


def _fmt_edge(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def _card(c: ColumnDrift) -> str:
    stats = c.stats
    if c.kind == "numeric" and stats.get("histogram", {}).get("edges"):
        hist = stats["histogram"]
        edges = hist["edges"]
        labels = [f"{_fmt_edge(a)}–{_fmt_edge(b)}" for a, b in itertools.pairwise(edges)]
        ref = list(hist["reference"])
        cur = list(hist["current"])
        if hist.get("current_below"):
            labels, ref, cur = ["below", *labels], [0, *ref], [hist["current_below"], *cur]
        if hist.get("current_above"):
            labels, ref, cur = [*labels, "above"], [*ref, 0], [*cur, hist["current_above"]]
        extra = (
            f"mean {_num(stats.get('reference_mean'))} → {_num(stats.get('current_mean'))}, "
            f"std {_num(stats.get('reference_std'))} → {_num(stats.get('current_std'))}"
        )
    elif stats.get("categories"):
        cats = stats["categories"]
        labels, ref, cur = cats["keys"], cats["reference"], cats["current"]
        extra = f"unseen values: {stats.get('unseen_share', 0):.1%}"
    else:
        labels, ref, cur, extra = [], [], [], c.note
    cls = "bad" if c.drifted else "ok"
    verdict = "drifted" if c.drifted else "stable"
    return (
        f'<div class="card"><h3>{html.escape(c.column)} <span class="{cls}">{verdict}</span>'
        f'</h3><div class="muted">{html.escape(c.method)} {html.escape(fmt_score(c))} '
        f"({html.escape(drift_rule(c))}) · {html.escape(extra)}</div>"
        f"{_bars_svg([str(x) for x in labels], ref, cur) if ref else ''}</div>"
    )


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, int | float) else "-"


def drift_html(r: DriftReport, title: str) -> str:
    cls = "bad" if r.dataset_drift else "ok"
    rows = [
        (c.column, c.kind, c.method, fmt_score(c), drift_rule(c), "yes" if c.drifted else "no")
        for c in r.ranked()
    ]
    cards = "".join(_card(c) for c in r.ranked())
    return (
        f"<h2>Drift against the {html.escape(title)}</h2>"
        f'<p class="{cls}">{html.escape(drift_summary(r))}</p>'
        + html_table(
            ("column", "type", "method", "score", "drift when", "drifted"), rows, bad_col=5
        )
        + '<p class="legend"><span style="background:'
        + REF_COLOR
        + '"></span>reference<span style="background:'
        + CUR_COLOR
        + '"></span>current (share of rows per bin; bins are the reference quantiles)</p>'
        + f'<div class="cards">{cards}</div>'
    )


def html_report(report: ValidationReport) -> str:
    """A self-contained HTML page: summary, failures, drift tables, per-feature histograms."""
    status = "valid" if report.valid else "INVALID"
    cls = "ok" if report.valid else "bad"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Data validation: {html.escape(report.input)}</title><style>{CSS}</style>",
        "</head><body>",
        f"<h1>Data validation: {html.escape(report.input)}</h1>",
        f'<p><span class="{cls}">{status}</span> · {report.rows} rows × {report.columns} '
        f"columns · schema {html.escape(report.schema or '-')} · action: "
        f"<b>{html.escape(report.action)}</b></p>",
    ]
    if report.failures:
        parts.append("<h2>Failures</h2>")
        parts.append(
            html_table(
                ("column", "check", "failing", "share", "examples", "rows"),
                failure_rows(report.failures, report.rows),
            )
        )
    for title, r in (("model reference", report.reference), ("previous span", report.previous)):
        if r is not None:
            parts.append(drift_html(r, title))
    for note in report.notes:
        parts.append(f'<p class="muted">{html.escape(note)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
