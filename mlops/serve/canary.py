"""Serving a canary or shadow release: deterministic routing, shadow scoring off the hot path.

- **Routing.** A request goes to the canary when `bucket(key) < percent x 100`, where `bucket`
  is a hash of the key into 10,000 buckets and the key is the client's `X-Client-Key` header
  when given (a client sticks to one version while the share stays), else the request id. The
  same key gives the same answer on every host and worker: no state is shared.
- **Shadow.** With a shadow release every prediction the live version answered is queued (a
  bounded queue; when it is full the copy is dropped and counted, the request never waits) to
  one background thread that scores the rows with the candidate and logs its predictions as a
  prediction entry with `endpoint: "shadow"`, `version: <candidate>` and the request's id, so
  the monitor compares both on the same requests. Answers never change.
- **Following.** The server reads the target's canary record (`mlops.deploy.canary`) at each
  poll; the candidate is verified like `current` (against git in a checkout, against the
  record's manifest hash in object storage) and loaded once; a record that is removed or names
  the live version ends the release.
- **Labels.** Responses carry `X-Model-Version` and `X-Model-Role` (`live`, `canary`); metrics
  count requests and latency by version and role, and shadow copies by result.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops.serve.metrics import Family, Metrics

BUCKETS = 10_000
CLIENT_KEY = b"x-client-key"
SHADOW_QUEUE = 1024  # copies waiting to be scored; beyond this they are dropped and counted


def bucket(key: str | bytes) -> int:
    """The routing bucket of a key, 0..9,999 (blake2b: the same on every host and process)."""
    data = key.encode() if isinstance(key, str) else key
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") % BUCKETS


def to_canary(key: str | bytes, percent: float) -> bool:
    """Whether the request with this key is answered by the canary at `percent` percent."""
    return bucket(key) < round(percent * BUCKETS / 100)


class Release:
    """A loaded candidate and the record it came from."""

    def __init__(self, record: dict[str, Any], model: Any, key: Any) -> None:
        self.record = record
        self.model = model
        self.key = key
        self.mode: str = record["mode"]
        self.percent: float = float(record["percent"])


class Canary:
    """The canary/shadow state of one serving process."""

    def __init__(self, metrics: Metrics, queue_size: int = SHADOW_QUEUE) -> None:
        self.release: Release | None = None
        self.error: dict[str, Any] | None = None
        self._failed: Any = None
        self._etag: Any = object()
        self.routed = Family(
            "mlops_routed_requests_total",
            "counter",
            "Prediction requests answered, by model version and role (live or canary).",
            ("version", "role"),
        )
        self.routed_latency = Family(
            "mlops_routed_request_duration_seconds",
            "histogram",
            "Time to answer a prediction request, by model version and role.",
            ("version", "role"),
        )
        self.percent = Family(
            "mlops_canary_percent",
            "gauge",
            "Share of answers (percent) the canary gives; 0 with a shadow or no release.",
        )
        self.shadow = Family(
            "mlops_shadow_predictions_total",
            "counter",
            "Shadow copies of requests, by candidate version and result (scored, dropped when "
            "the queue is full, failed) and agreement with live (agree, disagree).",
            ("version", "result"),
        )
        self.percent.set(0)
        metrics.families += [self.routed, self.routed_latency, self.percent, self.shadow]
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self.log: Any = None  # the PredictionLog shadow entries go to

    # ---- following the record -------------------------------------------------------------

    def check(
        self,
        target: Any,
        source: Any,
        load: Callable[[Path, Any], Any],
        live_version: str | None,
    ) -> str | None:
        """Read the target's record and load (or drop) the candidate; blocking (a thread).

        Returns "started", "ended", "updated", "failed" or None (nothing changed)."""
        from mlops.deploy import canary as records
        from mlops.deploy.target import Target
        from mlops.errors import MlopsError

        try:
            etag = records.record_etag(target)
            if etag == self._etag and (etag is None or self.release is not None):
                return self._end_if_live(live_version)
            record = records.read_record(target)
        except MlopsError as exc:
            self.error = {"path": "canary", "error": exc.message, "at": time.time()}
            return "failed"
        self._etag = etag
        if record is None:
            return self._end("ended")
        if record["version"] == live_version:
            return self._end("ended")  # promoted: the candidate is live now
        key = (record["version"], record.get("manifest_sha256") or record.get("dvc_md5"))
        current = self.release
        if current is not None and current.key == key:
            self.release = Release(record, current.model, key)  # a new step
            self.percent.set(self.release.percent)
            return "updated"
        if key == self._failed:
            return None
        try:
            if isinstance(target, Target):
                handle: Any = target.version_dir(record["version"])
            else:
                handle = dict(record)
            local = source.materialize(handle)
            with source.naming(local, record["version"]):  # errors name the stored version
                model = load(local, key)
        except Exception as exc:  # a bad candidate never takes the service down
            self._end("failed")  # whatever the record named before is no longer the release
            self._failed = key
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            where = f"canary {record['version']}"
            self.error = {"path": where, "error": message, "at": time.time()}
            return "failed"
        self.error = None
        self.release = Release(record, model, key)
        self.percent.set(self.release.percent)
        if self.release.mode == "shadow":
            self._start_thread()
        return "started"

    def _end_if_live(self, live_version: str | None) -> str | None:
        rel = self.release
        if rel is not None and rel.model.version == live_version:
            return self._end("ended")
        return None

    def _end(self, what: str) -> str | None:
        if self.release is None:
            return None
        self.release = None
        self.percent.set(0)
        return what

    # ---- requests ---------------------------------------------------------------------------

    def choose(self, live: Any, key: bytes | str) -> tuple[Any, str]:
        """(model, role) that answers a request with this routing key."""
        rel = self.release
        if (
            rel is None
            or live is None
            or rel.mode != "canary"
            or rel.model.version == live.version
            or not to_canary(key, rel.percent)
        ):
            return live, "live"
        return rel.model, "canary"

    def observe(self, version: str, role: str, seconds: float) -> None:
        """Count one answered prediction request by version and role."""
        self.routed.inc(version, role)
        self.routed_latency.observe(seconds, version, role)

    def shadow_copy(self, live: Any, batch: Any, request_id: str, predictions: list) -> None:
        """Queue a copy of an answered request for the shadow; never blocks."""
        rel = self.release
        if rel is None or rel.mode != "shadow" or rel.model.version == live.version:
            return
        try:
            self._queue.put_nowait((rel.model, live.version, batch, request_id, predictions))
        except queue.Full:
            self.shadow.inc(rel.model.version, "dropped")

    def _start_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="mlops-shadow", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._score(*item)
            finally:
                self._queue.task_done()

    def _score(self, model: Any, live_version: str, batch: Any, rid: str, live: list) -> None:
        started = time.perf_counter()
        try:
            predictions, _ = model.predictor.predict(batch.columns, batch.n)
        except Exception:
            self.shadow.inc(model.version, "failed")
            return
        self.shadow.inc(model.version, "scored")
        agree = sum(1 for a, b in zip(predictions, live, strict=False) if a == b)
        if agree:
            self.shadow.inc(model.version, "agree", by=agree)
        if len(predictions) - agree:
            self.shadow.inc(model.version, "disagree", by=len(predictions) - agree)
        if self.log is not None:
            self.log.add(
                {
                    "kind": "prediction",
                    "ts": time.time(),
                    "request_id": rid,
                    "model": model.name,
                    "version": model.version,
                    "endpoint": "shadow",
                    "shadow_of": live_version,
                    "n": batch.n,
                    "predictions": predictions,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                },
                batch.n,
            )

    def drain(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until the queued shadow copies are scored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        """Score what is queued (bounded), then stop the shadow thread."""
        if self._thread is not None and self._thread.is_alive():
            self.drain()
            self._queue.put(None)
            self._thread.join(timeout=5)
        self._thread = None

    def describe(self) -> dict[str, Any] | None:
        """What `/version` says about the release."""
        rel = self.release
        if rel is None:
            return {"error": self.error} if self.error else None
        return {
            "mode": rel.mode,
            "version": rel.model.version,
            "percent": rel.percent,
            "live": rel.record.get("live"),
            "queued_shadow_copies": self._queue.qsize(),
            "error": self.error,
        }
