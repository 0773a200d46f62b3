"""`mlops engine`: where the built-in stages compute, and whether that cluster answers."""

from __future__ import annotations

import typer

from mlops.cli import _ui
from mlops.cli._options import JsonOpt


def engine(
    json: JsonOpt = False,
) -> None:
    """Show the engine pipeline.yaml names and check it: for Dask, the scheduler's address
    (pipeline.yaml `engine.scheduler`, else DASK_SCHEDULER_ADDRESS), its dashboard link, its
    workers, and that each worker runs this mlops version.

    `scheduler: local` starts (and stops) a cluster on this machine to prove it works.
    Exit code 2 when the scheduler cannot be reached or Dask is not installed.

    Example: DASK_SCHEDULER_ADDRESS=tcp://10.0.0.5:8786 mlops engine
    """
    from mlops import api

    _ui.set_json(json)
    info = api.engine(".")
    if json:
        _ui.print_json(info.to_dict())
        return
    _ui.out().print(info.line(), markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("engine")(engine)
