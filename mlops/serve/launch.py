"""What `mlops serve` serves: a deployment target (URL or directory), an environment's target,
or one bundle directory, resolved into a `ServeConfig` before the server starts.

`mlops.api.serve` adds the prediction-log settings (which need the monitor's URL check) and
starts the server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlops.errors import UsageError
from mlops.serve.service import ServeConfig


@dataclass
class ServeOptions:
    """The server's own settings (`mlops serve` options), independent of what it serves."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_rows: int = 10_000
    max_body_mb: float = 16.0
    range_margin: float = 0.0
    poll_seconds: float = 1.0
    read_timeout: float = 30.0


def serve_config(
    root: Path | str,
    options: ServeOptions,
    *,
    env: str | None = None,
    bundle: Path | str | None = None,
    target: str | None = None,
    cache_dir: Path | str | None = None,
) -> tuple[ServeConfig, Path]:
    """(the server's config, the default prediction-log directory) for exactly one of `target`
    (a URL or directory, no project needed), `env` (verified against git) or `bundle`."""
    config = ServeConfig(
        host=options.host,
        port=options.port,
        workers=options.workers,
        max_rows=options.max_rows,
        max_body_bytes=int(options.max_body_mb * 1024 * 1024),
        range_margin=options.range_margin,
        poll_seconds=options.poll_seconds,
        read_timeout=options.read_timeout,
    )
    if target is not None:
        if env is not None or bundle is not None:
            raise UsageError(
                "give exactly one of --env ENV, --target URL or --bundle PATH",
                "See `mlops serve -h`.",
            )
        config.target, default_log = resolve_target(target, cache_dir)
        if "://" in config.target:  # the workers of this server share one cache
            config.cache_dir = str(default_log.parent.absolute())
    else:
        config.bundle, config.target, default_log = resolve_source(root, env, bundle)
    config.env = env
    if env is not None:  # a checkout: verify versions against what git recorded
        from mlops.config.check import load_pipeline

        pipeline = load_pipeline(root)
        config.git_root = str(Path(root).resolve())
        config.model_name, config.model_path = pipeline.model.name, pipeline.model.path
        if "://" in (config.target or ""):
            from mlops.serve.follow import default_cache

            cache = Path(cache_dir) if cache_dir else default_cache(config.target or "")
            config.cache_dir, default_log = str(cache.absolute()), cache / "predictions"
    project = project_dir(root)
    config.trusted_types = trusted_types(project)
    if (Path(project) / "pipeline.yaml").is_file():  # the project's own code, pinned by bundles
        config.code_root = str(Path(project).resolve())
    return config, default_log


PROJECT_DIR_ENV = "MLOPS_PROJECT_DIR"


def project_dir(root: Path | str) -> Path:
    """Where the project's pipeline.yaml and own model code are: `root` when it holds a
    pipeline.yaml, else `$MLOPS_PROJECT_DIR` (the serving image's /opt/project, exported at the
    image's commit by `mlops.bundle.imagecode`), else `root`."""
    if (Path(root) / "pipeline.yaml").is_file():
        return Path(root)
    import os

    given = os.environ.get(PROJECT_DIR_ENV)
    if not given:
        return Path(root)
    if not (Path(given) / "pipeline.yaml").is_file():
        raise UsageError(
            f"${PROJECT_DIR_ENV} is {given}, which holds no pipeline.yaml",
            "Point it at the project code the serving image exported (/opt/project), or unset "
            "it to serve bundles that pin no project code.",
        )
    return Path(given)


def trusted_types(root: Path | str) -> list[str]:
    """The project's `model.trusted_types` when `root` has a pipeline.yaml, else none."""
    if not (Path(root) / "pipeline.yaml").is_file():
        return []
    from mlops.config.check import load_pipeline

    return list(load_pipeline(root).model.trusted_types)


def resolve_target(target: str, cache_dir: Path | str | None) -> tuple[str, Path]:
    """(target, default prediction-log dir) for `mlops serve --target URL|DIR`."""
    from mlops.deploy.remote import RemoteTarget, open_any

    found = open_any(target, where="--target")
    if isinstance(found, RemoteTarget):
        from mlops.serve.follow import default_cache

        cache = Path(cache_dir) if cache_dir else default_cache(target)
        return target, cache / "predictions"
    if not found.root.is_dir():
        raise UsageError(
            f"--target {target}: no deployment target directory there",
            "Give the directory `mlops deploy` installs into, or an s3:// URL.",
        )
    return str(found.root), found.predictions_dir


def resolve_source(
    root: Path | str, env: str | None, bundle: Path | str | None
) -> tuple[str | None, str | None, Path]:
    """(bundle dir, target dir, default prediction-log dir) for `--env` or `--bundle`."""
    from mlops.deploy.target import PREDICTIONS, Target, is_target, open_target

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
        spec_target = envs[env].target or f".mlops/envs/{env}"
        if "://" in spec_target:  # object storage: followed into a local cache
            from mlops.deploy.remote import open_any

            open_any(spec_target, where=f"environments.{env}.target")
            return None, spec_target, Path(root).resolve() / ".mlops" / PREDICTIONS / env
        # nothing deployed yet (even no directory): the server starts, /ready answers 503
        # until `mlops deploy --env ENV` writes `current`, then it switches to it
        found = Target((Path(root).resolve() / spec_target).absolute())
        return None, str(found.root), found.predictions_dir
    assert bundle is not None  # exactly one of env and bundle was given
    path = Path(bundle).absolute()
    if is_target(path):
        found = open_target(path)
        found.require_current()
        return None, str(found.root), found.predictions_dir
    if not path.is_dir():
        raise UsageError(
            f"no bundle at {path}",
            "Give a bundle directory such as models/NAME (built by `mlops run`).",
        )
    return str(path), None, Path(root).absolute() / ".mlops" / PREDICTIONS / path.name
