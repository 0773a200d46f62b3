"""`mlops validate`: check data against the contract, show drift; `--infer` drafts the contract."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops.cli import _ui

if TYPE_CHECKING:
    from mlops.data.validation import ValidationReport


class ByteProgress:
    """A progress bar on stderr for long reads (only on a terminal; CI logs stay clean)."""

    def __init__(self) -> None:
        self.console = _ui.err()
        self.bar = None
        self.task = None

    def __call__(self, done: int, total: int) -> None:
        if not self.console.is_terminal or total < (64 << 20):
            return
        if self.bar is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(
                "reading",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("read", total=total)
        self.bar.update(self.task, completed=done)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def show(report: ValidationReport) -> None:
    """The terminal rendering: summary, failures table, drift tables."""
    from mlops.data.render import drift_rule, drift_summary, failure_rows, fmt_score

    console = _ui.out()
    status = "[green]valid[/]" if report.valid else "[bold red]INVALID[/]"
    console.print(
        f"{status}  {report.input}: {report.rows} rows x {report.columns} columns, "
        f"schema {report.schema or '-'}  [dim]{_ui.fmt_seconds(report.seconds)}[/]"
    )
    if report.failures:
        t = _ui.table("column", "check", "failing", "share", "examples", "rows", title="failures")
        for row in failure_rows(report.failures, report.rows):
            t.add_row(*row)
        console.print(t)
    for r in (report.previous, report.reference):
        if r is None:
            continue
        t = _ui.table(
            "column", "type", "method", "score", "drift when", "drifted", title=drift_summary(r)
        )
        for c in r.ranked():
            mark = "[bold red]yes[/]" if c.drifted else "no"
            t.add_row(c.column, c.kind, c.method, fmt_score(c), drift_rule(c), mark)
        console.print(t)
    for note in report.notes:
        _ui.err().print(f"[dim]{note}[/]")


def validate(
    input: Annotated[
        str | None,
        typer.Argument(
            help="Table to check (CSV, Parquet, or a directory of them). "
            "Default: the validate stage's input."
        ),
    ] = None,
    schema: Annotated[
        str | None, typer.Option("--schema", help="Schema file (default: the stage's).")
    ] = None,
    infer: Annotated[
        bool, typer.Option("--infer", help="Draft the schema from the data and write it.")
    ] = False,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="With --infer: widen numeric ranges by this share "
            "of each column's range on each side.",
        ),
    ] = 0.0,
    force: Annotated[
        bool, typer.Option("--force", help="With --infer: overwrite an existing schema.")
    ] = False,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Compare with a model's reference: a bundle "
            "directory (models/NAME) or a profile JSON file.",
            metavar="PATH",
        ),
    ] = None,
    previous: Annotated[
        str | None,
        typer.Option(
            "--previous",
            help="The previous span's profile (default: the validate "
            "stage's last profile, if there is one).",
            metavar="PATH",
        ),
    ] = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="Which validate stage's settings to use.")
    ] = None,
    no_schema: Annotated[
        bool, typer.Option("--no-schema", help="Skip the schema: profile and drift only.")
    ] = False,
    html: Annotated[
        str | None,
        typer.Option("--html", help="Write a self-contained HTML report.", metavar="FILE"),
    ] = None,
    markdown: Annotated[
        str | None,
        typer.Option(
            "--markdown", help="Write the report as Markdown ('-' for stdout).", metavar="FILE"
        ),
    ] = None,
    save_profile: Annotated[
        str | None,
        typer.Option(
            "--save-profile",
            help="Write the data's statistics profile (JSON; usable "
            "later as --previous or --reference).",
            metavar="FILE",
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check data against data/schema.yaml; show anomalies and drift.

    Every failure is listed per column and check (failing count, share, example values, row
    numbers), not just the first. The data is also compared with the previous span's profile
    and, with --reference, with a model's training data; the validate stage's `drift:` settings
    in pipeline.yaml choose the method and thresholds and what drift means. Large files are
    read in chunks with bounded memory, in this process (`engine: dask` applies to the
    pipeline's validate stage under `mlops run`, not to this command).

    Exit codes: 3 invalid data, or drift with `on_drift: stop`; 7 drift with
    `on_drift: retrain`; 0 otherwise (drift with `on_drift: continue` is reported only).

    Example: mlops validate data/new.csv --reference models/penguins-classifier --html drift.html
    """
    # the data package alone: `mlops.api` would import the pipeline, registry and deployment
    # code too, none of which this command needs (issue 22, measured with -X importtime)
    from mlops.data import commands as api
    from mlops.errors import DataValidationError, MonitorBreach

    _ui.set_json(json)
    progress = ByteProgress()
    try:
        if infer:
            result = api.infer_project(
                ".",
                input,
                schema=schema,
                stage=stage,
                tolerance=tolerance,
                force=force,
                progress=progress,
            )
            progress.stop()
            if json:
                _ui.print_json(result.to_dict())
                return
            _ui.err().print(
                f"[green]wrote[/] {result.path} from {result.input} ({result.rows} rows, "
                f"{len(result.schema['columns'])} columns). Review it, then commit it."
            )
            for line in result.roles:
                _ui.err().print(f"  {line}", markup=False)
            return
        report = api.validate_project(
            ".",
            input,
            schema=schema,
            stage=stage,
            reference=reference,
            previous=previous,
            no_schema=no_schema,
            progress=progress,
        )
    finally:
        progress.stop()
    from mlops.config.yamlfile import atomic_write_text
    from mlops.data.render import html_report
    from mlops.data.render import markdown as to_markdown

    if save_profile:
        import json as _json

        atomic_write_text(Path(save_profile), _json.dumps(report.profile, indent=1) + "\n")
    if html:
        atomic_write_text(Path(html), html_report(report))
    if markdown == "-":
        typer.echo(to_markdown(report), nl=False)
    elif markdown:
        atomic_write_text(Path(markdown), to_markdown(report))
    if json:
        _ui.print_json(report.to_dict())
    elif markdown != "-":
        show(report)
    action = report.action
    if action == "stop":
        what = "invalid data" if not report.valid else "dataset drift (on_drift: stop)"
        error: Exception = DataValidationError(
            f"{report.input}: {what}",
            "Fix the data or the schema; `mlops validate --html report.html` shows every "
            "problem and histogram.",
        )
    elif action == "retrain":
        error = MonitorBreach(
            f"{report.input}: dataset drift (on_drift: retrain)",
            "Retrain on the new data: `mlops run`.",
        )
    else:
        return
    if json or markdown == "-":
        raise typer.Exit(int(error.exit_code))  # the report is the output
    raise error


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
