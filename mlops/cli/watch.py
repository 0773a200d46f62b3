"""`mlops watch` (and `mlops run --if-new-data`): retrain when the ingest source has new data."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops.cli import _ui
from mlops.cli._options import JsonOpt, PushAutoOpt, RemoteOpt
from mlops.errors import ExitCode


def run_watch(
    *, dry_run: bool = False, push: bool | None = None, remote: str = "origin", json: bool = False
) -> None:
    """Check the sources, retrain on new data, print what happened; exit as the retrain did."""
    from mlops import api

    _ui.set_json(json)
    result = api.watch(".", dry_run=dry_run, push=push, remote=remote)
    code = 0
    if result.failed:
        details = (result.action or {}).get("details") or {}
        code = int(ExitCode.GATE_FAILED if details.get("run") else ExitCode.GIT_STATE)
    if json:
        _ui.print_json(result.to_dict())
        if code:
            raise typer.Exit(code)
        return
    console = _ui.out()
    for c in result.checks:
        mark = "[yellow]new data[/]" if c.new else "no new data"
        console.print(f"{c.stage}: {c.source}: {mark} ({c.reason})", soft_wrap=True)
    if not result.checks:
        console.print("no ingest stage in pipeline.yaml: nothing to watch")
    action = result.action
    if action is None:
        if not result.new:
            console.print("nothing to do")
        return
    console.print(f"retrain: {action.get('status', '')}", soft_wrap=True)
    for step in action.get("steps") or action.get("planned") or []:
        console.print(f"  {step}", markup=False, soft_wrap=True)
    if action.get("error"):
        _ui.err().print(f"error: {action['error']}", markup=False, soft_wrap=True)
    if action.get("next_step"):
        _ui.err().print(f"hint: {action['next_step']}", markup=False, soft_wrap=True)
    if code:
        raise typer.Exit(code)


def watch(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say whether there is new data; change nothing.")
    ] = False,
    push: PushAutoOpt = None,
    remote: RemoteOpt = "origin",
    json: JsonOpt = False,
) -> None:
    """Retrain when the ingest source has new data: run, commit, register, deploy staging.

    Each ingest source is compared cheaply with what the last run read (dvc.lock): a file by
    size and md5, a directory by its number of files and bytes, a `span:` by rows newer than
    its end; a packaged dataset is never new. On new data the monitor's retrain path runs
    (the span moves to the newest rows; the run is recorded as kind retrain; a version that
    passes its gates is committed, registered and deployed to `monitoring.retrain.deploy`).
    No new data: exit 0, nothing written. Exit 4: the retrained model failed its gates (the
    work tree is as it was); 5: uncommitted changes or a push failed.

    Example: mlops watch --push   (a scheduled CI job; same as `mlops run --if-new-data`)
    """
    run_watch(dry_run=dry_run, push=push, remote=remote, json=json)


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)
