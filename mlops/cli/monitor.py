"""`mlops monitor`: drift, decay and health of an environment's live traffic; the action."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops.cli import _ui
from mlops.cli._options import JsonOpt, PushAutoOpt, RemoteOpt

if TYPE_CHECKING:
    from mlops.api import MonitorReport


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
    from mlops import api

    view = api.monitor_view(report)
    console = _ui.out()
    console.print(view["headline"], markup=False)
    style = "bold red" if report.breaches else "green"
    console.print(f"[{style}]{view['verdict']}[/]", highlight=False)
    for title, d in (("input drift", report.drift), ("prediction drift", report.prediction_drift)):
        if d is None:
            continue
        head = (
            f"{title}: {_drift_verdict(d, title)} ({len(d.drifted)} of "
            f"{len(d.columns)} drifted; {d.label})"
        )
        console.print(_ui.drift_table(api.drift_rows(d), title=head))
    if report.drift is None and report.drift_note:
        console.print(f"input drift: {report.drift_note}", markup=False)
    console.print(view["quality"], markup=False)
    if view["performance"]:
        t = _ui.table(*view["performance_header"], title="online performance")
        for row in view["performance"]:
            t.add_row(*row)
        console.print(t)
    console.print(view["health"], markup=False)
    for line in view["actions"]:
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
    json: JsonOpt = False,
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
    push: PushAutoOpt = None,
    remote: RemoteOpt = "origin",
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
    settings = api.MonitorSettings(
        since=since, log_dir=log_dir, log_url=log_url, dry_run=dry_run, push=push, remote=remote
    )
    report = api.monitor(".", env, settings)
    from mlops.cli.canary import release_report, show_release

    release = release_report(env, log_dir)  # a canary or shadow in progress: against live

    if html:
        api.save_text(html, api.report_html(report))
    if json:
        _ui.print_json({**report.to_dict(), **({"canary": release.to_dict()} if release else {})})
    elif markdown:
        typer.echo(api.report_markdown(report), nl=False)
    else:
        show(report)
        if release is not None:
            show_release(release)
    error = report.error()
    if error is None:
        return
    if json or markdown:
        raise typer.Exit(report.exit_code)  # the report is the output
    raise error


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
