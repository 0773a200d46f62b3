"""What front ends show of the reports: HTML and Markdown pages, and the rows and lines of a
terminal rendering, built from the domain's renderers (re-exported by `mlops.api`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops.data.validation import ValidationReport
    from mlops.monitor.checks import MonitorReport
    from mlops.registry import Registry


def report_html(report: ValidationReport | MonitorReport) -> str:
    """A validation or monitoring report as one self-contained HTML page."""
    from mlops.data.validation import ValidationReport

    if isinstance(report, ValidationReport):
        from mlops.data.render import html_report

        return html_report(report)
    from mlops.monitor.render import html_report as monitor_html

    return monitor_html(report)


def report_markdown(report: ValidationReport | MonitorReport) -> str:
    """A validation or monitoring report as Markdown (a merge request note, a CI summary)."""
    from mlops.data.validation import ValidationReport

    if isinstance(report, ValidationReport):
        from mlops.data.render import markdown

        return markdown(report)
    from mlops.monitor.render import markdown as monitor_markdown

    return monitor_markdown(report)


def drift_rows(drift: Any) -> list[tuple[str, str, str, str, str, bool]]:
    """A drift report's columns, most drifted first: (column, type, method, score, drift when,
    drifted)."""
    from mlops.data.render import drift_rule, fmt_score

    return [
        (c.column, c.kind, c.method, fmt_score(c), drift_rule(c), bool(c.drifted))
        for c in drift.ranked()
    ]


def validation_view(report: ValidationReport) -> dict[str, Any]:
    """What a terminal shows of a validation report: the failure rows and each drift
    comparison's title (`previous`, `reference`: None when not compared)."""
    from mlops.data.render import drift_summary, failure_rows

    return {
        "failures": failure_rows(report.failures, report.rows) if report.failures else [],
        "previous": drift_summary(report.previous) if report.previous else None,
        "reference": drift_summary(report.reference) if report.reference else None,
    }


def monitor_view(report: MonitorReport) -> dict[str, Any]:
    """What a terminal shows of a monitoring report: headline, verdict, quality, performance
    (header and rows), health and action lines."""
    from mlops.monitor import render

    return {
        "headline": render.headline(report),
        "verdict": render.verdict(report),
        "quality": render.quality_line(report),
        "performance_header": render.PERF_HEADER,
        "performance": render.performance_rows(report),
        "health": render.health_line(report),
        "actions": render.action_lines(report),
    }


def registry_rows(registry: Registry) -> tuple[list[str], list[tuple[bool, list[str]]]]:
    """`mlops registry show`'s table: the header (model, latest, latest blessed, each stage)
    and one row per model, sorted by name, as (active, cells); a stage nobody holds is `-`."""
    stages = registry.stages()
    rows: list[tuple[bool, list[str]]] = []
    for name, art in sorted(registry.artifacts.items()):
        latest, blessed = art.latest(), art.latest(blessed_only=True)
        held = [art.in_stage(s) for s in stages]
        cells = [
            name,
            latest.version if latest else "-",
            blessed.version if blessed else "-",
            *(h.version if h else "-" for h in held),
        ]
        rows.append((art.active, cells))
    return ["model", "latest", "latest blessed", *stages], rows
