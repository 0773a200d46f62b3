"""`mlops serve`: the prediction service."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlops.cli import _ui


def serve(
    env: Annotated[
        str | None,
        typer.Option(
            "--env", "-e", metavar="ENV", help="Serve this environment; follow its deployments."
        ),
    ] = None,
    bundle: Annotated[
        str | None,
        typer.Option(
            "--bundle",
            "-b",
            metavar="PATH",
            help="Serve this bundle directory (or deployment target directory).",
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            metavar="URL",
            help="Follow this deployment target (s3://bucket/prefix, or a directory); no "
            "pipeline.yaml needed (as in a pod: the project's trusted types and own model code "
            "are then read from $MLOPS_PROJECT_DIR, the serving image's /opt/project).",
        ),
    ] = None,
    cache_dir: Annotated[
        str | None,
        typer.Option(
            "--cache-dir",
            metavar="DIR",
            help="Local copies of an object-store target's versions (default: "
            "$MLOPS_CACHE_DIR, else ~/.cache/mlops); workers of one server share it.",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDR", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", metavar="PORT", help="Port to listen on.")
    ] = 8080,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker processes.")] = 1,
    log_dir: Annotated[
        str | None,
        typer.Option(
            "--log-dir",
            metavar="DIR",
            help="Prediction log directory (default: <target>/predictions, or "
            ".mlops/predictions/<bundle> with --bundle; with --log-url or an object-store "
            "target, the local spool .mlops/log-spool/<host>).",
        ),
    ] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not log predictions.")] = False,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Rows per request; more is refused (413).")
    ] = 10_000,
    max_body_mb: Annotated[
        float,
        typer.Option("--max-body-mb", min=0.001, help="Request body limit in MiB (413 above)."),
    ] = 16.0,
    range_margin: Annotated[
        float,
        typer.Option(
            "--range-margin",
            min=0.0,
            help="Accept numbers this fraction of the training range beyond its min and max.",
        ),
    ] = 0.0,
    poll: Annotated[
        float,
        typer.Option("--poll", min=0.05, help="Seconds between checks for a new deployment."),
    ] = 1.0,
    read_timeout: Annotated[
        float,
        typer.Option(
            "--read-timeout",
            min=0.1,
            help="Seconds a client has to send a request's headers, then its body (408 after).",
        ),
    ] = 30.0,
    log_url: Annotated[
        str | None,
        typer.Option(
            "--log-url",
            metavar="URL",
            help="Ship the prediction log to this storage (a directory, s3://bucket/prefix, ...) "
            "as columnar segments under logs/<host>/ and feedback/<host>/, where "
            "`mlops monitor --log-url` reads every host's; --log-dir is then the local spool. "
            "Default: an object-store target's own URL.",
        ),
    ] = None,
    ship_seconds: Annotated[
        float,
        typer.Option(
            "--ship-seconds",
            min=1.0,
            help="With --log-url: close and ship the spooled log at least this often.",
        ),
    ] = 60.0,
    host_id: Annotated[
        str | None,
        typer.Option(
            "--host-id",
            metavar="ID",
            help="This server's name in the shipped log (default: $MLOPS_HOST_ID, else the "
            "host name).",
        ),
    ] = None,
) -> None:
    """Serve predictions over HTTP; switch versions when the environment is redeployed.

    POST /invocations takes MLflow's payloads (dataframe_split, dataframe_records, instances,
    inputs, or text/csv); POST /predict takes a list of records. Inputs are checked against the
    bundle's schema (422 listing every problem). GET /health, /ready, /version and /metrics
    (Prometheus); POST /feedback attaches a true label to a request id. Every prediction is
    logged for monitoring. With --env or --target, a new deployment is loaded and verified
    beside the current version, then switched to without dropping a request. A version
    pinning project code other than what the server imported is not switched to: /ready says
    to restart.

    Example: mlops serve --env production --port 8080

    Example (a pod): mlops serve --target s3://models/production --host 0.0.0.0
    """
    from mlops import api

    def loaded(info: dict[str, Any]) -> None:
        workers = f", {info['workers']} workers" if info["workers"] > 1 else ""
        _ui.err().print(
            f"serving [bold]{info['name']}[/] {info['version']} ({info['mode']}{workers}) on "
            f"http://{host}:{port}  (Ctrl-C to stop)",
            highlight=False,
        )

    settings = api.ServeSettings(
        env=env,
        bundle=bundle,
        target=target,
        cache_dir=cache_dir,
        host=host,
        port=port,
        workers=workers,
        log_dir=log_dir,
        log=not no_log,
        max_rows=max_rows,
        max_body_mb=max_body_mb,
        range_margin=range_margin,
        poll_seconds=poll,
        read_timeout=read_timeout,
        log_url=log_url,
        host_id=host_id,
        ship_seconds=ship_seconds,
    )
    api.serve(".", settings, on_loaded=loaded)


def register(app: typer.Typer) -> None:
    """Add `mlops serve` to the app."""
    app.command("serve")(serve)
