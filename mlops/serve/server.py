"""Running the service under uvicorn (one process, or several workers)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.bundle import MODEL_FILE, BundleError, check_model_file, verify_bundle
from mlops.errors import UsageError
from mlops.serve import multiproc
from mlops.serve.service import CONFIG_ENV, ServeConfig, Service


def require_extra() -> None:
    """Raise a `UsageError` with the install command when FastAPI or uvicorn is missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"`mlops serve` needs the serve extra ({exc.name or 'fastapi/uvicorn'} is not "
            "installed)",
            "Install the `serve` extra the way mlops was installed (in a checkout: "
            "pip install -e '.[serve]'), or: pip install fastapi uvicorn orjson httptools",
        ) from None


def _require_prometheus() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise UsageError(
            "`mlops serve --workers N` needs prometheus-client (to sum the workers' metrics)",
            "Install the `serve` extra the way mlops was installed (in a checkout: "
            "pip install -e '.[serve]'), or: pip install prometheus-client",
        ) from None


def uvicorn_options(config: ServeConfig) -> dict[str, Any]:
    """uvicorn settings: the fastest HTTP parser and event loop installed, no access log, and
    a deadline for a request's headers (`mlops.serve.httpdeadline`) when httptools is there."""
    from mlops.serve.httpdeadline import protocol

    http = protocol(config.read_timeout)
    return {
        **({"http": http} if http else {}),
        "host": config.host,
        "port": config.port,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
    }


def run_server(config: ServeConfig, on_ready: Callable[[dict], None] | None = None) -> None:
    """Check what is to be served (failing before the port opens if it is not valid), then serve.

    `on_ready` gets {name, version, mode, workers} once that check passed. With one worker the
    model is loaded here; with several, each worker loads it and this process only verifies it.
    """
    require_extra()
    import uvicorn

    from mlops.serve.app import create_app

    service = Service(config)
    if config.workers > 1:
        _require_prometheus()
        info = preflight(config)
        if on_ready is not None:
            on_ready({**info, "mode": "per worker", "workers": config.workers})
        os.environ[CONFIG_ENV] = config.to_json()
        shared, made = multiproc.prepare_dir()  # metrics summed over the workers
        os.environ[multiproc.ENV] = shared
        try:
            uvicorn.run(
                "mlops.serve.app:app_from_env",
                factory=True,
                workers=config.workers,
                **uvicorn_options(config),
            )
        finally:
            if made:
                multiproc.remove_dir(shared)
        return
    model = service.load_initial()  # verify and load now: errors surface as MlopsError
    if on_ready is not None:
        on_ready(
            {
                "name": model.name if model else "nothing yet",
                "version": model.version if model else "(waiting for a deployment)",
                "mode": model.predictor.mode if model else "-",
                "workers": 1,
            }
        )
    uvicorn.run(create_app(service), **uvicorn_options(config))


def preflight(config: ServeConfig) -> dict:
    """Verify the bundle to serve (hashes, the model's types, input schema) without loading
    the model."""
    from mlops.deploy.target import DEPLOYMENT, read_deployment
    from mlops.serve.service import source_path

    path = source_path(config)
    if path is None:  # a followed target with nothing deployed yet: start anyway
        return {"name": "nothing yet", "version": "(waiting for a deployment)"}
    meta = verify_bundle(path, extra_files=(DEPLOYMENT,))
    check_model_file(path / MODEL_FILE, config.trusted_types)  # each worker would refuse it
    from mlops.bundle.codepin import verify_code

    verify_code(meta.get("code"), Path(config.code_root) if config.code_root else None, path)
    if not (path / "schema.json").is_file():
        raise BundleError(
            f"bundle {path} has no input schema (schema.json)",
            "Rebuild the bundle with `mlops run`: the train stage writes the schema.",
        )
    deployment = read_deployment(path) or {}
    return {
        "name": deployment.get("name") or meta.get("name") or path.name,
        "version": deployment.get("version") or meta.get("version") or "unversioned",
    }
