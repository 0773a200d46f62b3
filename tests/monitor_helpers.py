"""Helpers for the monitoring tests: prediction logs written by the real serving code."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from tests.serve_helpers import FEATURES, penguins


def records(frame: Any) -> list[dict[str, Any]]:
    """Feature rows of a penguins frame as JSON-able records (NaN as None)."""
    out = []
    for row in frame[FEATURES].to_dict("records"):
        out.append(
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        )
    return out


def group(where: str | None = None, n: int = 150, seed: int = 1) -> tuple[list[dict], list[str]]:
    """`n` penguins (with replacement, seeded) of one island, or of all: (rows, species)."""
    df = penguins().dropna(subset=FEATURES)
    if where is not None:
        df = df[df.island == where]
    df = df.sample(n, replace=True, random_state=seed)
    return records(df), df["species"].tolist()


def serve_rows(
    bundle: Path,
    log_dir: Path,
    rows: list[dict[str, Any]],
    labels: list[Any] | None = None,
    *,
    version: str = "v1",
    batch: int = 1,
) -> list[str]:
    """Predict `rows` through the real service (input validation, compiled predictor, log
    writer), `batch` rows per request, and send `labels` as feedback. Refused requests are
    logged the way the HTTP app logs them. Returns the request ids."""
    from mlops.bundle.inputs import RequestError
    from mlops.serve.service import ServeConfig, Service

    svc = Service(ServeConfig(bundle=str(bundle), log_dir=str(log_dir)))
    model = svc.load_initial()
    model.version = version
    assert svc.log is not None
    svc.log.start()
    ids = []
    try:
        for i in range(0, len(rows), batch):
            started = time.perf_counter()
            rid = svc.request_id(None)
            try:
                b = model.spec.from_records(rows[i : i + batch], 10_000)
                svc.predict(model, b, "predict", rid, started)
            except RequestError as exc:
                fields = exc.extra.get("fields")
                svc.log_refused(model, "predict", rid, exc.status, exc.error, fields, started)
                continue
            ids.append(rid)
            if labels is not None:
                svc.feedback({"request_id": rid, "labels": labels[i : i + batch]})
    finally:
        svc.log.close()
    return ids


def set_monitoring(project: Path, monitoring: dict, span: dict | None = None) -> None:
    """pipeline.yaml's `monitoring:` replaced (and the ingest span, when given)."""
    import yaml

    path = project / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["monitoring"] = monitoring
    if span is not None:
        data["stages"]["ingest"]["with"]["span"] = span
    path.write_text(yaml.safe_dump(data, sort_keys=False))
