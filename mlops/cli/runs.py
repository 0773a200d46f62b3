"""`mlops runs list` and `mlops runs show`: the run records."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from mlops.cli import _ui

app = typer.Typer(
    help="Read the run records.\n\nEach run records what ran, on which commit, data and params, "
    "with which result.\n\n"
    "Example: mlops runs list --limit 5",
    no_args_is_help=True,
)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs, newest first.")] = 20,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List recorded runs, newest first.

    Example: mlops runs list -n 5 --json
    """
    from mlops import api

    _ui.set_json(json)
    records = api.runs_list(".", limit=limit)
    if json:
        _ui.print_json([r.to_dict() for r in records])
        return
    t = _ui.table("run", "started", "outcome", "commit", "ran", "duration", "metrics")
    for r in records:
        ran = [s["name"] for s in r.stages if s.get("status") == "ran"]
        commit = (r.git_commit or "-")[:8] + ("+dirty" if r.git_dirty else "")
        metrics = "  ".join(f"{k}={_ui.fmt_value(v)}" for k, v in list(r.metrics.items())[:3])
        style = "green" if r.outcome == "ok" else "red" if "fail" in r.outcome else ""
        t.add_row(
            r.id,
            _when(r.started),
            f"[{style}]{r.outcome}[/]" if style else r.outcome,
            commit,
            ", ".join(ran) or "-",
            _ui.fmt_seconds(r.duration),
            metrics,
        )
    _ui.out().print(t)


@app.command("show")
def show(
    run_id: Annotated[
        str, typer.Argument(help="Run id, a unique prefix of one, or `latest`.")
    ] = "latest",
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one run: git commit, stages, params, data hashes and metrics.

    Example: mlops runs show latest
    """
    from mlops import api

    _ui.set_json(json)
    r = api.runs_show(".", run_id)
    if json:
        _ui.print_json(r.to_dict())
        return
    console = _ui.out()
    console.print(f"[bold]run {r.id}[/]  {r.outcome} (exit {r.exit_code})")
    console.print(f"started {_when(r.started)}, took {_ui.fmt_seconds(r.duration)}")
    console.print(
        f"git {r.git_commit or '(no commit)'}{' (dirty)' if r.git_dirty else ''}"
        f" on {r.git_branch or '-'}"
    )
    if r.message:
        console.print(r.message, markup=False)
    t = _ui.table("stage", "status", "duration")
    for s in r.stages:
        t.add_row(s["name"], s["status"], _ui.fmt_seconds(s.get("seconds") or None))
    console.print(t)
    if r.metrics:
        m = _ui.table("metric", "value", title="metrics")
        for k, v in r.metrics.items():
            m.add_row(k, _ui.fmt_value(v))
        console.print(m)
    h = _ui.table("path", "md5", title="data and outputs (from dvc.lock)")
    for path, digest in {**r.deps, **r.outs}.items():
        h.add_row(path, digest)
    console.print(h)
