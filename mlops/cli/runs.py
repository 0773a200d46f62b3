"""`mlops runs list` and `mlops runs show`: the run records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from mlops.api import RunRecord

from mlops.cli import _ui
from mlops.cli._options import JsonOpt, RemoteOpt
from mlops.rendering import when

app = typer.Typer(
    help="Read the run records.\n\nEach run records what ran, on which commit, data and params, "
    "with which result.\n\n"
    "Example: mlops runs list --limit 5",
    no_args_is_help=True,
)


def _overrides(r: RunRecord) -> str:
    return ", ".join(f"{k}={v}" for k, v in (r.extra.get("overrides") or {}).items())


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs, newest first.")] = 20,
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            "-w",
            help="Filter: comparisons on metrics.*, params.*, kind, outcome, ... joined by "
            "and/or, e.g. 'metrics.accuracy > 0.9 and params.train.C < 1'.",
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option("--sort", "-s", help="Sort by a field, e.g. metrics.accuracy (ascending)."),
    ] = None,
    desc: Annotated[bool, typer.Option("--desc", help="Sort descending (best first).")] = False,
    json: JsonOpt = False,
) -> None:
    """List recorded runs and experiments, newest first, or filtered and sorted.

    Filters compare fields of a run record: metrics.NAME, params.SECTION.KEY, kind (run or
    exp), outcome, git_branch, duration, extra.overrides.KEY. Join comparisons with and/or
    (&&, ||), negate with not, group with parentheses; `~` tests that text contains a word.
    Runs without the sort field come last. A `*` after the commit: uncommitted changes.

    Example: mlops runs list -w 'metrics.accuracy > 0.9 or kind == exp' -s metrics.accuracy --desc
    """
    from mlops import api

    _ui.set_json(json)
    records = api.runs_list(".", limit=limit, where=where, sort=sort, descending=desc)
    if json:
        _ui.print_json([r.to_dict() for r in records])
        return
    if not records:
        _ui.err().print(
            f"no runs match `{where}`"
            if where
            else "no runs recorded yet: `mlops run` records one (`git fetch` or `mlops runs pull` "
            "brings CI's and teammates' records)"
        )
        return
    t = _ui.table("run", "outcome", "commit", "what", "metrics")
    t.columns[0].no_wrap = True  # the id also says when the run started
    t.columns[2].no_wrap = True
    sort_metric = sort.split(".", 1)[1] if sort and sort.startswith("metrics.") else None
    for r in records:
        commit = (r.git_commit or "-")[:7] + ("*" if r.git_dirty else "")
        keys = list(r.metrics)
        if sort_metric in r.metrics:
            keys.remove(sort_metric)
            keys.insert(0, sort_metric)
        metrics = "\n".join(f"{k}={_ui.fmt_value(r.metrics[k])}" for k in keys[:2])
        bad = "fail" in r.outcome or r.outcome == "breach"
        style = "green" if r.outcome == "ok" else "red" if bad else ""
        if r.kind == "exp":
            what = "exp " + ("\n".join(f"{k}={v}" for k, v in r.extra.get("overrides", {}).items()))
        elif r.kind in ("monitor", "rollback"):  # no stages: the record's message says it
            what = f"{r.kind}: {r.message[:120]}"
        else:
            ran = [s["name"] for s in r.stages if s.get("status") == "ran"]
            what = f"{r.kind}: " + (f"ran {', '.join(ran)}" if ran else "nothing ran")
        t.add_row(
            r.id,
            f"[{style}]{r.outcome}[/]" if style else r.outcome,
            commit,
            what,
            metrics,
        )
    _ui.out().print(t)


@app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="First run: id, unique prefix, or `latest`.")],
    b: Annotated[str, typer.Argument(help="Second run: id, unique prefix, or `latest`.")],
    all_params: Annotated[
        bool, typer.Option("--all", help="Show every param, not only those that differ.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Show two runs' params and metrics side by side (B - A for numbers).

    Example: mlops runs diff 20261122-101502 latest
    """
    from mlops import api

    _ui.set_json(json)
    d = api.runs_diff(".", a, b, all_params=all_params)
    if json:
        _ui.print_json(d.to_dict())
        return
    console = _ui.out()
    s = _ui.table("", d.a, d.b, title=f"runs {d.a} and {d.b}")
    for row in d.summary:
        s.add_row(row.key, str(row.a or "-"), str(row.b or "-"))
    console.print(s)
    p = _ui.table(
        "param", d.a, d.b, "change", title="params" + ("" if all_params else " (differing)")
    )
    for row in d.params:
        change = (
            f"{row.delta:+.4g}" if row.delta is not None else ("changed" if row.changed else "")
        )
        p.add_row(row.key, _ui.fmt_value(row.a), _ui.fmt_value(row.b), change)
    if not d.params:
        p.add_row("(no difference)", "", "", "")
    console.print(p)
    m = _ui.table("metric", d.a, d.b, "B - A", title="metrics")
    for row in d.metrics:
        delta = f"{row.delta:+.4g}" if row.delta is not None else ""
        style = "" if not row.delta else "green" if row.delta > 0 else "red"
        m.add_row(
            row.key,
            _ui.fmt_value(row.a),
            _ui.fmt_value(row.b),
            f"[{style}]{delta}[/]" if style else delta,
        )
    console.print(m)


@app.command("show")
def show(
    run_id: Annotated[
        str, typer.Argument(help="Run id, a unique prefix of one, or `latest`.")
    ] = "latest",
    json: JsonOpt = False,
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
    console.print(f"started {when(r.started)}, took {_ui.fmt_seconds(r.duration)}")
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
    if r.kind == "exp" and r.extra.get("overrides"):
        console.print(f"experiment: {_overrides(r)}", markup=False)
    if r.metrics:
        m = _ui.table("metric", "value", title="metrics")
        for k, v in r.metrics.items():
            m.add_row(k, _ui.fmt_value(v))
        console.print(m)
    slices = r.extra.get("slices") or []
    if slices:
        first = next(iter(slices[0]["metrics"]), None)
        sl = _ui.table("slice", "rows", first or "", title="slices (`--json` for every metric)")
        for e in slices:
            sl.add_row(e["name"], str(e["rows"]), _ui.fmt_value(e["metrics"].get(first)))
        console.print(sl)
    tuning = r.extra.get("tuning")
    if tuning:
        console.print(
            f"tuning: {tuning['method']} search, best {tuning['best_params']} "
            f"({tuning['scoring']} {tuning['best_score']:.4g}, {tuning['candidates']} candidates)",
            markup=False,
        )
    h = _ui.table("path", "md5", title="data and outputs (from dvc.lock)")
    for path, digest in {**r.deps, **r.outs}.items():
        h.add_row(path, digest)
    console.print(h)


@app.command("push")
def push(
    remote: RemoteOpt = "origin",
    json: JsonOpt = False,
) -> None:
    """Push the run records to a git remote (refs/mlops/records/*, one ref per record).

    Records are immutable and each has its own ref, so pushes from several places at once never
    conflict. CI jobs push theirs; teammates get them with `git fetch`.

    Example: mlops runs push --remote origin
    """
    from mlops import api

    _ui.set_json(json)
    count = api.runs_push(".", remote)
    if json:
        _ui.print_json({"remote": remote, "records": count})
        return
    _ui.out().print(f"{count} run record(s) on {remote}" if count else "no run records to push")


@app.command("pull")
def pull(
    remote: RemoteOpt = "origin",
    json: JsonOpt = False,
) -> None:
    """Fetch the run records of CI and teammates from a git remote.

    Also configures the remote so that a plain `git fetch` brings them from then on.

    Example: mlops runs pull
    """
    from mlops import api

    _ui.set_json(json)
    count = api.runs_pull(".", remote)
    if json:
        _ui.print_json({"remote": remote, "new": count})
        return
    _ui.out().print(f"{count} new run record(s) from {remote}")
