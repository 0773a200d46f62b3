"""`mlops canary`, `mlops promote-canary`, `mlops abort-canary`: canary and shadow releases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops.cli import _ui
from mlops.cli._options import JsonOpt, PushAutoOpt, RemoteOpt

if TYPE_CHECKING:
    from mlops.api import CanaryReport

EnvOpt = Annotated[
    str, typer.Option("--env", "-e", metavar="ENV", help="The environment (pipeline.yaml).")
]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def show_release(report: CanaryReport) -> None:
    """The terminal rendering of a release's comparison with live."""
    console = _ui.out()
    console.print(
        f"{report.env}: {report.mode} {report.candidate} ({report.percent:g}% of answers) "
        f"against live {report.live}; {report.requests['candidate']} and "
        f"{report.requests['live']} requests in this step",
        markup=False,
    )
    t = _ui.table("check", "live", report.mode, "p (Holm)", "worse", "detail")
    for f in report.findings:
        worse = "[bold red]yes[/]" if f.worse else ("no" if f.p is not None else "not judged")
        t.add_row(f.name, _fmt(f.live), _fmt(f.candidate), _fmt(f.p_adjusted), worse, f.detail)
    console.print(t)
    if report.agreement is not None:
        console.print(f"shadow agrees with live on {report.agreement:.1%} of rows", markup=False)
    colour = {"abort": "bold red", "promote": "green"}.get(report.decision, "yellow")
    console.print(f"[{colour}]decision: {report.decision}[/] ({report.reason})", highlight=False)
    if report.action:
        console.print(f"done: {report.action.get('action')} ({report.action.get('percent'):g}%)")


def release_report(env: str, log_dir: str | None) -> CanaryReport | None:
    """The comparison of the release in progress in `env`, or None when there is none."""
    from mlops import api

    return api.release_report(".", env, log_dir=log_dir)


def canary(
    env: EnvOpt,
    act: Annotated[
        bool,
        typer.Option("--act", help="Abort or promote one step as decided (the scheduled job)."),
    ] = False,
    log_dir: Annotated[
        str | None,
        typer.Option("--log-dir", metavar="DIR", help="Read this prediction log instead."),
    ] = None,
    push: PushAutoOpt = None,
    remote: RemoteOpt = "origin",
    json: JsonOpt = False,
) -> None:
    """Compare the canary or shadow release of an environment with live, and decide.

    Over the current step's window (the same window for both): 5xx share, latency, the online
    metric where /feedback sent labels, and prediction drift between the two, one family of
    tests at `canary.alpha` (Holm). Decision: abort on any breach (`canary.abort_on`), promote
    once both sides answered `canary.min_requests`, else wait. With --act the decision is
    carried out (a CI schedule runs `mlops canary --env ENV --act`).

    Exit 7 when the release is (or should be) aborted; 5 when no release is in progress.

    Example: mlops canary --env production --act
    """
    from mlops import api

    _ui.set_json(json)
    report = api.canary_check(".", env, act=act, log_dir=log_dir, push=push, remote=remote)
    if json:
        _ui.print_json(report.to_dict())
    else:
        show_release(report)
    if report.decision == "abort":
        raise typer.Exit(7)


def _done(result: Any, json: bool) -> None:
    if json:
        _ui.print_json(result.to_dict())
        return
    console = _ui.err()
    what = {
        "started": f"started a {result.mode} of {result.name} {result.version} in {result.env} "
        f"({result.percent:g}% of answers; live: {result.live})",
        "stepped": f"{result.name} {result.version} now answers {result.percent:g}% in "
        f"{result.env}",
        "promoted": f"{result.name} {result.version} is live in {result.env} (was {result.live})",
        "aborted": f"aborted the {result.mode} of {result.version} in {result.env}; "
        f"{result.live} answers everything ({result.reason})",
    }[result.action]
    console.print(what, markup=False)
    for tag in (result.stage_tag, result.unassigned):
        if tag:
            console.print(f"tag {tag}", markup=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")


def promote_canary(
    env: EnvOpt,
    full: Annotated[
        bool, typer.Option("--full", help="Make the candidate live now, skipping the steps.")
    ] = False,
    push: PushAutoOpt = None,
    remote: RemoteOpt = "origin",
    json: JsonOpt = False,
) -> None:
    """Step a canary or shadow release forward.

    A shadow becomes a canary at the first of `canary.steps`; a canary takes the next step;
    promoting into the last step (100) switches `current` to the candidate, assigns the
    environment's stage and unassigns ENV-canary. Servers follow at their next poll.

    Example: mlops promote-canary --env production
    """
    from mlops import api

    _ui.set_json(json)
    _done(api.promote_canary(".", env, full=full, push=push, remote=remote), json)


def abort_canary(
    env: EnvOpt,
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (kept in history and the tag).")
    ] = "aborted by hand",
    push: PushAutoOpt = None,
    remote: RemoteOpt = "origin",
    json: JsonOpt = False,
) -> None:
    """Abort a canary or shadow release: live answers everything again at the servers' next poll.

    The record is removed and the stage ENV-canary (or ENV-shadow) unassigned; the live
    version never changed.

    Example: mlops abort-canary --env production --reason "p99 too high"
    """
    from mlops import api

    _ui.set_json(json)
    _done(api.abort_canary(".", env, reason=reason, push=push, remote=remote), json)


def register(app: typer.Typer) -> None:
    """Add the release commands to the app."""
    app.command("canary")(canary)
    app.command("promote-canary")(promote_canary)
    app.command("abort-canary")(abort_canary)
