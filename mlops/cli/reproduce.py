"""`mlops reproduce NAME@vX.Y.Z`: rebuild a registered version and check it byte for byte."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops.cli import _ui
from mlops.cli._options import JsonOpt


def reproduce(
    spec: Annotated[str, typer.Argument(help="NAME@vX.Y.Z", metavar="NAME@VERSION")],
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the scratch work tree (its path is printed).")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Rebuild a registered version from scratch and compare every output with dvc.lock.

    Checks out the version's commit in a scratch work tree (under .mlops/reproduce/, sharing
    git objects and the DVC cache), recomputes every stage with DVC's force (the run cache
    restores nothing), then compares the hash of every output with the one dvc.lock recorded
    at the tag. Outputs that differ are listed with the files that differ and why, where that
    is known (for example another scikit-learn version). Byte identity is promised for the
    same platform, Python and library versions.

    Exit codes: 0 every output identical; 6 an output differs (an artifact failed
    verification); 5 unknown version or no dvc.lock at its commit; 3, 4, 8 a stage failed.

    Example: mlops reproduce penguins-classifier@v0.0.1
    """
    from mlops import api

    _ui.set_json(json)
    result = api.reproduce(".", spec, keep=keep)
    error = result.error()
    if json:
        _ui.print_json(result.to_dict())
        if error is not None:
            raise typer.Exit(int(error.exit_code))
        return
    console = _ui.out()
    ran = ", ".join(f"{s['name']} {_ui.fmt_seconds(s['seconds'])}" for s in result.stages)
    console.print(
        f"rebuilt {result.name} {result.version} at {result.commit[:12]} in "
        f"{_ui.fmt_seconds(result.seconds)}: {ran}",
        markup=False,
    )
    t = _ui.table("output", "stage", "recorded", "rebuilt", "result")
    for o in result.outputs:
        t.add_row(
            o.path,
            o.stage,
            (o.recorded or "-")[:12],
            (o.rebuilt or "-")[:12],
            "[green]identical[/]" if o.same else "[red]DIFFERS[/]",
        )
    console.print(t)
    for o in result.differing:
        for f in o.files:
            console.print(f"  {o.path}/{f}: differs", markup=False)
        for why in o.why:
            console.print(f"  {o.path}: {why}", markup=False)
    if result.kept:
        console.print(f"scratch work tree kept: {result.kept}", markup=False)
    if error is not None:
        raise error
    console.print(
        f"[green]identical[/]: all {len(result.outputs)} outputs have the hashes dvc.lock "
        f"records at {result.tag or result.commit[:12]}"
    )


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce)
