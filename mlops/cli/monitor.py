"""`mlops monitor`: drift, decay and health of an environment's live traffic; the action."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops.cli import _ui

if TYPE_CHECKING:
    from mlops.monitor.checks import MonitorReport


def _drift_verdict(d: Any, title: str) -> str:
    if title == "prediction drift":
        return "DRIFT" if d.drifted else "stable"
    if d.dataset_drift:
        return "DATASET DRIFT"
    if d.drifted:
        return f"no dataset drift (share {d.share:.2f} < {d.share_threshold:g})"
    return "stable"


def show(report: MonitorReport) -> None:
    """The terminal rendering: headline, verdict, drift, quality, performance, health, action."""
    from mlops.data.render import drift_rule, fmt_score
    from mlops.monitor import render

    console = _ui.out()
    console.print(render.headline(report), markup=False)
    style = "bold red" if report.breaches else "green"
    console.print(f"[{style}]{render.verdict(report)}[/]", highlight=False)
    for title, d in (("input drift", report.drift), ("prediction drift", report.prediction_drift)):
        if d is None:
            continue
        t = _ui.table(
            "column", "type", "method", "score", "drift when", "drifted",
            title=f"{title}: {_drift_verdict(d, title)} ({len(d.drifted)} of "
            f"{len(d.columns)} drifted; {d.label})",
        )  # fmt: skip
        for c in d.ranked():
            mark = "[bold red]yes[/]" if c.drifted else "no"
            t.add_row(c.column, c.kind, c.method, fmt_score(c), drift_rule(c), mark)
        console.print(t)
    if report.drift is None and report.drift_note:
        console.print(f"input drift: {report.drift_note}", markup=False)
    console.print(render.quality_line(report), markup=False)
    rows = render.performance_rows(report)
    if rows:
        t = _ui.table(*render.PERF_HEADER, title="online performance")
        for row in rows:
            t.add_row(*row)
        console.print(t)
    console.print(render.health_line(report), markup=False)
    for line in render.action_lines(report):
        console.print(line, markup=False)
    for note in report.notes:
        _ui.err().print(f"[dim]{note}[/]")


def monitor(
    env: Annotated[
        str, typer.Option("--env", "-e", metavar="ENV", help="The environment to monitor.")
    ],
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DURATION",
            help="Window: 30m, 24h, 7d, 2w or all (default: monitoring.window in "
            "pipeline.yaml, else the whole log).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check and say what the action would do; do nothing."),
    ] = False,
    html: Annotated[
        str | None,
        typer.Option(
            "--html", metavar="FILE", help="Write a self-contained HTML report with plots."
        ),
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the report as Markdown instead of tables.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    log_dir: Annotated[
        str | None,
        typer.Option(
            "--log-dir",
            metavar="DIR",
            help="Read this prediction log (default: the environment's <target>/predictions). "
            "Its parsed columns are kept in DIR/.index/ so the next run reads only new lines.",
        ),
    ] = None,
    log_url: Annotated[
        str | None,
        typer.Option(
            "--log-url",
            metavar="URL",
            help="Read the log segments every host shipped there (`mlops serve --log-url`): a "
            "directory or s3://bucket/prefix. Default: segments under the target, if any.",
        ),
    ] = None,
    push: Annotated[
        bool | None,
        typer.Option(
            "--push/--no-push",
            help="Push what an action writes (commit, tags). Default: when the remote exists.",
        ),
    ] = None,
    remote: Annotated[
        str, typer.Option("--remote", metavar="NAME", help="The git remote to push to.")
    ] = "origin",
) -> None:
    """Compare an environment's live traffic with what its model was trained on; act on a breach.

    Reads the prediction log of `mlops serve` (and the labels sent to /feedback): input drift
    per feature and dataset drift against the bundle's training profile, drift of the
    predictions against the evaluation set's, the share of refused requests, online
    performance with its confidence interval against the offline figure and against the
    version before, server errors and latency. Thresholds and the action come from
    `monitoring:` in pipeline.yaml (`on_breach`: alert, retrain, rollback). Every run, and
    every action with its reason, is recorded (`mlops runs list`).

    Exit codes: 7 on a breach (whatever the action did; the report says), 0 otherwise
    (including an empty window); 2 bad options; 5 nothing deployed.

    Example: mlops monitor --env production --since 24h --html monitor.html
    """
    from mlops import api

    _ui.set_json(json)
    report = api.monitor(
        ".",
        env,
        since=since,
        log_dir=log_dir,
        log_url=log_url,
        dry_run=dry_run,
        push=push,
        remote=remote,
    )
    from mlops.cli.canary import release_report, show_release
    from mlops.config.yamlfile import atomic_write_text
    from mlops.monitor import render

    release = release_report(env, log_dir)  # a canary or shadow in progress: against live

    if html:
        atomic_write_text(Path(html), render.html_report(report))
    if json:
        _ui.print_json({**report.to_dict(), **({"canary": release.to_dict()} if release else {})})
    elif markdown:
        typer.echo(render.markdown(report), nl=False)
    else:
        show(report)
        if release is not None:
            show_release(release)
    if not report.breached:
        return
    if json or markdown:
        raise typer.Exit(7)  # the report is the output
    from mlops.errors import MonitorBreach

    action = report.action or {}
    done = f"; action {action.get('kind')}: {action.get('status') or 'planned'}" if action else ""
    raise MonitorBreach(
        f"monitoring breach in {report.env}{done}",
        "See the report above (--html FILE draws it); `mlops runs list` has the record.",
    )


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
