"""`mlops exp run` and `mlops exp apply`: experiments that never touch the workspace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from mlops.api import ExpRun, StageEvent

from mlops.cli import _ui
from mlops.cli._options import JsonOpt

app = typer.Typer(
    help="Run experiments with changed params, compare them, apply the best.\n\n"
    "Experiments run in a scratch copy of the workspace and are recorded with the other runs "
    "(`mlops runs list --where 'kind == exp'`).\n\n"
    "Example: mlops exp run -S train.C=0.1,1,10",
    no_args_is_help=True,
)


@app.command("run")
def run(
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set-param",
            "-S",
            help="SECTION.KEY=VALUE of params.yaml (YAML value); repeat for several; "
            "commas sweep: -S train.C=0.1,1,10 runs three experiments.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="A label stored with the experiment.")
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=0,
            help="Experiments of a sweep run at once, each in its own worker process and "
            "scratch tree (like `dvc exp run --run-all --jobs N`, whose default is also 1); "
            "0: one per CPU, at most 4.",
        ),
    ] = 1,
    json: JsonOpt = False,
) -> None:
    """Run the pipeline with changed params, leaving the workspace as it is.

    Runs in a scratch work tree of HEAD plus your uncommitted changes, sharing the DVC cache:
    params.yaml, dvc.lock and every output in the workspace stay untouched, whether the
    experiment succeeds or fails. Each experiment is recorded (kind exp) with its settings;
    compare with `mlops runs list --sort metrics.accuracy --desc` and `mlops runs diff`, then
    `mlops exp apply ID`. Exits with the first failing experiment's code (4 gate failed, ...).
    A sweep can run --jobs experiments at once (default 1, one after the other); the results,
    records and outputs are the same as one at a time, listed in sweep order.

    Example: mlops exp run -S train.C=0.5 -S train.max_iter=200

    Example: mlops exp run -S train.C=0.1,0.5,1,5,10 --jobs 2
    """
    from mlops import api
    from mlops.cli.run import Progress, summary

    _ui.set_json(json)
    console = _ui.progress_console()
    progress: list[Progress] = []

    live: list[bool] = [False]  # stage events shown for the current experiment (one at a time)

    def on_start(overrides: dict[str, Any]) -> None:
        if progress:
            progress[-1].stop()
        live[0] = False
        if not json:
            console.print(f"[bold]experiment[/] {_shown(overrides)}")

    def on_event(ev: StageEvent) -> None:
        if json:
            return
        if not live[0]:
            progress.append(Progress(console))
            live[0] = True
        progress[-1](ev)

    def on_finish(r: ExpRun) -> None:  # several at once: one line as each ends
        if not json and not live[0]:
            rec = r.result.record
            metrics = "  ".join(f"{k}={_ui.fmt_value(v)}" for k, v in list(rec.metrics.items())[:3])
            seconds = _ui.fmt_seconds(rec.duration)
            console.print(f"  {_shown(r.overrides)}: {rec.outcome} in {seconds}  {metrics}")

    try:
        from mlops.api import runner_session as session

        with session("."):  # one warm runner shared by every experiment's stages (issue 22)
            runs = api.exp_run(
                ".",
                list(settings or []),
                name=name,
                on_event=on_event,
                on_start=on_start,
                on_finish=on_finish,
                jobs=jobs or None,
            )
    finally:
        if progress:
            progress[-1].stop()
    failed = next((r.result.error for r in runs if r.result.error is not None), None)
    if json:
        _ui.print_json([r.to_dict() for r in runs])
        if failed is not None:
            raise typer.Exit(int(failed.exit_code))
        return
    for r in runs:
        summary(r.result)
    if len(runs) > 1:
        t = _ui.table("run", "params set", "outcome", "metrics", title="experiments")
        for r in runs:
            rec = r.result.record
            metrics = "  ".join(f"{k}={_ui.fmt_value(v)}" for k, v in list(rec.metrics.items())[:3])
            shown = ", ".join(f"{k}={v}" for k, v in r.overrides.items())
            t.add_row(rec.id, shown, rec.outcome, metrics)
        _ui.out().print(t)
    _ui.err().print(
        "[dim]workspace unchanged; `mlops exp apply ID` writes an experiment's params[/]"
    )
    if failed is not None:
        raise failed


def _shown(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in overrides.items())


@app.command("apply")
def apply(
    run_id: Annotated[str, typer.Argument(help="Run id (or unique prefix) of an experiment.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace uncommitted changes in params.yaml.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Write an experiment's params into params.yaml (comments kept).

    params.yaml then holds exactly the params the experiment ran with (keys added since are
    removed); every change is listed. Refuses (exit 5) when params.yaml has uncommitted
    changes, unless --force. Then
    `mlops run` reproduces the experiment; stages whose inputs match an earlier run are
    restored from DVC's run cache instead of rerunning.

    Example: mlops exp apply 20261122-101502
    """
    from mlops import api

    _ui.set_json(json)
    result = api.exp_apply(".", run_id, force=force)
    if json:
        _ui.print_json(result.to_dict())
        return
    console = _ui.err()
    if not result.changes:
        console.print(f"params.yaml already has the params of run {result.run_id}")
        return
    console.print(f"[green]params.yaml now has the params of run {result.run_id}[/]:")
    for change in result.changes:
        console.print(f"  {change}", markup=False)
    console.print("Next: [bold]mlops run[/], then commit params.yaml, dvc.lock and the reports.")
