"""The public Python API: one function per CLI verb, each returning a result object.

    >>> from mlops import api
    >>> result = api.run(".")            # like `mlops run`
    >>> result.record.metrics["accuracy"]

Functions raise `mlops.errors.MlopsError` subclasses for expected failures (each maps to an exit
code); they never print.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlops.config import Project, load_project
from mlops.pipeline.compile import compile_dvc_yaml
from mlops.pipeline.records import RunRecord, RunStore
from mlops.pipeline.runner import RunResult, StageEvent, ensure_project, prepare, run_pipeline
from mlops.pipeline.scaffold import InitResult, init_project
from mlops.pipeline.status import StageStatus, project_status


def init(directory: Path | str = ".", force: bool = False) -> InitResult:
    """Scaffold a project that runs out of the box (`mlops init`)."""
    return init_project(directory, force=force)


def check(root: Path | str = ".") -> Project:
    """Validate pipeline.yaml and params.yaml; raise `ConfigError` listing every problem."""
    return load_project(root)


def compile(root: Path | str = ".", *, write: bool = True) -> tuple[str, bool]:
    """dvc.yaml text for the project, and whether it was (re)written."""
    project = ensure_project(Path(root)) if write else load_project(root)
    if not write:
        return compile_dvc_yaml(project), False
    changed = prepare(project, project.root / ".mlops" / "logs" / "compile.log")
    return compile_dvc_yaml(project), changed


def run(
    root: Path | str = ".",
    stages: list[str] | None = None,
    *,
    force: bool = False,
    dry: bool = False,
    on_event: Callable[[StageEvent], None] | None = None,
) -> RunResult:
    """Run the pipeline (`mlops run`). A failure is in `result.error`, already recorded."""
    return run_pipeline(root, stages, force=force, dry=dry, on_event=on_event)


def status(root: Path | str = ".") -> list[StageStatus]:
    """Per stage: up to date, or why it would run (`mlops status`)."""
    return project_status(root)


def runs_list(root: Path | str = ".", limit: int | None = 20) -> list[RunRecord]:
    """Recorded runs, most recent first (`mlops runs list`)."""
    return RunStore(Path(root).resolve()).list(limit=limit)


def runs_show(root: Path | str = ".", run_id: str = "latest") -> RunRecord:
    """One recorded run by id, id prefix, or `latest` (`mlops runs show`)."""
    return RunStore(Path(root).resolve()).get(run_id)


def serve(
    root: Path | str = ".",
    *,
    env: str | None = None,
    bundle: Path | str | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_dir: Path | str | None = None,
    log: bool = True,
    max_rows: int = 10_000,
    max_body_mb: float = 16.0,
    range_margin: float = 0.0,
    poll_seconds: float = 1.0,
    on_loaded: Callable[..., None] | None = None,
) -> None:
    """Serve a model over HTTP until stopped (`mlops serve`); blocks.

    `env` follows the environment's deployment target (switching versions when its `current`
    changes); `bundle` serves one bundle directory (or a target directory, followed likewise).
    `on_loaded(info)` gets {name, version, mode, workers} once the bundle is verified (and, with
    one worker, loaded), before the port opens.
    """
    from mlops.errors import UsageError
    from mlops.serve.server import require_extra, run_server
    from mlops.serve.service import ServeConfig

    require_extra()
    config = ServeConfig(
        host=host,
        port=port,
        workers=workers,
        max_rows=max_rows,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        range_margin=range_margin,
        poll_seconds=poll_seconds,
    )
    config.bundle, config.target, default_log = resolve_serve_source(root, env, bundle)
    if log:
        config.log_dir = str(Path(log_dir).absolute() if log_dir else default_log)
        try:
            Path(config.log_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot write the prediction log to {config.log_dir}: {exc.strerror}",
                "Give a writable --log-dir DIR, or --no-log.",
            ) from None
    run_server(config, on_loaded)


def resolve_serve_source(
    root: Path | str, env: str | None, bundle: Path | str | None
) -> tuple[str | None, str | None, Path]:
    """(bundle dir, target dir, default prediction-log dir) for `--env` or `--bundle`."""
    from mlops.deploy.target import PREDICTIONS, is_target, open_target
    from mlops.errors import UsageError

    if (env is None) == (bundle is None):
        raise UsageError("give exactly one of --env ENV or --bundle PATH", "See `mlops serve -h`.")
    if env is not None:
        from mlops.config.check import load_pipeline

        envs = load_pipeline(root).environments  # a serving host needs no data or params
        if env not in envs:
            raise UsageError(
                f"unknown environment {env!r}",
                f"pipeline.yaml defines: {', '.join(envs) or 'none'} (under `environments:`).",
            )
        target = open_target(Path(root).resolve() / (envs[env].target or f".mlops/envs/{env}"))
        target.require_current()
        return None, str(target.root), target.predictions_dir
    path = Path(bundle).absolute()  # type: ignore[arg-type]
    if is_target(path):
        target = open_target(path)
        target.require_current()
        return None, str(target.root), target.predictions_dir
    if not path.is_dir():
        raise UsageError(
            f"no bundle at {path}",
            "Give a bundle directory such as models/NAME (built by `mlops run`).",
        )
    return str(path), None, Path(root).absolute() / ".mlops" / PREDICTIONS / path.name
