"""`mlops deploy` and `mlops envs`: deployments to the environments of pipeline.yaml."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlops.cli import _ui
from mlops.cli._options import JsonOpt, PushAutoOpt, RemoteOpt
from mlops.rendering import when


def deploy(
    env: Annotated[
        str, typer.Option("--env", "-e", metavar="ENV", help="The environment (pipeline.yaml).")
    ],
    version: Annotated[
        str | None,
        typer.Option(
            "--version", metavar="VERSION", help="Deploy this registered version, not the desired."
        ),
    ] = None,
    from_tag: Annotated[
        str | None,
        typer.Option(
            "--from-tag",
            metavar="TAG",
            help="Deploy the version a stage tag NAME#ENV#N assigns (CI: $CI_COMMIT_TAG).",
        ),
    ] = None,
    rollback: Annotated[
        bool,
        typer.Option("--rollback", help="Deploy the version the environment ran before."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Deploy even a version that failed its gates.")
    ] = False,
    push: PushAutoOpt = None,
    remote: RemoteOpt = "origin",
    canary: Annotated[
        float | None,
        typer.Option(
            "--canary",
            metavar="PERCENT",
            help="Install the version beside the live one and let it answer this share of "
            "requests (a canary release; `mlops canary` judges it).",
        ),
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow",
            help="Install the version beside the live one and score a copy of every request "
            "with it, answering none (a shadow release).",
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Deploy a registered model version to an environment.

    The version is the environment's desired one (track: latest, or the version its pin file
    names) unless --version, --from-tag or --rollback says otherwise. Steps: fetch the bundle
    as committed at the version's tag (DVC cache or remote); verify every file against git's
    md5 and the bundle's sha256; install it beside the live version; smoke-test it (load,
    sample rows through its schema, predict); switch `current` atomically; record it (stage
    tag NAME#ENV#N, pushed when the remote takes it, and the target's history). Any failing
    step leaves the live version as it was and exits 6, naming the step and why. The version
    already live: nothing to do, unless its installed copy no longer matches its hashes (altered
    on disk or in the bucket): then it is installed again, verified. An interrupted deploy is
    repaired by the next one.

    Exit 4: the version failed its quality gates (use --force). Exit 5: nothing to deploy,
    an unknown version or tag.

    --canary PERCENT / --shadow: the same steps up to the smoke test, then a canary record
    beside `current` instead of the switch, and the stage tag NAME#ENV-canary#N (or
    ENV-shadow); `mlops canary`, `promote-canary` and `abort-canary` take it from there.

    Example: mlops deploy --env staging
    """
    from mlops import api

    _ui.set_json(json)
    console = _ui.err()
    if canary is not None or shadow:
        if from_tag or rollback:
            from mlops.errors import UsageError

            raise UsageError("--canary and --shadow take --version, not --from-tag or --rollback")
        from mlops.cli.canary import _done

        _done(
            api.deploy_canary(
                ".", env, percent=canary, shadow=shadow, version=version, force=force,
                push=push, remote=remote,
            ),
            json,
        )  # fmt: skip
        return

    def progress(step: dict[str, Any]) -> None:
        if not json and step["ok"]:
            detail = f"  {step.get('detail')}" if step.get("detail") else ""
            console.print(f"  {step['step']:<8} ok {_ui.fmt_seconds(step['seconds'])}{detail}",
                          markup=False)  # fmt: skip

    result = api.deploy(
        ".",
        env,
        version=version,
        from_tag=from_tag,
        rollback=rollback,
        force=force,
        push=push,
        remote=remote,
        on_step=progress,
    )
    if json:
        _ui.print_json(result.to_dict())
        return
    for line in result.repaired:
        console.print(f"[yellow]repaired:[/] {line}")
    if result.action == "unchanged":
        console.print(
            f"{env} already runs {result.name} {result.version}: nothing to do",
            markup=False,
        )
    else:
        was = f" (was {result.previous})" if result.previous else ""
        console.print(
            f"[green]deployed[/] {result.name} {result.version} to {env}{was}; "
            f"source: {result.source}"
        )
    if result.stage_tag:
        state = {True: "pushed", False: "local only", None: "already there"}[result.tag_pushed]
        console.print(f"stage tag {result.stage_tag} ({state})", markup=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")


def _release_text(release: dict[str, Any] | None) -> str:
    if not release:
        return ""
    share = "shadow" if release["mode"] == "shadow" else f"canary {release['percent']:g}%"
    return f"; {share} {release['version']}"


def envs(json: JsonOpt = False) -> None:
    """Show what each environment runs, since when, and what it should run.

    For each environment of pipeline.yaml: the version live in its target and when it was
    deployed, the version it should run (tracked latest, or its pin file), the version the
    registry's latest stage tag assigns (mlops or `gto assign`), and whether a deploy is due.

    Example: mlops envs --json
    """
    from mlops import api

    _ui.set_json(json)
    from mlops.errors import ExitCode

    states = api.envs(".")
    failing = [s.env for s in states if s.state == "fails verification"]
    if json:
        _ui.print_json([s.to_dict() for s in states])
        if failing:
            raise typer.Exit(int(ExitCode.DEPLOY_FAILED))
        return
    if not states:
        _ui.err().print("pipeline.yaml declares no environments (`environments:`)")
        return
    t = _ui.table("environment", "mode", "live", "since (UTC)", "desired", "stage tag", "state")
    for s in states:
        colours = {"up to date": "green", "out of date": "yellow", "fails verification": "red"}
        colour = colours.get(s.state, "dim")
        t.add_row(
            s.env,
            s.mode,
            s.live or "-",
            when(s.since, seconds=False),
            s.desired or "-",
            s.stage or "-",  # the registry's assignment (mlops deploy, promote, `gto assign`)
            f"[{colour}]{s.state}[/]" + _release_text(s.release),
        )
    _ui.out().print(t)
    for s in states:
        for problem in s.problems:
            _ui.err().print(f"[yellow]{s.env}:[/] {problem}")
    if failing:  # a live version that does not match git: exit 6
        raise typer.Exit(int(ExitCode.DEPLOY_FAILED))


def register(app: typer.Typer) -> None:
    """Add `mlops deploy` and `mlops envs` to the app."""
    app.command("deploy")(deploy)
    app.command("envs")(envs)
