"""Prometheus metrics of the service, kept in plain dicts and rendered in the text format.

No client library on the hot path: a counter is a dict increment, a histogram observation one
`bisect`. Label values come from fixed sets (endpoints, statuses, schema fields, model classes)
or the model version, so the number of series stays bounded. With several workers, every change
is also written to files shared by the workers (`mlops.serve.multiproc`) and a scrape of any
worker reports the host's totals.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: tuple) -> str:
    if not names:
        return ""
    inner = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + inner + "}"


def _num(v: float) -> str:
    if v == float("inf"):
        return "+Inf"
    return repr(float(v)) if isinstance(v, float) else str(v)


@dataclass
class Histogram:
    """One histogram series: cumulative buckets are computed when rendered."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, v: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, v)] += 1
        self.total += v
        self.n += 1


@dataclass
class Family:
    name: str
    kind: str  # counter, gauge or histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    series: dict = field(default_factory=dict)
    backend: Any = None  # with several workers: mlops.serve.multiproc shares every change

    def inc(self, *values: object, by: float = 1) -> None:
        """Add `by` to the series with these label values."""
        self.series[values] = self.series.get(values, 0) + by
        if self.backend is not None:
            self.backend.inc(values, by)

    def set(self, value: float, *values: object) -> None:
        """Set the series with these label values (gauges)."""
        self.series[values] = value
        if self.backend is not None:
            self.backend.set(values, value)

    def clear(self) -> None:
        """Forget every series (a gauge shared with other workers is set to 0 instead)."""
        if self.backend is not None:
            for values in self.series:
                self.backend.set(values, 0)
        self.series.clear()

    def observe(self, v: float, *values: object) -> None:
        """Observe `v` in the histogram series with these label values."""
        h = self.series.get(values)
        if h is None:
            h = self.series[values] = Histogram(self.buckets)
        h.observe(v)
        if self.backend is not None:
            self.backend.observe(values, v)

    def render(self, out: list[str]) -> None:
        """Append this family in the Prometheus text format to `out`."""
        out.append(f"# HELP {self.name} {self.help}")
        out.append(f"# TYPE {self.name} {self.kind}")
        for values, v in sorted(self.series.items(), key=lambda kv: tuple(map(str, kv[0]))):
            if self.kind != "histogram":
                out.append(f"{self.name}{_labels(self.labels, values)} {_num(v)}")
                continue
            cumulative = 0
            for bound, count in zip((*v.bounds, float("inf")), v.counts, strict=True):
                cumulative += count
                lab = _labels((*self.labels, "le"), (*values, _num(bound)))
                out.append(f"{self.name}_bucket{lab} {cumulative}")
            lab = _labels(self.labels, values)
            out.append(f"{self.name}_sum{lab} {_num(v.total)}")
            out.append(f"{self.name}_count{lab} {v.n}")


class Metrics:
    """Every metric the service exposes on `/metrics`."""

    def __init__(self, value_buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.requests = Family(
            "mlops_requests_total",
            "counter",
            "HTTP requests answered, by endpoint and status code.",
            ("endpoint", "status"),
        )
        self.errors = Family(
            "mlops_request_errors_total",
            "counter",
            "Requests refused or failed, by endpoint and error kind.",
            ("endpoint", "error"),
        )
        self.latency = Family(
            "mlops_request_duration_seconds",
            "histogram",
            "Time from the request's arrival to its response, by endpoint.",
            ("endpoint",),
        )
        self.server_errors = Family(
            "mlops_server_errors_total",
            "counter",
            "Responses with a 5xx status, by endpoint (each one is also logged, without its body).",
            ("endpoint",),
        )
        self.in_flight = Family(
            "mlops_requests_in_flight", "gauge", "Prediction requests being answered now."
        )
        self.in_flight.set(0)
        self.rows = Family(
            "mlops_prediction_rows_total",
            "counter",
            "Rows predicted, by model version.",
            ("version",),
        )
        self.classes = Family(
            "mlops_predictions_total",
            "counter",
            "Predicted labels, by model version and class (classifiers).",
            ("version", "class"),
        )
        self.values = Family(
            "mlops_prediction_value",
            "histogram",
            "Predicted values, by model version (regressors; buckets from training targets).",
            ("version",),
            buckets=value_buckets,
        )
        self.invalid = Family(
            "mlops_invalid_values_total",
            "counter",
            "Input values refused by the schema, by field.",
            ("field",),
        )
        self.model_info = Family(
            "mlops_model_info",
            "gauge",
            "The model being served (value 1): name, version, commit, prediction path.",
            ("name", "version", "commit", "mode"),
        )
        self.loaded_at = Family(
            "mlops_model_loaded_timestamp_seconds",
            "gauge",
            "When the current model version was loaded (Unix time).",
        )
        self.reloads = Family(
            "mlops_model_reloads_total",
            "counter",
            "Version switches attempted after `current` changed, by result (ok, failed, "
            "restart_required: the version pins project code other than what the process "
            "imported or has installed).",
            ("result",),
        )
        self.log_entries = Family(
            "mlops_prediction_log_entries_total",
            "counter",
            "Prediction log entries, by result (written, dropped when the writer lags, errors).",
            ("result",),
        )
        self.families = [
            self.requests,
            self.errors,
            self.server_errors,
            self.latency,
            self.in_flight,
            self.rows,
            self.classes,
            self.values,
            self.invalid,
            self.model_info,
            self.loaded_at,
            self.reloads,
            self.log_entries,
        ]
        # following an object-store target: 0 while it cannot be reached (the last version
        # loaded keeps serving); absent when serving one bundle
        self.target_reachable = Family(
            "mlops_target_reachable",
            "gauge",
            "1 when the deployment target answered the last poll, 0 while it is unreachable.",
        )
        self.families.append(self.target_reachable)

    def count_predictions(self, version: str, predictions: list, numeric: bool) -> None:
        """Count predicted rows, and their classes or values."""
        self.rows.inc(version, by=len(predictions))
        if numeric:
            for p in predictions:
                if isinstance(p, int | float):  # (a multi-output regressor gives lists)
                    self.values.observe(float(p), version)
        else:
            for p, k in Counter(predictions).items():
                self.classes.inc(version, p, by=k)

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        out: list[str] = []
        for f in self.families:
            f.render(out)
        return ("\n".join(out) + "\n").encode()
