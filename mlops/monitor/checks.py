"""The checks: live traffic against what the model was trained and evaluated on.

`analyse(columns, live, spec, window)` takes the log's tables (`mlops.monitor.logdata`), the
live version's bundle (read, never loaded: no scikit-learn) and pipeline.yaml's `monitoring:`
settings, and returns a `MonitorReport`:

- input drift per feature and dataset drift: the live version's rows in the window against
  the bundle's training profile (`reference.json`), through `mlops.data.drift.compare`, with
  the `monitoring.drift` method, thresholds and share;
- prediction drift: the predicted classes or values (and the top-class probability) against
  the distribution of the evaluation set's predictions (`prediction_reference` in the
  bundle's metadata; older bundles have none: prediction drift is then not judged);
- data quality: the share of requests refused (out of schema, malformed) and the fields that
  were refused, missing values per feature against training;
- online performance where feedback gave labels: the metric with its interval and number of
  labelled rows, against the offline figure in the bundle and the bounds in `performance`; and
  against the version the environment ran before (the evidence a rollback needs);
- service health: share of server errors, latency percentiles;
- series over time buckets for the plots.

Where it can, the report is made from per-chunk partial results that add up exactly, cached
between runs (`mlops.monitor.partials`, `mlops.monitor.assemble`); the rows are analysed
otherwise.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.monitor.arrays import (  # noqa: F401 - kept importable from here
    PERCENTILES,
    _categorical,
    _Frame,
    _frame,
    _is_numeric,
    _mask,
    _np,
    _percentiles,
    _recode,
    _text,
)
from mlops.monitor.inputs import _chunk, _chunks, _drift, _prediction_reference, _quality  # noqa: F401
from mlops.monitor.performance import _labelled, _performance, _score_rows  # noqa: F401
from mlops.monitor.series import SERIES_SAMPLE, _drift_series, _js_rows, _series  # noqa: F401
from mlops.monitor.window import Window

if TYPE_CHECKING:
    from mlops.config.models import MonitoringSpec
    from mlops.data.drift import DriftReport
    from mlops.errors import MlopsError
    from mlops.monitor.logdata import LogColumns


@dataclass
class LiveModel:
    """What monitoring needs of a deployed bundle (its files are verified, the model is not
    loaded)."""

    name: str
    version: str
    path: Path
    task: str
    target: str | None
    classes: list[Any]
    features: list[str]
    metrics: dict[str, Any]
    reference: dict[str, Any]
    prediction_reference: dict[str, Any] | None
    commit: str | None = None
    excluded: list[str] = field(default_factory=list)  # identifier / time columns (no feature)

    @classmethod
    def read(cls, path: Path, version: str, extra_files: tuple[str, ...] = ()) -> LiveModel:
        """Verify the bundle at `path` (sha256 of every file) and read its metadata."""
        from mlops.bundle import verify_bundle
        from mlops.data.profile import check_format

        meta = verify_bundle(path, extra_files=extra_files)
        reference = check_format(
            json.loads((path / "reference.json").read_text(encoding="utf-8")),
            f"{path.name}/reference.json",
        )
        target = meta.get("target") or reference.get("target")
        features = list(meta.get("features") or [c for c in reference["columns"] if c != target])
        return cls(
            name=meta.get("name", path.name),
            version=version,
            path=path,
            task=meta.get("task") or "classification",
            target=target,
            classes=list(meta.get("classes") or []),
            features=features,
            metrics=dict(meta.get("metrics") or {}),
            reference=reference,
            prediction_reference=meta.get("prediction_reference"),
            commit=(meta.get("git") or {}).get("commit"),
            excluded=[str(c) for c in (meta.get("excluded_columns") or {})],
        )


@dataclass
class Breach:
    """One check that failed, in words, with the columns it concerns."""

    check: str  # input_drift | prediction_drift | data_quality | performance |
    # worse_than_previous | health
    message: str
    columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "message": self.message, "columns": self.columns}


@dataclass
class MonitorReport:
    """Everything one monitoring run found (and, once decided, the action)."""

    env: str
    model: str
    version: str | None
    window: Window
    log: dict[str, Any]
    previous: str | None = None
    traffic: dict[str, Any] = field(default_factory=dict)
    drift: DriftReport | None = None
    drift_note: str = ""
    prediction_drift: DriftReport | None = None
    prediction_note: str = ""
    quality: dict[str, Any] = field(default_factory=dict)
    performance: dict[str, Any] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    breaches: list[Breach] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    action: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    seconds: float = 0.0

    @property
    def breached(self) -> bool:
        return bool(self.breaches)

    @property
    def empty(self) -> bool:
        return not self.traffic.get("rows") and not self.traffic.get("requests")

    def error(self) -> MlopsError | None:
        """A breach is a `MonitorBreach` (exit 7) whatever the action did; None otherwise."""
        if not self.breached:
            return None
        from mlops.errors import MonitorBreach

        action = self.action or {}
        done = (
            f"; action {action.get('kind')}: {action.get('status') or 'planned'}" if action else ""
        )
        return MonitorBreach(
            f"monitoring breach in {self.env}{done}",
            "See the report above (--html FILE draws it); `mlops runs list` has the record.",
        )

    @property
    def exit_code(self) -> int:
        """The process exit code the report calls for (0 when nothing breached)."""
        error = self.error()
        return 0 if error is None else int(error.exit_code)

    def summary(self) -> str:
        """One line: the verdict and what breached."""
        head = f"{self.env}: {self.model} {self.version or '(nothing live)'}"
        if self.empty:
            return f"{head}: no traffic in the window ({self.window.label})"
        if not self.breaches:
            return f"{head}: no breach ({self.traffic.get('rows', 0)} rows, {self.window.label})"
        return f"{head}: BREACH: " + "; ".join(b.message for b in self.breaches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "model": self.model,
            "version": self.version,
            "previous": self.previous,
            "window": self.window.to_dict(),
            "breach": self.breached,
            "breaches": [b.to_dict() for b in self.breaches],
            "summary": self.summary(),
            "traffic": self.traffic,
            "drift": self.drift.to_dict() if self.drift else None,
            "drift_note": self.drift_note,
            "prediction_drift": self.prediction_drift.to_dict() if self.prediction_drift else None,
            "prediction_note": self.prediction_note,
            "quality": self.quality,
            "performance": self.performance,
            "health": self.health,
            "series": self.series,
            "log": self.log,
            "action": self.action,
            "notes": self.notes,
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
        }


# ---- columns to numpy ------------------------------------------------------------------------


# ---- drift -----------------------------------------------------------------------------------


# ---- the analysis ------------------------------------------------------------------------------


def analyse(
    columns: LogColumns,
    live: LiveModel,
    spec: MonitoringSpec,
    window: Window,
    *,
    env: str,
    previous: str | None = None,
    cache: Path | None = None,
    partials: bool = True,
) -> MonitorReport:
    """Run every check on the log (see the module docstring).

    With `partials` (the default) the report is made from per-chunk partial results
    (`mlops.monitor.assemble`) where it can be, read from and written to `cache` when given
    (a directory; `mlops.monitor.partials`); otherwise, or when `partials` is False, from the
    rows."""
    from mlops.monitor.memory import small_pages

    with small_pages():
        if partials:
            from mlops.monitor.assemble import analyse_partials

            t0 = time.perf_counter()
            report = MonitorReport(
                env, live.name, live.version, window, columns.summary(), previous=previous
            )
            report.notes.extend(columns.notes)
            if columns.predictions.num_rows and analyse_partials(
                report, columns, live, spec, window, cache
            ):
                report.seconds = time.perf_counter() - t0
                return report
        return _analyse(columns, live, spec, window, env=env, previous=previous)


def _analyse(
    columns: LogColumns,
    live: LiveModel,
    spec: MonitoringSpec,
    window: Window,
    *,
    env: str,
    previous: str | None = None,
) -> MonitorReport:
    import numpy as np

    t0 = time.perf_counter()
    report = MonitorReport(
        env, live.name, live.version, window, columns.summary(), previous=previous
    )
    report.notes.extend(columns.notes)
    pred, fb, err = columns.predictions, columns.feedback, columns.errors
    f = _frame(columns, window)
    live_rows = f.in_window & f.version_mask(live.version)
    requests = int((f.first & f.in_window).sum())
    refused = int(f.e_in.sum())
    by_version: dict[str, int] = {}
    if f.in_window.any():
        counts = np.bincount(f.version_codes[f.in_window] + 1, minlength=len(f.version_values) + 1)
        by_version = {
            str(v): int(c)
            for v, c in zip([None, *f.version_values], counts.tolist(), strict=True)
            if c
        }
    report.traffic = {
        "requests": requests + refused,
        "answered": requests,
        "rows": int(f.in_window.sum()),
        "live_rows": int(live_rows.sum()),
        "by_version": by_version,
        "first": float(f.ts[f.in_window].min()) if f.in_window.any() else None,
        "last": float(f.ts[f.in_window].max()) if f.in_window.any() else None,
    }
    if f.in_window.any() and not live_rows.any():
        report.notes.append(
            f"no rows of the live version {live.version} in the window (only "
            f"{', '.join(by_version)}): drift and performance are not judged"
        )
    live_table = _mask(pred, live_rows) if pred.num_rows else pred
    features = [c for c in live.features if c in live.reference["columns"]]
    with ThreadPoolExecutor(1) as pool:
        # joining feedback to predictions (Arrow's hash kernels, outside the GIL) runs on the
        # second core while drift counts the inputs
        joined = pool.submit(_score_rows, pred, fb, live) if pred.num_rows and fb.num_rows else None
        _drift(report, live, spec, live_table, features, window)
        _quality(report, live, spec, live_table, features, err, f, requests, refused)
        scored = joined.result() if joined is not None else None
    _performance(report, live, spec, scored, f, live_rows, fb.num_rows)
    lat = _np(pred.column("latency_ms"))[f.first & f.in_window] if pred.num_rows else np.zeros(0)
    if err.num_rows:
        lat = np.concatenate([lat, _np(err.column("latency_ms"))[f.e_in]])
    total = requests + refused
    server_errors = int((f.status >= 500).sum())
    report.health = {
        "requests": total,
        "server_errors": server_errors,
        "error_rate": round(server_errors / total, 6) if total else 0.0,
        "max_error_rate": spec.health.max_error_rate,
        "latency_ms": _percentiles(lat),
        "max_latency_p99_ms": spec.health.max_latency_p99_ms,
        "judged": total >= spec.min_rows,
    }
    if pred.num_rows or err.num_rows:
        report.series = _series(pred, f, live, scored)
    _judge(report, spec)
    report.seconds = time.perf_counter() - t0
    return report


# ---- verdicts ----------------------------------------------------------------------------------


def _judge(report: MonitorReport, spec: MonitoringSpec) -> None:
    d = report.drift
    if d is not None and d.dataset_drift:
        report.breaches.append(
            Breach(
                "input_drift",
                f"input drift in {', '.join(d.drifted)} ({len(d.drifted)} of {len(d.columns)} "
                f"features, share {d.share:.2f} >= {d.share_threshold:g})",
                list(d.drifted),
            )
        )
    pd_ = report.prediction_drift
    if spec.prediction_drift and pd_ is not None and "prediction" in pd_.drifted:
        c = pd_.column("prediction")
        report.breaches.append(
            Breach(
                "prediction_drift",
                f"prediction drift ({c.method} {c.score:.3g}, {report.prediction_note})",
                ["prediction"],
            )
        )
    q = report.quality
    if q.get("judged") and q["rejected_share"] > q["max_rejected"]:
        top = ", ".join(list(q["fields"])[:3])
        report.breaches.append(
            Breach(
                "data_quality",
                f"{q['rejected_share']:.1%} of requests refused (max {q['max_rejected']:.1%})"
                + (f"; fields: {top}" if top else ""),
                list(q["fields"])[:10],
            )
        )
    p = report.performance
    online = p.get("online") or {}
    value = online.get("value")
    if p.get("judged") and value is not None:
        why = []
        if p.get("min") is not None and value < p["min"]:
            why.append(f"below min {p['min']:g}")
        if p.get("max") is not None and value > p["max"]:
            why.append(f"above max {p['max']:g}")
        if (
            p.get("max_drop") is not None
            and p.get("drop") is not None
            and (p["drop"] > p["max_drop"])
        ):
            why.append(
                f"{p['drop']:.3g} worse than offline {p['offline']:.4g} "
                f"(max_drop {p['max_drop']:g})"
            )
        if why:
            report.breaches.append(
                Breach(
                    "performance",
                    f"online {p['metric']} {value:.4g} [{online['low']:.3g}, "
                    f"{online['high']:.3g}] on {online['labelled']} labelled rows: "
                    + "; ".join(why),
                )
            )
    cmp = p.get("previous")
    if cmp and cmp.get("worse"):
        report.breaches.append(
            Breach(
                "worse_than_previous",
                f"{report.version} does worse online than {cmp['other_version']}: "
                f"{p['metric']} {cmp['live']['value']:.4g} ({cmp['live']['labelled']} labelled) "
                f"against {cmp['other']['value']:.4g} ({cmp['other']['labelled']} labelled), "
                f"z = {cmp['z']:.2f}",
            )
        )
    h = report.health
    if h.get("judged"):
        why = []
        if h["error_rate"] > h["max_error_rate"]:
            why.append(f"server errors {h['error_rate']:.1%} (max {h['max_error_rate']:.1%})")
        p99 = h["latency_ms"].get("p99")
        if h.get("max_latency_p99_ms") and p99 is not None and p99 > h["max_latency_p99_ms"]:
            why.append(f"latency p99 {p99:.3g} ms (max {h['max_latency_p99_ms']:g} ms)")
        if why:
            report.breaches.append(Breach("health", "service health: " + "; ".join(why)))


# ---- series over time ----------------------------------------------------------------------------
