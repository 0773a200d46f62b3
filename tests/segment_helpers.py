"""Helpers for the log-segment tests: traffic through the real service, shipped or logged."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# what must be equal between a monitor report over shipped segments and one over the same
# traffic logged locally (times and latency are measured per run; the log summary differs)
COMPARED = ("traffic", "drift", "prediction_drift", "quality", "performance", "breach", "version")


def ship_rows(
    bundle: Path,
    spool: Path,
    url: str,
    host: str,
    rows: list[dict[str, Any]],
    labels: list[Any] | None = None,
    *,
    version: str = "v0.0.1",
    batch: int = 1,
    refused: int = 0,
) -> None:
    """Predict `rows` through the real service shipping its log to `url` as host `host`,
    `batch` rows a request, with feedback; `refused` bad requests are logged as refused."""
    from mlops.bundle.inputs import RequestError
    from mlops.serve.service import ServeConfig, Service

    svc = Service(ServeConfig(bundle=str(bundle), log_dir=str(spool), log_url=url, host_id=host))
    model = svc.load_initial()
    model.version = version
    assert svc.log is not None and svc.shipper is not None
    svc.shipper.start()
    svc.log.start()
    try:
        for i in range(0, len(rows), batch):
            rid = svc.request_id(None)
            b = model.spec.from_records(rows[i : i + batch], 10_000)
            svc.predict(model, b, "predict", rid, time.perf_counter())
            if labels is not None:
                svc.feedback({"request_id": rid, "labels": labels[i : i + batch]})
        for _ in range(refused):
            rid = svc.request_id(None)
            try:
                model.spec.from_records([{"island": 3}], 10_000)
            except RequestError as exc:
                fields = exc.extra.get("fields")
                svc.log_refused(
                    model, "predict", rid, exc.status, exc.error, fields, time.perf_counter()
                )
    finally:
        svc.log.close()
        svc.shipper.close()


def compared(report: dict[str, Any]) -> dict[str, Any]:
    """The parts of a `mlops monitor --json` report that depend only on the traffic."""
    out = {k: report.get(k) for k in COMPARED}
    out["traffic"] = {k: v for k, v in out["traffic"].items() if k not in ("first", "last")}
    health = dict(report.get("health") or {})
    health.pop("latency_ms", None)
    out["health"] = health
    return out
