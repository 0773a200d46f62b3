"""`mlops.api.serve`: serve a model over HTTP (re-exported as `mlops.api.serve`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ServeSettings:
    """What `mlops serve`'s options say: what to serve (one of `env`, `bundle`, `target`), the
    server's limits, and where the prediction log goes."""

    env: str | None = None
    bundle: Path | str | None = None
    target: str | None = None
    cache_dir: Path | str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_rows: int = 10_000
    max_body_mb: float = 16.0
    range_margin: float = 0.0
    poll_seconds: float = 1.0
    read_timeout: float = 30.0
    log: bool = True
    log_dir: Path | str | None = None
    log_url: str | None = None
    host_id: str | None = None
    ship_seconds: float = 60.0


def serve(
    root: Path | str = ".",
    settings: ServeSettings | None = None,
    *,
    on_loaded: Callable[..., None] | None = None,
) -> None:
    """Serve a model over HTTP until stopped (`mlops serve`, whose options `settings` holds);
    blocks.

    `target` follows a deployment target given by URL or directory without a project (as in a
    pod): `s3://bucket/staging` is polled and its versions cached in `cache_dir` (default
    `$MLOPS_CACHE_DIR` or ~/.cache/mlops). With `env`, every version is also verified against
    the hashes git recorded for it (dvc.lock at its registration tag).

    With `log_url` (a directory or an fsspec URL such as s3://bucket/staging), the prediction
    log is spooled locally (`log_dir`, default .mlops/log-spool/<host>) and shipped there as
    columnar segments under `logs/<host_id>/` and `feedback/<host_id>/`; an object-store
    target's log is shipped to the target itself unless `log_url` says otherwise.

    `env` follows the environment's deployment target (switching versions when its `current`
    changes); `bundle` serves one bundle directory (or a target directory, followed likewise).
    `on_loaded(info)` gets {name, version, mode, workers} once the bundle is verified (and, with
    one worker, loaded), before the port opens.
    """
    from mlops.errors import UsageError
    from mlops.serve.launch import ServeOptions, serve_config
    from mlops.serve.server import require_extra, run_server

    s = settings or ServeSettings()
    require_extra()
    options = ServeOptions(**{f: getattr(s, f) for f in ServeOptions.__dataclass_fields__})
    config, default_log = serve_config(
        root, options, env=s.env, bundle=s.bundle, target=s.target, cache_dir=s.cache_dir
    )
    log, log_url = s.log, s.log_url
    if log and log_url is None and "://" in (config.target or ""):
        log_url = config.target  # an object-store target: its logs go back to it
    if log and log_url:
        from mlops.monitor.segments import check_url
        from mlops.serve.segments import host_id as resolve_host

        config.host_id = resolve_host(s.host_id)
        config.log_url = check_url(log_url)
        config.ship_seconds = s.ship_seconds
        default_log = Path(root).absolute() / ".mlops" / "log-spool" / config.host_id
    if log:
        config.log_dir = str(Path(s.log_dir).absolute() if s.log_dir else default_log)
        try:
            Path(config.log_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot write the prediction log to {config.log_dir}: {exc.strerror}",
                "Give a writable --log-dir DIR, or --no-log.",
            ) from None
    run_server(config, on_loaded)


def serve_trusted_types(root: Path | str) -> list[str]:
    """The project's `model.trusted_types` when `root` has a pipeline.yaml, else none."""
    from mlops.serve.launch import trusted_types

    return trusted_types(root)
