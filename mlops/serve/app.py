"""The ASGI application: a lean route for predictions in front of a FastAPI app for the rest.

`/invocations`, `/predict`, `/health` and `/ping` are answered by `ServingApp` directly (no
routing table, no middleware, no pydantic; orjson in and out). Everything else — `/ready`,
`/version`, `/metrics`, `/feedback`, the OpenAPI docs — is a FastAPI app built by `create_app`,
whose lifespan hook loads the model, starts the prediction log and the version watcher.
(No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations.)
"""

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from mlops import __version__
from mlops.serve.inputs import RequestError, dumps, parse_json
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

            await self.rest(scope, receive, counting_send)
            name = scope["path"].strip("/") if scope["path"] in REST_PATHS else "other"
            self.metrics.requests.inc(name, status[0])
            self.metrics.latency.observe(time.perf_counter() - started, name)
            return
        await self.rest(scope, receive, send)

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
        model = self.service.model  # in-flight requests finish on the version they started on
        content_type = b""
        length = -1
        given_id = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"x-request-id":
                given_id = value
        request_id = self.service.request_id(given_id)
        extra = [(b"x-request-id", request_id.encode())]
        try:
            if scope["method"] != "POST":
                raise RequestError(405, "method_not_allowed", f"use POST {scope['path']}")
            body = await _read_body(receive, self.config.max_body_bytes, length)
            if body is None:
                return  # the client went away
            if model is None:
                raise RequestError(503, "not_ready", "no model is loaded yet")
            extra.append((b"x-model-version", model.version.encode()))
            kind = content_type.split(b";", 1)[0].strip().lower()
            if kind == b"text/csv":
                batch = model.spec.from_csv(body, self.config.max_rows)
            elif kind in (b"", JSON) or kind.endswith(b"+json") or kind == b"text/json":
                obj = parse_json(body)
                if endpoint == "invocations":
                    batch = model.spec.from_invocations(obj, self.config.max_rows)
                else:
                    batch = model.spec.from_records(obj, self.config.max_rows)
            else:
                raise RequestError(
                    415,
                    "unsupported_media_type",
                    f"content type {kind.decode('latin-1')!r} is not supported",
                    hint="Send application/json or text/csv.",
                )
            result = self.service.predict(model, batch, endpoint, request_id, started)
            payload = dumps(result)
            status = 200
        except RequestError as exc:
            status = exc.status
            payload = dumps({**exc.to_dict(), "request_id": request_id})
            self.metrics.errors.inc(endpoint, exc.error)
            fields = exc.extra.get("fields")
            if fields:
                for name, problem in fields.items():
                    self.metrics.invalid.inc(name, by=problem["count"])
            svc = self.service
            svc.log_refused(model, endpoint, request_id, status, exc.error, fields, started)
        except Exception:  # a bug, not the input's fault: log it, answer 500, stay up
            log.exception("prediction failed (request %s)", request_id)
            status = 500
            payload = dumps(
                {"error": "internal", "message": "prediction failed", "request_id": request_id}
            )
            self.metrics.errors.inc(endpoint, "internal")
            self.service.log_refused(model, endpoint, request_id, 500, "internal", None, started)
        await _respond(send, status, payload, extra)
        self.metrics.requests.inc(endpoint, status)
        self.metrics.latency.observe(time.perf_counter() - started, endpoint)


async def _read_body(receive: Any, limit: int, length: int) -> bytes | None:
    if length > limit:
        raise _too_large(limit)
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> RequestError:
    return RequestError(
        413,
        "body_too_large",
        f"the body is larger than {limit} bytes",
        hint="Split the batch into smaller requests.",
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
            return _json(503, {"ready": False, "reason": "no model loaded", **extra})
        return _json(200, {"ready": True, "version": m.version, "name": m.name, **extra})

    @api.get("/version", summary="Name, version, commit and load time of the model served")
    def version() -> Response:
        return _json(200, service.version_info())

    @api.get("/metrics", summary="Prometheus metrics (text format)")
    def metrics() -> Response:
        return Response(
            service.render_metrics(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @api.post("/feedback", summary="Attach ground-truth labels to a request id", status_code=202)
    async def feedback(request: Request) -> Response:
        limit = service.config.max_body_bytes
        try:
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise _too_large(limit)
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            accepted = service.feedback(parse_json(b"".join(chunks)))
        except RequestError as exc:
            service.metrics.errors.inc("feedback", exc.error)
            return _json(exc.status, exc.to_dict())
        return _json(202, {"accepted": accepted})

    @api.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        return JSONResponse({"error": "internal", "message": str(exc)[:200]}, status_code=500)

    return ServingApp(service, api)


def app_from_env() -> ServingApp:
    """Factory for uvicorn's worker processes: the config comes in `MLOPS_SERVE_CONFIG`."""
    config = ServeConfig.from_json(os.environ[CONFIG_ENV])
    return create_app(Service(config))
