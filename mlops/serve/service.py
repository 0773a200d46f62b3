"""The state behind the service: the loaded model version, hot switching, metrics and the log.

No web framework here: `mlops.serve.app` turns this into an ASGI application.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops.bundle.inputs import Batch, RequestError
from mlops.deploy.integrity import IntegrityError
from mlops.deploy.storage import StorageError
from mlops.deploy.target import Target
from mlops.errors import MlopsError
from mlops.serve import multiproc
from mlops.serve.canary import Canary
from mlops.serve.follow import LocalSource, RemoteSource, default_cache, git_expectation
from mlops.serve.log import LogLimits, PredictionLog
from mlops.serve.metrics import Metrics
from mlops.serve.model import LoadedModel, load_model, value_buckets

CONFIG_ENV = "MLOPS_SERVE_CONFIG"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass
class ServeConfig:
    """How to serve: what (a bundle, or a target whose `current` is followed) and the limits."""

    bundle: str | None = None
    target: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    log_dir: str | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    max_rows: int = 10_000
    range_margin: float = 0.0
    poll_seconds: float = 1.0
    trusted_types: list[str] = field(default_factory=list)  # pipeline.yaml model.trusted_types
    code_root: str | None = None  # the project's own code (bundles pinning code are checked)
    read_timeout: float = 30.0  # seconds for a request's headers, then for its body
    log_limits: LogLimits = field(default_factory=LogLimits)
    cache_dir: str | None = None  # local copies of an object-store target's versions
    git_root: str | None = None  # a checkout: versions are verified against its git records
    model_name: str | None = None
    model_path: str | None = None
    log_url: str | None = None  # ship the log (spooled in log_dir) there as segments
    host_id: str | None = None  # the segments' host directory
    ship_seconds: float = 60.0  # a spool file is closed and shipped at this age
    env: str | None = None  # `--env ENV`: named in /ready's hint before the first deployment

    def to_json(self) -> str:
        """The config as JSON (handed to worker processes)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """The config from `to_json`'s text."""
        data = json.loads(text)
        data["log_limits"] = LogLimits(**data.get("log_limits", {}))
        return cls(**data)


def make_source(config: ServeConfig) -> LocalSource | RemoteSource | None:
    """Where versions come from when following a target (None when serving one bundle)."""
    if not config.target:
        return None
    from mlops.deploy.remote import open_any

    expected = git_expectation(config.git_root, config.model_name, config.model_path)
    target = open_any(config.target)
    if isinstance(target, Target):
        return LocalSource(target, expected)
    cache = Path(config.cache_dir) if config.cache_dir else default_cache(config.target)
    return RemoteSource(target, cache, expected)


def source_path(config: ServeConfig) -> Path | None:
    """The verified bundle directory to serve now: the bundle, or the target's current version
    (None when a followed object-store target has nothing deployed yet)."""
    source = make_source(config)
    if source is None:
        assert config.bundle is not None
        return Path(config.bundle)
    try:
        found = source.peek()
    except StorageError:
        if isinstance(source, LocalSource):
            raise
        return None  # storage down at start: the workers start and wait
    if found is None:  # nothing deployed yet: the workers start and wait for it
        return None
    try:
        return source.materialize(found[1])
    except IntegrityError:
        if isinstance(source, LocalSource):
            raise
        return None  # the stored copy fails verification: start and wait (no crash loop)


class Service:
    """Holds the current model; switches versions when the target's `current` changes."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.source = make_source(config)
        self.target = self.source.target if self.source is not None else None
        self.model: LoadedModel | None = None
        self.pending_error: dict[str, Any] | None = None
        self.nothing_deployed = False  # the followed target has no `current` (at the last look)
        self._failed_key: tuple | None = None
        self.metrics = Metrics()
        self.canary = Canary(self.metrics)  # a canary or shadow release (mlops.serve.canary)
        self.shared_metrics = config.workers > 1 and multiproc.enabled()
        if self.shared_metrics:  # a scrape of any worker reports the host's totals
            multiproc.share(self.metrics)
        self.shipper = None
        self.log = None
        if config.log_dir and config.log_url:
            from mlops.serve.segments import Shipper, host_id

            self.shipper = Shipper(config.log_dir, config.log_url, host_id(config.host_id))
            limits = LogLimits(**{**asdict(config.log_limits)})
            limits.max_file_seconds = limits.max_file_seconds or config.ship_seconds
            self.log = PredictionLog(config.log_dir, limits, on_closed=self.shipper.closed)
        elif config.log_dir:
            self.log = PredictionLog(config.log_dir, config.log_limits)
        self.canary.log = self.log
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)
        self._watcher: asyncio.Task | None = None
        self.started = False

    # ---- loading and switching ----------------------------------------------------------

    def _peek(self) -> tuple[tuple, Any] | None:
        assert self.source is not None
        try:
            found = self.source.peek()
        finally:
            self.metrics.target_reachable.set(1 if self.source.status.get("reachable") else 0)
        self.nothing_deployed = found is None
        return found

    def _target_root(self) -> str:
        """The followed target's location (only called while following one)."""
        assert self.target is not None
        return str(self.target.root)

    def waiting_detail(self) -> dict[str, Any]:
        """Why no model is loaded (for `/ready`'s 503): nothing deployed yet, or the deployed
        version fails verification, and what deploys one."""
        if self.model is not None or self.source is None:
            return {}
        env = self.config.env or "ENV"
        pending = self.pending_error
        if pending and not self.nothing_deployed:
            return {
                "detail": f"the deployed version fails verification ({pending['error']}): "
                f"`mlops deploy --env {env}` deploys it again (repairing the stored copy) or "
                "another version, and this server switches to it"
            }
        if not self.nothing_deployed:
            return {}
        return {
            "detail": f"nothing is deployed to {self._target_root()} yet: `mlops deploy --env "
            f"{env}` deploys a version, and this server switches to it within "
            f"{self.config.poll_seconds:g} s"
        }

    def load_initial(self) -> LoadedModel | None:
        """Load what to serve now (raises `MlopsError` when it is not valid). None when a
        followed target (a directory or object storage) has nothing deployed yet, or storage is
        unreachable at start: the service starts and `/ready` answers 503 until a version
        appears."""
        if self.model is not None:
            return self.model
        if self.source is not None:
            try:
                found = self._peek()
            except StorageError:
                if isinstance(self.source, LocalSource):
                    raise
                return None  # storage down at start: serve nothing yet, /ready says why
            if found is None:  # nothing deployed yet: /ready answers 503 until it is
                return None
            key, handle = found
            try:
                path = self.source.materialize(handle)
            except IntegrityError as exc:
                if isinstance(self.source, LocalSource):
                    raise
                # a stored copy that fails verification: start, /ready says why, and the
                # version is tried again once its pointer is written again (a repair)
                self._failed_key = (key, handle.get("written_at"))
                self.pending_error = {
                    "path": f"{self._target_root()}/versions/{key[0]}",
                    "error": exc.message,
                    "at": time.time(),
                }
                self.metrics.reloads.inc("failed")
                return None
            with self.source.naming(path, key[0]):  # errors name the stored version
                model = load_model(
                    path,
                    self.config.range_margin,
                    key,
                    self.config.trusted_types,
                    self.config.code_root,
                )
        else:
            assert self.config.bundle is not None
            model = load_model(
                Path(self.config.bundle),
                self.config.range_margin,
                None,
                self.config.trusted_types,
                self.config.code_root,
            )
        self._install(model)
        return model

    def _install(self, model: LoadedModel) -> None:
        if model.numeric:
            self.metrics.values.buckets = value_buckets(model.path)
        self.metrics.model_info.clear()
        self.metrics.model_info.set(
            1, model.name, model.version, model.commit or "", model.predictor.mode
        )
        self.metrics.loaded_at.set(model.loaded_at)
        self.model = model  # one reference assignment: requests that hold the old one finish on it

    def check_for_switch(self) -> str | None:
        """Load and switch to the target's `current` if it changed (blocking; run in a thread).

        Returns "switched", "failed" or None (nothing to do). A version that fails verification
        or loading is not switched to, and not retried until `current` is written again.
        """
        if self.source is None:
            return None
        try:
            found = self._peek()
        except StorageError:
            return "failed"  # unreachable: retried on the next poll, reported in /ready
        except MlopsError as exc:  # a pointer that names no version: refused, keep serving
            self.pending_error = {"path": "current", "error": exc.message, "at": time.time()}
            return "failed"
        if found is None:
            return None
        key, handle = found
        if self.model is not None and key == self.model.key:
            self.pending_error = None  # `current` names what is served (again): nothing pending
            return None
        # a failed version is retried only once its pointer is written again (a repair)
        attempt = (key, handle.get("written_at") if isinstance(handle, dict) else None)
        if attempt == self._failed_key:
            return None
        stored = f"{self._target_root()}/versions/{key[0]}" if self.target is not None else ""
        path = str(handle) if isinstance(handle, Path) else stored
        try:
            local = self.source.materialize(handle)
            with self.source.naming(local, key[0]):  # errors name the stored version
                model = load_model(
                    local,
                    self.config.range_margin,
                    key,
                    self.config.trusted_types,
                    self.config.code_root,
                )
        except Exception as exc:  # a bad bundle must never take the service down
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            if isinstance(exc, StorageError):
                return "failed"  # unreachable: retried on the next poll, reported in /ready
            self._failed_key = attempt
            self.pending_error = {"path": str(path), "error": message, "at": time.time()}
            if getattr(exc, "restart_required", False):  # other project code: a new process
                self.pending_error["restart_required"] = True
                self.metrics.reloads.inc("restart_required")
                import logging

                logging.getLogger("mlops.serve").warning(
                    "not switching to %s: %s (%s)", path, message, getattr(exc, "hint", "")
                )
                return "failed"
            self.metrics.reloads.inc("failed")
            return "failed"
        self._install(model)
        self.pending_error = None
        self.metrics.reloads.inc("ok")
        return "switched"

    async def watch(self) -> None:
        """Poll the target's `current` and switch versions in a worker thread."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.poll_seconds)
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, self.check_for_switch)
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, self.check_canary)

    def check_canary(self) -> str | None:
        """Follow the target's canary record (blocking; run in a thread)."""
        if self.source is None:
            return None

        def load(path: Path, key: Any) -> LoadedModel:
            c = self.config
            return load_model(path, c.range_margin, key, c.trusted_types, c.code_root)

        live = self.model.version if self.model is not None else None
        return self.canary.check(self.target, self.source, load, live)

    async def startup(self) -> None:
        """Load the model, freeze it out of the GC, start the log writer and the watcher."""
        if self.started:
            return
        self.load_initial()
        with contextlib.suppress(Exception):  # a bad canary never stops the live version
            self.check_canary()
        # what is loaded now lives as long as the process: keep the cyclic GC from re-scanning
        # it (the model, scikit-learn, FastAPI) on every full collection while serving
        gc.collect()
        gc.freeze()
        if self.shipper is not None:
            self.shipper.start()
        if self.log is not None:
            self.log.start()
        if self.target is not None:
            self._watcher = asyncio.create_task(self.watch())
        self.started = True

    async def shutdown(self) -> None:
        """Stop the watcher, then write and close the prediction log."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
            self._watcher = None
        self.canary.stop()
        if self.log is not None:
            self.log.close()
        if self.shipper is not None:  # after the log closed its last file: nothing is left
            self.shipper.close()
        if self.shared_metrics:
            multiproc.worker_exited(os.getpid())
        self.started = False

    # ---- requests -----------------------------------------------------------------------

    def request_id(self, given: bytes | None) -> str:
        """The client's X-Request-ID when well-formed, else a new id."""
        if given:
            with contextlib.suppress(UnicodeDecodeError):
                text = given.decode("ascii")
                if REQUEST_ID.match(text):
                    return text
        return f"{self._id_prefix}-{next(self._ids):x}"

    def predict(
        self, model: LoadedModel, batch: Batch, endpoint: str, request_id: str, started: float
    ) -> dict[str, Any]:
        """Predict a validated batch, count it, queue it for the log; the response body."""
        predictions, proba = model.predictor.predict(batch.columns, batch.n)
        out: dict[str, Any] = {"predictions": predictions}
        if model.predictor.classes is not None:
            out["classes"] = model.predictor.classes
        if proba is not None:
            out["probabilities"] = proba
        out.update(model=model.name, version=model.version, request_id=request_id)
        self.metrics.count_predictions(model.version, predictions, model.numeric)
        if self.log is not None:
            entry = {
                "kind": "prediction",
                "ts": time.time(),
                "request_id": request_id,
                "model": model.name,
                "version": model.version,
                "endpoint": endpoint,
                "n": batch.n,
                "inputs": batch.columns,
                "predictions": predictions,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            }
            if proba is not None:
                entry["classes"] = model.predictor.classes
                entry["probabilities"] = proba
            self.log.add(entry, batch.n)
        return out

    def log_refused(
        self,
        model: LoadedModel | None,
        endpoint: str,
        request_id: str,
        status: int,
        error: str,
        fields: dict[str, Any] | None,
        started: float,
    ) -> None:
        """Queue a refused (4xx) or failed (5xx) prediction request for the log, so monitoring
        sees data quality and errors: which fields were refused how often, never the body."""
        if self.log is None:
            return
        entry: dict[str, Any] = {
            "kind": "error",
            "ts": time.time(),
            "request_id": request_id,
            "endpoint": endpoint,
            "status": status,
            "error": error,
            "version": model.version if model is not None else None,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if fields:
            entry["fields"] = {name: int(p.get("count", 1)) for name, p in fields.items()}
        self.log.add(entry, 1)

    def feedback(self, obj: Any) -> int:
        """Attach ground-truth labels to request ids (queued to the log); how many accepted."""
        if self.log is None:
            raise RequestError(
                409,
                "log_disabled",
                "the prediction log is off, so feedback has nowhere to go",
                hint="Start the service without --no-log.",
            )
        items = obj if isinstance(obj, list) else [obj]
        if not items or len(items) > self.config.max_rows:
            raise RequestError(422, "bad_feedback", "send 1 to max-rows feedback objects")
        model = self.model
        entries: list[dict[str, Any]] = []
        problems: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                problems.append({"item": i, "problem": "must be an object"})
                continue
            rid = item.get("request_id")
            if not isinstance(rid, str) or not REQUEST_ID.match(rid):
                problems.append({"item": i, "problem": "request_id must be a request id string"})
                continue
            if "labels" in item:
                labels = item["labels"]
            elif "label" in item:
                labels = [item["label"]]
            else:
                problems.append({"item": i, "problem": "needs `label` or `labels`"})
                continue
            if not isinstance(labels, list) or not labels or len(labels) > self.config.max_rows:
                problems.append({"item": i, "problem": "labels must be a non-empty list"})
                continue
            bad = _bad_labels(labels, model)
            if bad:
                problems.append({"item": i, "problem": bad})
                continue
            entries.append(
                {"kind": "feedback", "ts": time.time(), "request_id": rid, "labels": labels}
            )
        if problems:
            raise RequestError(422, "bad_feedback", "some feedback was refused", problems=problems)
        for e in entries:
            self.log.add(e, len(e["labels"]))
        return len(entries)

    def version_info(self) -> dict[str, Any]:
        """The body of `GET /version`."""
        info = self.model.describe() if self.model else {}
        info["pending_error"] = self.pending_error
        info["release"] = self.canary.describe()
        info["target"] = str(self.target.root) if self.target else None
        info["storage"] = self.storage_status()
        if self.shipper is not None:
            sh = self.shipper
            info["log_shipping"] = {
                "url": sh.url,
                "host": sh.host,
                "segments_shipped": sh.shipped,
                "errors": sh.errors,
                "last_error": sh.last_error or None,
            }
        return info

    def restart_detail(self) -> dict[str, Any]:
        """For `/ready`: a deployed version this process cannot load without a restart (it
        pins project code other than what the process imported); the old version serves on."""
        pending = self.pending_error
        if not pending or not pending.get("restart_required"):
            return {}
        return {
            "restart_required": True,
            "detail": f"not switched to {pending['path']}: {pending['error']}; restart the "
            "server with the code that version pins (in a pod: the image built at its "
            "commit); the version above keeps serving until then",
        }

    def storage_status(self) -> dict[str, Any] | None:
        """Whether the followed target was reachable at the last poll (None: no target)."""
        return dict(self.source.status) if self.source is not None else None

    def render_metrics(self) -> bytes:
        """The body of `GET /metrics` (Prometheus text format)."""
        if self.log is not None:
            fam = self.metrics.log_entries
            fam.set(self.log.written, "written")
            fam.set(self.log.dropped, "dropped")
            fam.set(self.log.errors, "error")
        return multiproc.render() if self.shared_metrics else self.metrics.render()


def _bad_labels(labels: list, model: LoadedModel | None) -> str | None:
    if model is None:
        return None
    if model.numeric:
        if any(type(v) not in (int, float) for v in labels):
            return "labels of a regression model must be numbers"
        return None
    classes = model.predictor.classes or []
    unknown = [v for v in labels if v not in classes]
    if unknown:
        return f"unknown class {unknown[0]!r}; the classes are {classes}"
    return None
