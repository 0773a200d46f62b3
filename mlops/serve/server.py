"""Running the service under uvicorn (one process, or several workers)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from mlops.errors import UsageError
from mlops.serve.service import CONFIG_ENV, LoadedModel, ServeConfig, Service


def require_extra() -> None:
    """Raise a `UsageError` with the install command when FastAPI or uvicorn is missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"`mlops serve` needs the serve extra ({exc.name or 'fastapi/uvicorn'} is not "
            "installed)",
            "Install it: pip install 'mlops[serve]'",
        ) from None


def uvicorn_options(config: ServeConfig) -> dict[str, Any]:
    """uvicorn settings: the fastest HTTP parser and event loop installed, no access log."""
    return {
        "host": config.host,
        "port": config.port,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
    }


def run_server(config: ServeConfig, on_ready: Callable[[LoadedModel], None] | None = None) -> None:
    """Load the model (failing before the port opens if it is not valid), then serve."""
    require_extra()
    import uvicorn

    from mlops.serve.app import create_app

    service = Service(config)
    model = service.load_initial()  # verify and load now: errors surface as MlopsError
    if on_ready is not None:
        on_ready(model)
    if config.workers > 1:
        os.environ[CONFIG_ENV] = config.to_json()
        uvicorn.run(
            "mlops.serve.app:app_from_env",
            factory=True,
            workers=config.workers,
            **uvicorn_options(config),
        )
        return
    uvicorn.run(create_app(service), **uvicorn_options(config))
