"""The `mlops` command line: a thin layer over `mlops.api`, and where errors become exit codes.

Heavy packages (pandas, scikit-learn, DVC, FastAPI) are imported only by the commands that need
them, through `mlops.api` inside the command body, so `mlops --help` starts fast.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mlops import __version__
from mlops.adapters import lock
from mlops.cli import _params, _ui  # _params: start-up cost of a command
from mlops.errors import ExitCode, MlopsError


class MlopsGroup(TyperGroup):
    """Maps `MlopsError` to its exit code and message; anything else is exit 1 with a hint.

    `--traceback` prints the traceback as well and keeps the exit code. A file mlops may not
    write (read-only `.mlops/`, a read-only file system) is exit 5 with a hint, not 1.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except MlopsError as exc:
            _ui.print_traceback(exc)
            _ui.render_error(exc)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            _ui.err().print("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if type(exc).__module__.startswith(("typer", "click")):
                raise  # typer's own control flow (usage errors, exit, abort)
            _ui.print_traceback(exc)
            unwritable = _ui.unwritable(exc)
            if unwritable is not None:
                _ui.render_error(unwritable)
                raise typer.Exit(int(unwritable.exit_code)) from None
            _ui.render_unexpected(exc)
            raise typer.Exit(int(ExitCode.UNEXPECTED)) from None


app = typer.Typer(
    cls=MlopsGroup,
    name="mlops",
    help=(
        "GitOps CI/CD for machine-learning models: pipeline.yaml on DVC, a git-tag model registry, "
        "GitLab merge requests and deployments.\n\nExample: mlops init demo && cd demo && mlops run"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    directory: Annotated[
        str | None,
        typer.Option(
            "-C", "--directory", help="Run as if started in this directory.", metavar="DIR"
        ),
    ] = None,
    traceback: Annotated[
        bool,
        typer.Option(
            "--traceback",
            help="Also show the full traceback of an error (the exit code stays the error's).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    _ui.set_traceback(traceback)
    _ui.set_json(False)
    lock.set_reporter(lambda text: _ui.err().print(text, markup=False))
    if directory:
        try:
            os.chdir(directory)
        except OSError as exc:
            raise typer.BadParameter(f"cannot enter {directory}: {exc.strerror}") from None


def _register() -> None:
    from mlops.cli import engine, exp, project, registry, run, runs, serve, validate

    project.register(app)
    run.register(app)
    app.add_typer(runs.app, name="runs")
    app.add_typer(exp.app, name="exp")
    registry.register(app)
    serve.register(app)
    validate.register(app)
    engine.register(app)
    from mlops.cli import deploy, report  # deployments, merge-request reports

    deploy.register(app)
    from mlops.cli import manifests  # Kubernetes manifests for GitOps

    manifests.register(app)
    report.register(app)
    from mlops.cli import monitor  # drift, decay and health of live traffic

    monitor.register(app)
    from mlops.cli import canary  # canary and shadow releases

    canary.register(app)
    from mlops.cli import watch  # retrain on new data

    watch.register(app)
    from mlops.cli import reproduce  # rebuild a version and check it byte for byte

    reproduce.register(app)
    from mlops.cli import runner  # the warm runner for built-in stages

    runner.register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = argv if argv is not None else sys.argv[1:]
    with _params.only_command(app, args):  # build only the command that runs (start-up time)
        app(args=args, prog_name="mlops")
