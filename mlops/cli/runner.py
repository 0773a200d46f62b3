"""`mlops runner start|stop|status`: keep this repository's warm runner alive between commands."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from mlops.cli import _ui

app = typer.Typer(
    help="Keep a warm runner for the built-in stages alive between commands.\n\n"
    "`mlops run` and `mlops exp run` start one for their own duration anyway; a kept runner "
    "also serves `dvc repro` and `dvc exp run` of this repository (and its worktrees).\n\n"
    "Example: mlops runner start && dvc repro --force && mlops runner stop",
    no_args_is_help=True,
)


def _show(info: Any, json: bool, verb: str) -> None:
    if json:
        _ui.print_json(info.to_dict() if info is not None else {"running": False})
        return
    if info is None:
        _ui.out().print("no runner listens for this repository")
        return
    st = info.status or {}
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.get("started", 0)))
    idle = f"stops after {st['idle']:.0f}s idle" if st.get("idle") else "no idle limit"
    owner = f"; ends with process {st['owner']}" if st.get("owner") else ""
    _ui.out().print(
        f"{verb} runner {info.pid} for {info.common}\n"
        f"  socket {info.socket}\n"
        f"  since {since}; {st.get('served', 0)} stages served, {st.get('running', 0)} running; "
        f"{'imports done' if st.get('preloaded') else 'still importing'}; {idle}{owner}",
        markup=False,
        soft_wrap=True,
    )


@app.command("start")
def start(
    idle: Annotated[
        float,
        typer.Option("--idle", help="Stop after this many minutes without a stage (0: never)."),
    ] = 30.0,
    json: Annotated[bool, typer.Option("--json", help="Print the runner as JSON.")] = False,
) -> None:
    """Start this repository's warm runner and leave it running (until `mlops runner stop`,
    or --idle minutes without work). Stages of `dvc repro`, `dvc exp run` and `mlops run` in
    this repository and its worktrees then run in forks of it. Does nothing when one runs.

    Example: mlops runner start --idle 60
    """
    from mlops import api

    _ui.set_json(json)
    info = api.runner_start(".", idle=max(idle, 0.0) * 60)
    _show(info, json, "started" if info.started else "already running:")


@app.command("stop")
def stop(
    json: Annotated[bool, typer.Option("--json", help="Print the stopped runner as JSON.")] = False,
) -> None:
    """Stop this repository's runner (stages it is running finish first).

    Example: mlops runner stop
    """
    from mlops import api

    _ui.set_json(json)
    info = api.runner_stop(".")
    _show(info, json, "stopped")


@app.command("status")
def status(
    json: Annotated[bool, typer.Option("--json", help="Print the runner as JSON.")] = False,
) -> None:
    """Show whether a runner listens for this repository: its process, socket, stages served.

    Example: mlops runner status --json
    """
    from mlops import api

    _ui.set_json(json)
    _show(api.runner_status("."), json, "running:")


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="runner")
