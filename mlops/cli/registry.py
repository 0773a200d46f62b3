"""`mlops commit`, `register`, `registry show|history`, `lineage`, `promote`, `rollback`,
`deprecate`, `deregister`: results into git, and the model registry in git tags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops.cli import _ui
from mlops.cli._options import JsonOpt, MessageOpt, PushOpt, RemoteOpt
from mlops.rendering import when

if TYPE_CHECKING:
    from rich.table import Table

    from mlops.api import Artifact, CommitResult, PromoteResult, Registry


app = typer.Typer(
    help="Read the model registry (git tags in GTO's format).\n\n"
    "Example: mlops registry show penguins-classifier",
    no_args_is_help=True,
)


def _table(*columns: str, title: str | None = None) -> Table:
    """A table whose cells wrap rather than lose characters (tag names are long)."""
    t = _ui.table(*columns, title=title)
    for col in t.columns:
        col.overflow = "fold"
    return t


def _metrics(metrics: dict[str, Any], n: int = 3) -> str:
    return "  ".join(f"{k}={_ui.fmt_value(v)}" for k, v in list(metrics.items())[:n])


# ---- commit -----------------------------------------------------------------------------------


def commit(
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Commit message (default: a summary).")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Commit the last run's results (data and models go to the DVC remote first).

    Commits dvc.lock, dvc.yaml, metrics and reports kept in git, the .gitignore files DVC
    maintains, and the inputs the lock describes (pipeline.yaml, params.yaml, git-tracked
    dependencies). Other changes are left alone and listed. Data and models go to the DVC
    remote first, so the commit never points at data that exists nowhere else. The default
    message summarises the run (headline metrics, gate verdict, changed params).

    Exit 5 when the work tree does not match dvc.lock (run first) or the push fails.

    Example: mlops run && mlops commit
    """
    from mlops import api

    _ui.set_json(json)
    result = api.commit(".", message=message)
    if json:
        _ui.print_json(result.to_dict())
        return
    _print_commit(result)


def _print_commit(result: CommitResult) -> None:
    console = _ui.err()
    if result.files_pushed:
        console.print(f"pushed {result.files_pushed} files to the DVC remote")
    if result.commit is None:
        console.print("nothing to commit: the run's results are already in git")
    else:
        console.print(f"[green]committed[/] {result.commit[:12]}: {', '.join(result.files)}")
        console.print(result.message.splitlines()[0], markup=False)
    if result.left_out:
        console.print(
            f"[yellow]not committed[/] (not the pipeline's): {', '.join(result.left_out)}"
        )


# ---- register ---------------------------------------------------------------------------------


def register_cmd(
    name: Annotated[
        str | None, typer.Argument(help="The model (default: model.name in pipeline.yaml).")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="The version to register, like v1.2.0.")
    ] = None,
    bump: Annotated[
        str | None,
        typer.Option(
            "--bump", help="Bump major, minor or patch of the highest version (default: patch)."
        ),
    ] = None,
    ref: Annotated[str, typer.Option("--ref", help="The commit to register.")] = "HEAD",
    push: PushOpt = False,
    force: Annotated[
        bool, typer.Option("--force", help="Register even a bundle that failed its gates.")
    ] = False,
    remote: RemoteOpt = "origin",
    message: MessageOpt = None,
    skip_registered: Annotated[
        bool,
        typer.Option(
            "--skip-registered",
            help="Exit 0 without a new tag when REF (or a version with the same bundle) is "
            "already registered (for CI on every push).",
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Register the committed model bundle as a new version.

    An annotated tag NAME@vX.Y.Z on the commit (default HEAD).
    The tag (GTO's format) carries the headline metrics and the gate verdict. The bundle is
    pushed to the DVC remote first. Refuses with exit 5: uncommitted changes, a bundle not
    committed at REF, a version that exists, a commit already registered; with exit 4 a
    bundle that failed its quality gates (unless --force). With --push, a push the remote
    rejects leaves no local tag behind.

    Example: mlops register --bump minor --push
    """
    from mlops import api

    _ui.set_json(json)
    if bump is not None and bump not in ("major", "minor", "patch"):
        raise typer.BadParameter("--bump takes major, minor or patch")
    result = api.register(
        ".",
        name,
        version=version,
        bump=bump,
        ref=ref,
        push=push,
        force=force,
        remote=remote,
        message=message,
        skip_registered=skip_registered,
    )
    if json:
        _ui.print_json(result.to_dict())
        return
    console = _ui.err()
    if result.skipped:
        console.print(f"nothing to register: {result.skipped}", markup=False)
        return
    note = " [yellow](forced: NOT blessed)[/]" if result.forced else ""
    console.print(
        f"[green]registered[/] {result.name} {result.version} at {result.commit[:12]} "
        f"(tag {result.tag}){note}"
    )
    if result.metrics:
        console.print(_metrics(result.metrics, 4), markup=False)
    if result.pushed:
        console.print(f"pushed {result.tag} to {result.remote}")
    else:
        console.print(f"Share it: git push origin {result.tag}  (or register with --push)")


# ---- registry show / history ------------------------------------------------------------------


@app.command("show")
def show(
    name: Annotated[
        str | None, typer.Argument(help="A model: list its versions (default: every model).")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Show the registry: each model's latest version and what each stage holds.

    Reads every tag in one `git for-each-ref`; tags written by `gto` read the same. --json
    without NAME has `gto show --json`'s keys (version, stage, registered, active) plus
    latest_blessed and assignments (version, commit, tag of each stage); with NAME it lists
    the versions.

    Example: mlops registry show --json
    """
    from mlops import api  # lazy: reading tags loads no pydantic config models

    _ui.set_json(json)
    reg = api.registry_show(".")
    if name is not None:
        art = reg.artifact(name)
        if json:
            _ui.print_json([v.to_dict() for v in art.sorted_versions()])
        else:
            _print_versions(art)
        return
    if json:
        _ui.print_json(reg.to_dict())
        return
    _print_registry(reg)


def _print_registry(reg: Registry) -> None:
    from mlops import api

    if not reg.artifacts:
        _ui.err().print("the registry is empty: register a version with `mlops register`")
        return
    header, rows = api.registry_rows(reg)  # mlops.entry prints the same rows without rich
    t = _table(*header)
    for active, (name, *cells) in rows:
        t.add_row(name if active else f"{name} [dim](deprecated)[/]", *cells)
    _ui.out().print(t)


def _print_versions(art: Artifact) -> None:
    t = _table("version", "commit", "registered (UTC)", "blessed", "stages", "metrics",
               title=art.name)  # fmt: skip
    for v in art.sorted_versions():
        d = v.to_dict()
        state = "" if v.active else " [dim](deregistered)[/]"
        blessed = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[v.blessed]
        t.add_row(
            v.version + state,
            v.commit[:8],
            when(d["registered_at"], seconds=False),
            blessed,
            ", ".join(d["stages"]) or "-",
            _metrics(v.metrics, 2),
        )
    _ui.out().print(t)


@app.command("history")
def history(
    name: Annotated[str | None, typer.Argument(help="A model (default: every model).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many events, newest first.")] = 0,
    json: JsonOpt = False,
) -> None:
    """Show the registry's events, newest first.

    Registrations, stage assignments, deregistrations and deprecations, with author, time and
    tag.

    Example: mlops registry history penguins-classifier -n 10
    """
    from mlops import api

    _ui.set_json(json)
    events = api.registry_show(".").history(name)
    if limit:
        events = events[:limit]
    if json:
        _ui.print_json([e.to_dict() for e in events])
        return
    t = _table("time (UTC)", "event", "version", "stage", "by", "tag")
    for e in events:
        d = e.to_dict()
        version = d["version"] or "-"
        t.add_row(
            when(d["timestamp"], seconds=False),
            d["event"],
            version[:12] if len(version) == 40 else version,
            e.stage or "-",
            e.author,
            e.tag,
        )
    _ui.out().print(t)


# ---- lineage ----------------------------------------------------------------------------------


def lineage(
    spec: Annotated[str, typer.Argument(help="NAME@vX.Y.Z", metavar="NAME@VERSION")],
    json: JsonOpt = False,
) -> None:
    """Show where a version came from and where it went.

    The commit (author, date), params, the hash of every dependency and output (dvc.lock at
    that commit), the data hashes and metrics the bundle recorded, the gate verdict, the data
    validation report, every stage assignment, and deployments. `mlops reproduce NAME@vX.Y.Z`
    rebuilds the version from scratch and checks every output's hash against dvc.lock.

    Example: mlops lineage penguins-classifier@v0.0.1
    """
    from mlops import api

    _ui.set_json(json)
    lin = api.lineage(".", spec)
    if json:
        _ui.print_json(lin.to_dict())
        return
    console = _ui.out()
    state = "" if lin.active else " (deregistered)"
    blessed = {True: "blessed", False: "NOT blessed", None: "no verdict"}[lin.blessed]
    console.print(f"[bold]{lin.name} {lin.version}[/]{state}  {blessed}")
    who = f"{lin.author} <{lin.author_email}>"
    console.print(f"commit     {lin.commit}  by {who}, {when(lin.date, seconds=False)}")
    console.print(f"           {lin.subject}", markup=False)
    console.print(
        f"registered {when(lin.registered_at, seconds=False)} by {lin.registered_by} "
        f"(tag {lin.tag})"
    )
    if lin.bundle:
        console.print(f"bundle     {lin.bundle['path']}  md5 {lin.bundle['md5']}")
    if lin.identity:
        console.print(f"identity   {lin.identity}  (model, input schema, params, data)")
    if lin.validation is not None:
        ok = lin.validation.get("valid")
        rows = lin.validation.get("rows")
        console.print(f"data check {'valid' if ok else 'INVALID'} ({rows} rows)")
    if lin.params:
        p = _table("param", "value", title="params")
        for section, values in lin.params.items():
            if isinstance(values, dict):
                for k, v in values.items():
                    p.add_row(f"{section}.{k}", _ui.fmt_value(v))
            else:
                p.add_row(section, _ui.fmt_value(values))
        console.print(p)
    if lin.metrics:
        m = _table("metric", "value", title="metrics")
        for k, v in lin.metrics.items():
            m.add_row(k, _ui.fmt_value(v))
        console.print(m)
    if lin.gates:
        g = _table("metric", "rule", "threshold", "value", "result", title="quality gates")
        for gate in lin.gates:
            g.add_row(
                str(gate.get("metric")),
                str(gate.get("rule")),
                _ui.fmt_value(gate.get("threshold")),
                _ui.fmt_value(gate.get("value")),
                "[green]pass[/]" if gate.get("passed") else "[red]FAIL[/]",
            )
        console.print(g)
    h = _table("path", "md5", title="data and outputs (dvc.lock at the commit)")
    for path, digest in {**lin.hashes, **lin.data}.items():
        h.add_row(path, digest)
    console.print(h)
    s = _table("time (UTC)", "event", "stage", "by", "tag", title="stages")
    for ev in lin.stages:
        s.add_row(when(ev["at"], seconds=False), ev["event"], ev["stage"], ev["author"], ev["tag"])
    console.print(s if lin.stages else "stages: never assigned")
    if lin.deployments:
        d = _table("environment", "deployed", title="deployments")
        for rec in lin.deployments:
            d.add_row(str(rec.get("env")), when(rec.get("at"), seconds=False))
        console.print(d)
    for note in lin.notes:
        _ui.err().print(f"[yellow]note:[/] {note}", markup=True)
    if lin.card:
        console.print(
            f"model card: {lin.card} at {lin.commit[:12]} "
            f"(`git show {lin.commit[:12]}:{lin.card}`)",
            markup=False,
        )
    console.print(f"reproduce: {lin.reproduce}", markup=False)


# ---- promote / rollback -----------------------------------------------------------------------


def _print_promotion(result: PromoteResult) -> None:
    console = _ui.err()
    if result.mode == "tag":
        was = f" (was {result.replaces})" if result.replaces else ""
        console.print(
            f"[green]{result.env}[/] now holds {result.name} {result.version}{was}: "
            f"tag {result.tag}"
        )
    else:
        console.print(
            f"[green]pushed[/] branch {result.branch} to {result.remote}: "
            f"{result.title}" + (f" (replaces {result.replaces})" if result.replaces else "")
        )
        if result.push_options is False:
            console.print(
                "[yellow]the remote does not accept push options: no merge request was opened[/]"
            )
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"next: {result.next_step}", markup=False)


def promote(
    name: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[str, typer.Argument(help="A registered version, like v1.2.0.")],
    to: Annotated[str, typer.Option("--to", help="The environment (from pipeline.yaml).")],
    push: PushOpt = False,
    remote: RemoteOpt = "origin",
    force: Annotated[
        bool, typer.Option("--force", help="Promote even a version registered as unblessed.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Promote a registered version to an environment.

    A pinned environment (`pin: deploy/<env>.yaml`) changes through a merge request: a branch
    promote/<name>-<env>-<version> with one commit updating the pin file, pushed with GitLab
    push options that open the merge request (title, target branch, and the metrics of the new
    version against the one it replaces). Your work tree is not touched. On a remote that is
    not GitLab the branch is pushed and you open the merge request yourself.

    Any other environment gets an annotated stage tag NAME#ENV#N (the counter is the next one
    on the artifact), pushed with --push: the remote's tags are fetched first, and a rejected
    push leaves no local tag behind and says to run again.

    Exit 5: unknown model, version or environment, no remote, nothing to promote.

    Example: mlops promote penguins-classifier v0.0.2 --to production
    """
    from mlops import api

    _ui.set_json(json)
    result = api.promote(".", name, version, to, push=push, remote=remote, force=force)
    if json:
        _ui.print_json(result.to_dict())
        return
    _print_promotion(result)


def rollback(
    env: Annotated[str, typer.Option("--env", help="The environment to roll back.")],
    name: Annotated[
        str | None, typer.Argument(help="The model (default: model.name in pipeline.yaml).")
    ] = None,
    push: PushOpt = False,
    remote: RemoteOpt = "origin",
    json: JsonOpt = False,
) -> None:
    """Put back the version an environment ran before its current one.

    It is promoted the way `mlops promote` would do it.
    The previous version comes from the environment's stage tags (skipping versions a rollback
    already left); for a pinned environment without them, from its pin file's history. A
    rollback is recorded as such, so rolling back twice goes two versions back.

    Example: mlops rollback --env staging --push
    """
    from mlops import api

    _ui.set_json(json)
    result = api.rollback(".", env, name, push=push, remote=remote)
    if json:
        _ui.print_json(result.to_dict())
        return
    _print_promotion(result)


# ---- deprecate / deregister -------------------------------------------------------------------


def deprecate(
    name: Annotated[str, typer.Argument(help="The model to deprecate.")],
    push: PushOpt = False,
    remote: RemoteOpt = "origin",
    message: MessageOpt = None,
    json: JsonOpt = False,
) -> None:
    """Deprecate a model (the tag NAME@deprecated).

    GTO's form: it hides the model from `gto show`.
    Its history stays; registering a new version brings it back.

    Example: mlops deprecate penguins-classifier --push
    """
    from mlops import api

    _ui.set_json(json)
    result = api.deprecate(".", name, push=push, remote=remote, message=message)
    if json:
        _ui.print_json(result.to_dict())
        return
    _ui.err().print(f"[green]deprecated[/] {name}: tag {result.tag}")


def deregister(
    name: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[str, typer.Argument(help="The version to deregister.")],
    push: PushOpt = False,
    remote: RemoteOpt = "origin",
    message: MessageOpt = None,
    json: JsonOpt = False,
) -> None:
    """Deregister a version (the tag NAME@vX.Y.Z!, GTO's form).

    The version stays in the history but is no longer active: it is not the latest, holds no
    stage, and cannot be promoted.

    Example: mlops deregister penguins-classifier v0.0.1
    """
    from mlops import api

    _ui.set_json(json)
    result = api.deregister(".", name, version, push=push, remote=remote, message=message)
    if json:
        _ui.print_json(result.to_dict())
        return
    _ui.err().print(f"[green]deregistered[/] {name} {version}: tag {result.tag}")


def register(root: typer.Typer) -> None:
    """Add these commands to the `mlops` app."""
    root.command("commit")(commit)
    root.command("register")(register_cmd)
    root.add_typer(app, name="registry")
    root.command("lineage")(lineage)
    root.command("promote")(promote)
    root.command("rollback")(rollback)
    root.command("deprecate")(deprecate)
    root.command("deregister")(deregister)
