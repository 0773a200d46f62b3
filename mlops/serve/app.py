"""The ASGI application: a lean route for predictions in front of a FastAPI app for the rest.

`/invocations`, `/predict`, `/health` and `/ping` are answered by `ServingApp` directly (no
routing table, no middleware, no pydantic; orjson in and out). Everything else — `/ready`,
`/version`, `/metrics`, `/feedback`, the OpenAPI docs — is a FastAPI app built by `create_app`,
whose lifespan hook loads the model, starts the prediction log and the version watcher.
(No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations.)
"""

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from mlops import __version__
from mlops.bundle.inputs import RequestError, dumps
from mlops.serve.canary import CLIENT_KEY
from mlops.serve.limits import (
    FEEDBACK_VALUES_PER_ROW,
    OffLoop,
    check_value_count,
    error_body,
    max_values,
    parse_json_bounded,
    read_body,
    too_large,
)
from mlops.serve.service import CONFIG_ENV, ServeConfig, Service

log = logging.getLogger("mlops.serve")

JSON = b"application/json"
# answered by ServingApp itself; /ping is MLflow's liveness path
FAST_PATHS = {
    "/invocations": "invocations",
    "/predict": "predict",
    "/health": "health",
    "/ping": "health",
}
REST_PATHS = {"/ready", "/version", "/metrics", "/feedback"}  # metric labels for FastAPI routes


class ServingApp:
    """The ASGI callable uvicorn runs."""

    def __init__(self, service: Service, rest: Any) -> None:
        self.service = service
        self.rest = rest  # the FastAPI app
        self.metrics = service.metrics
        self.config = service.config
        self.off_loop = OffLoop()  # large bodies are parsed in worker threads

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            endpoint = FAST_PATHS.get(scope["path"])
            if endpoint == "health":
                await self._health(scope, send)
                return
            if endpoint is not None:
                await self._predict(scope, receive, send, endpoint)
                return
            started = time.perf_counter()
            status = [0]

            async def counting_send(message: dict) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            name = scope["path"].strip("/") if scope["path"] in REST_PATHS else "other"
            try:
                await self.rest(scope, receive, counting_send)
            except Exception:  # answered 500 by FastAPI's handler, or by uvicorn
                log.exception("%s %s failed", scope.get("method"), name)
                status[0] = 500
            self._count(name, status[0] or 500, started)
            return
        await self.rest(scope, receive, send)

    def _count(self, endpoint: str, status: int, started: float) -> None:
        self.metrics.requests.inc(endpoint, status)
        self.metrics.latency.observe(time.perf_counter() - started, endpoint)
        if status >= 500:
            self.metrics.server_errors.inc(endpoint)

    async def _health(self, scope: dict, send: Any) -> None:
        started = time.perf_counter()
        await _respond(send, 200, b'{"status":"ok"}')
        self.metrics.requests.inc("health", 200)
        self.metrics.latency.observe(time.perf_counter() - started, "health")

    async def _predict(self, scope: dict, receive: Any, send: Any, endpoint: str) -> None:
        in_flight = self.metrics.in_flight
        in_flight.inc()
        try:
            await self._answer(scope, receive, send, endpoint)
        finally:
            in_flight.inc(by=-1)

    async def _answer(self, scope: dict, receive: Any, send: Any, endpoint: str) -> None:
        started = time.perf_counter()
        live = self.service.model  # in-flight requests finish on the version they started on
        content_type = b""
        length = -1
        given_id = client_key = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"x-request-id":
                given_id = value
            elif name == CLIENT_KEY:
                client_key = value
        request_id = self.service.request_id(given_id)
        extra = [(b"x-request-id", request_id.encode())]
        canary = self.service.canary
        model, role = canary.choose(live, client_key or request_id)  # sticky per client key
        try:
            if scope["method"] != "POST":
                raise RequestError(405, "method_not_allowed", f"use POST {scope['path']}")
            config = self.config
            body = await read_body(receive, config.max_body_bytes, length, config.read_timeout)
            if body is None:
                return  # the client went away
            if model is None:
                raise RequestError(503, "not_ready", "no model is loaded yet")
            extra.append((b"x-model-version", model.version.encode()))
            extra.append((b"x-model-role", role.encode()))
            kind = content_type.split(b";", 1)[0].strip().lower()
            batch = await self.off_loop.run(len(body), _batch, model, kind, endpoint, body, config)
            result = self.service.predict(model, batch, endpoint, request_id, started)
            payload = dumps(result)
            status = 200
            canary.observe(model.version, role, time.perf_counter() - started)
            if role == "live":
                canary.shadow_copy(model, batch, request_id, result["predictions"])
        except RequestError as exc:
            status = exc.status
            payload = error_body({**exc.to_dict(), "request_id": request_id})
            if status == 408:  # the rest of the body may still be on its way: do not read it
                extra.append((b"connection", b"close"))
            self.metrics.errors.inc(endpoint, exc.error)
            fields = exc.extra.get("fields")
            if fields:
                for name, problem in fields.items():
                    self.metrics.invalid.inc(name, by=problem["count"])
            svc = self.service
            svc.log_refused(model, endpoint, request_id, status, exc.error, fields, started)
        except Exception:  # a bug, not the input's fault: log it, answer 500, stay up
            log.exception("prediction failed (request %s, %s)", request_id, endpoint)
            status = 500
            payload = dumps(
                {"error": "internal", "message": "prediction failed", "request_id": request_id}
            )
            self.metrics.errors.inc(endpoint, "internal")
            self.service.log_refused(model, endpoint, request_id, 500, "internal", None, started)
        await _respond(send, status, payload, extra)
        self._count(endpoint, status, started)


def _batch(model: Any, kind: bytes, endpoint: str, body: bytes, config: ServeConfig) -> Any:
    """Count, parse and check a prediction body (in a worker thread when it is large)."""
    limit = max_values(config.max_rows, len(model.spec.features))
    if kind == b"text/csv":
        check_value_count(body, limit)
        return model.spec.from_csv(body, config.max_rows)
    if kind in (b"", JSON) or kind.endswith(b"+json") or kind == b"text/json":
        obj = parse_json_bounded(body, limit)
        if endpoint == "invocations":
            return model.spec.from_invocations(obj, config.max_rows)
        return model.spec.from_records(obj, config.max_rows)
    raise RequestError(
        415,
        "unsupported_media_type",
        f"content type {kind.decode('latin-1')!r} is not supported",
        hint="Send application/json or text/csv.",
    )


async def _respond(send: Any, status: int, payload: bytes, extra: list | None = None) -> None:
    headers = [(b"content-type", JSON), (b"content-length", str(len(payload)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def create_app(service: Service) -> ServingApp:
    """The ASGI app for `service`: FastAPI routes plus the lean prediction routes."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.startup()
        try:
            yield
        finally:
            await service.shutdown()

    api = FastAPI(
        title="mlops model service",
        description=(
            "Predictions: POST /invocations (MLflow payloads: dataframe_split, dataframe_records, "
            "instances, inputs, or text/csv) and POST /predict (a list of records). "
            "Liveness: GET /health or /ping."
        ),
        version=__version__,
        lifespan=lifespan,
    )

    def _json(status: int, body: Any) -> Response:
        return Response(dumps(body), status_code=status, media_type="application/json")

    @api.get("/ready", summary="The model is loaded and verified")
    def ready() -> Response:
        m = service.model
        storage = service.storage_status()  # following a target: was it reachable?
        extra = {"storage": storage} if storage is not None else {}
        if m is None:
            waiting = service.waiting_detail()  # nothing deployed yet: what deploys one
            return _json(503, {"ready": False, "reason": "no model loaded", **waiting, **extra})
        extra.update(service.restart_detail())  # a new version needs new project code
        return _json(200, {"ready": True, "version": m.version, "name": m.name, **extra})

    @api.get("/version", summary="Name, version, commit and load time of the model served")
    def version() -> Response:
        return _json(200, service.version_info())

    @api.get("/metrics", summary="Prometheus metrics (text format)")
    def metrics() -> Response:
        return Response(
            service.render_metrics(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    feedback_parsers = OffLoop()

    @api.post("/feedback", summary="Attach ground-truth labels to a request id", status_code=202)
    async def feedback(request: Request) -> Response:
        config = service.config
        limit = config.max_body_bytes
        try:
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise too_large(limit)
            chunks, size = [], 0
            try:
                async with asyncio.timeout(config.read_timeout):
                    async for chunk in request.stream():
                        size += len(chunk)
                        if size > limit:
                            raise too_large(limit)
                        chunks.append(chunk)
            except TimeoutError:
                raise RequestError(
                    408,
                    "request_timeout",
                    f"the body did not arrive within {config.read_timeout:g} s",
                ) from None
            body = b"".join(chunks)
            values = config.max_rows * FEEDBACK_VALUES_PER_ROW
            obj = await feedback_parsers.run(len(body), parse_json_bounded, body, values)
            accepted = service.feedback(obj)
        except RequestError as exc:
            service.metrics.errors.inc("feedback", exc.error)
            headers = {"connection": "close"} if exc.status == 408 else None
            return Response(
                error_body(exc.to_dict()),
                status_code=exc.status,
                media_type="application/json",
                headers=headers,
            )
        return _json(202, {"accepted": accepted})

    @api.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        # logged and counted by ServingApp; the exception's text may hold request data
        return JSONResponse({"error": "internal", "message": "internal error"}, status_code=500)

    return ServingApp(service, api)


def app_from_env() -> ServingApp:
    """Factory for uvicorn's worker processes: the config comes in `MLOPS_SERVE_CONFIG`."""
    from mlops.serve.httpdeadline import protocol

    config = ServeConfig.from_json(os.environ[CONFIG_ENV])
    protocol(config.read_timeout)  # this worker's header deadline
    return create_app(Service(config))
