"""`mlops init`, `mlops check`, `mlops compile`, `mlops status`."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops.cli import _ui
from mlops.cli._options import JsonOpt


def init(
    directory: Annotated[str, typer.Argument(help="Where to create the project.")] = ".",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Your own table (.csv or .parquet) to build the project on."),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="With --data: the column to predict.")
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task", help="With --data: classification or regression (default: inferred)."
        ),
    ] = None,
    time: Annotated[
        str | None,
        typer.Option("--time", help="With --data: a date/time column (kept out of the features)."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Create a project that runs out of the box.

    Sets up git (if needed), DVC with a local default remote (.mlops/remote, git-ignored),
    pipeline.yaml, params.yaml, .gitlab-ci.yml, a data contract and a real sample dataset
    (Palmer Penguins). Refuses to overwrite existing files unless --force.

    With --data FILE --target COL the project is built on your table instead: ingest reads it,
    data/schema.yaml is inferred from it, identifier and time columns are excluded from the
    features, the task is inferred (or --task), and the gate asks the model to beat a dummy
    model (the most frequent class, or the mean) by a stated margin and not to be worse than
    production (docs/howto.md, "Start from your own data").

    Example: mlops init weather --data ~/weather.csv --target rain --time date
    """
    from mlops import api

    _ui.set_json(json)
    if data is None and (target or task or time):
        from mlops.errors import UsageError

        raise UsageError(
            "--target, --task and --time describe a table given with --data",
            "Example: mlops init my-project --data data.csv --target label",
        )
    if data is not None:
        if not target:
            from mlops.errors import UsageError

            raise UsageError(
                "--data needs --target: the column to predict",
                f"Example: mlops init {directory} --data {data} --target label",
            )
        result = api.init_from_data(directory, data, target, task=task, time=time, force=force)
    else:
        result = api.init(directory, force=force)
    if json:
        _ui.print_json(result.to_dict())
        return
    console = _ui.err()
    console.print(f"[green]Created a project in[/] {result.root}")
    for path in result.written:
        console.print(f"  wrote {path}")
    if result.git_initialised:
        console.print("  initialised a git repository")
    if result.dvc_initialised:
        console.print("  initialised DVC (default remote: .mlops/remote)")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", markup=True)
    console.print("Next: [bold]mlops run[/], then `git add -A && git commit -m 'Start project'`.")
    if data is not None:
        console.print("Review data/schema.yaml (the data contract) and the gate in pipeline.yaml.")


def check(json: JsonOpt = False) -> None:
    """Check pipeline.yaml and params.yaml; report every problem.

    Checks keys and types (unknown keys are errors), that every dependency exists or is produced
    by a stage, that outputs stay inside the repository and are written by one stage only, that
    params keys exist, and that stages form no cycle. When the ingest source is a file that
    exists, its header is checked too: every column pipeline.yaml names (target, sensitive,
    slices, exclude, span) must be in it; gate metrics must be metrics of the task and the
    estimator must fit it (`mlops run` checks the same right after ingest, before training).
    Exit 2 on any problem; nothing is written. Every key: docs/config.md (or `mlops schema`).

    Example: mlops check --json
    """
    from mlops import api

    _ui.set_json(json)
    project = api.check(".", data=True)
    if json:
        _ui.print_json(
            {"ok": True, "stages": list(project.stages), "model": project.pipeline.model.name}
        )
        return
    _ui.err().print(
        f"[green]ok[/]: pipeline.yaml and params.yaml are valid "
        f"({len(project.stages)} stages: {', '.join(project.stages)})"
    )


def compile_(
    show: Annotated[
        bool, typer.Option("--show", help="Print dvc.yaml instead of writing it.")
    ] = False,
) -> None:
    """Compile pipeline.yaml into dvc.yaml.

    Every `mlops run` does this too. dvc.yaml carries a "generated - do not edit" header
    and declares the model in its `artifacts:` section, so `dvc repro`, `dvc dag`,
    `dvc status` and GTO work on it.

    Example: mlops compile --show
    """
    from mlops import api

    text, changed = api.compile(".", write=not show)
    if show:
        typer.echo(text, nl=False)
        return
    _ui.err().print("wrote dvc.yaml" if changed else "dvc.yaml is up to date")


def status(json: JsonOpt = False) -> None:
    """Show which stages would run, and why.

    For each stage: up to date, or the dependency, param (with old and new value), command or
    output that changed, or the upstream stage that needs a rerun.

    Example: mlops status
    """
    from mlops import api

    _ui.set_json(json)
    stages = api.status(".")
    if json:
        _ui.print_json([s.to_dict() for s in stages])
        return
    t = _ui.table("stage", "state", "why")
    styles = {"up to date": "green", "changed": "yellow", "upstream changed": "yellow"}
    for s in stages:
        style = styles.get(s.state, "red")
        t.add_row(s.name, f"[{style}]{s.state}[/]", "; ".join(s.reasons) or "-")
    _ui.out().print(t)


def schema(
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of pipeline.yaml, for editors.

    With the YAML language server (VS Code's YAML extension, Neovim, ...), save it and put
    `# yaml-language-server: $schema=pipeline.schema.json` on the first line of pipeline.yaml:
    the editor then completes keys, shows their meaning and marks unknown ones, including each
    built-in stage's `with:` keys. The same reference as a page: docs/config.md.

    Example: mlops schema -o pipeline.schema.json
    """
    import json as json_

    from mlops import api

    text = json_.dumps(api.config_schema(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    api.save_text(output, text)
    _ui.err().print(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("check")(check)
    app.command("compile")(compile_)
    app.command("status")(status)
    app.command("schema")(schema)
