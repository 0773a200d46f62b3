"""`mlops.api.serve`: serve a model over HTTP (re-exported as `mlops.api.serve`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


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
    read_timeout: float = 30.0,
    log_url: str | None = None,
    host_id: str | None = None,
    ship_seconds: float = 60.0,
    target: str | None = None,
    cache_dir: Path | str | None = None,
) -> None:
    """Serve a model over HTTP until stopped (`mlops serve`); blocks.

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

    require_extra()
    options = ServeOptions(
        host, port, workers, max_rows, max_body_mb, range_margin, poll_seconds, read_timeout
    )
    config, default_log = serve_config(
        root, options, env=env, bundle=bundle, target=target, cache_dir=cache_dir
    )
    if log and log_url is None and "://" in (config.target or ""):
        log_url = config.target  # an object-store target: its logs go back to it
    if log and log_url:
        from mlops.monitor.segments import check_url
        from mlops.serve.segments import host_id as resolve_host

        config.host_id = resolve_host(host_id)
        config.log_url = check_url(log_url)
        config.ship_seconds = ship_seconds
        default_log = Path(root).absolute() / ".mlops" / "log-spool" / config.host_id
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


def serve_trusted_types(root: Path | str) -> list[str]:
    """The project's `model.trusted_types` when `root` has a pipeline.yaml, else none."""
    from mlops.serve.launch import trusted_types

    return trusted_types(root)
