"""The checks: live traffic against what the model was trained and evaluated on.

`analyse(columns, live, spec, window)` takes the log's tables (`mlops.monitor.logdata`), the
live version's bundle (read, never loaded: no scikit-learn) and pipeline.yaml's `monitoring:`
settings, and returns a `MonitorReport`:

- input drift per feature and dataset drift: the live version's rows in the window against
  the bundle's training profile (`reference.json`), through `mlops.data.drift.compare`, with
  the `monitoring.drift` method, thresholds and share;
- prediction drift: the predicted classes or values (and the top-class probability) against
  the distribution of the evaluation set's predictions (`prediction_reference` in the
  bundle's metadata; older bundles: the training labels);
- data quality: the share of requests refused (out of schema, malformed) and the fields that
  were refused, missing values per feature against training;
- online performance where feedback gave labels: the metric with its interval and number of
  labelled rows, against the offline figure in the bundle and the bounds in `performance`; and
  against the version the environment ran before (the evidence a rollback needs);
- service health: share of server errors, latency percentiles;
- series over time buckets for the plots.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.monitor.logdata import FEATURE_PREFIX
from mlops.monitor.stats import (
    CLASSIFICATION,
    LOWER_IS_BETTER,
    REGRESSION,
    Comparison,
    Estimate,
    classification_estimate,
    compare_estimates,
    regression_estimate,
)
from mlops.monitor.window import Window, buckets

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from mlops.config.models import MonitoringSpec
    from mlops.data.drift import DriftReport
    from mlops.monitor.logdata import LogColumns

PERCENTILES = (50, 95, 99)
SERIES_SAMPLE = 200_000  # rows drawn for the drift-over-time picture of a large window


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


def _np(col: Any, fill: float = math.nan) -> np.ndarray:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_null(col.type):
        return np.full(len(col), fill)
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        raise TypeError(f"not a numeric column: {col.type}")
    return np.asarray(pc.fill_null(col.cast(pa.float64()), fill).to_numpy(zero_copy_only=False))


def _text(col: Any) -> pa.Array:
    """A column as plain text (dictionary decoded; numbers printed the way the log's text is)."""
    import pyarrow as pa

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_null(col.type):
        return pa.nulls(len(col), pa.string())
    if pa.types.is_floating(col.type):
        import pyarrow.compute as pc

        whole = pc.fill_null(pc.equal(col, pc.round(col)), False)
        if len(col) and pc.all(pc.or_(whole, pc.is_null(col))).as_py():
            return col.cast(pa.int64()).cast(pa.string())
    return col.cast(pa.string())


def _categorical(col: Any) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 where missing) and the distinct values of a text column: counting and
    matching work on the few distinct values, not on a million strings."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray):
        if pa.types.is_dictionary(col.type):
            col = col.unify_dictionaries()
        col = col.combine_chunks()
    if pa.types.is_null(col.type):
        return np.full(len(col), -1, dtype=np.int64), []
    if not pa.types.is_dictionary(col.type):
        col = _text(col).dictionary_encode()
    values = [None if v is None else str(v) for v in _text(col.dictionary).to_pylist()]
    codes = np.asarray(pc.fill_null(col.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    return codes, values


def _recode(codes: np.ndarray, values: list[str | None], onto: list[str]) -> np.ndarray:
    """Codes into `values` turned into codes into `onto` (-1 where absent)."""
    import numpy as np

    where = {v: i for i, v in enumerate(onto)}
    lookup = np.array([where.get(v, -1) if v is not None else -1 for v in values] + [-1])
    return lookup[codes] if len(codes) else codes


def _mask(table: pa.Table, mask: np.ndarray) -> pa.Table:
    import pyarrow as pa

    if mask.all():  # the usual case (the whole window is the live version's): no copy
        return table
    return table.filter(pa.array(mask))


def _is_numeric(col: Any) -> bool:
    import pyarrow as pa

    t = col.type
    return pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_null(t)


# ---- drift -----------------------------------------------------------------------------------


def _chunk(name: str, col: Any, ref_dtype: str) -> Any:
    """A `ColumnChunk` (what `compare` reads) of one logged column."""
    import numpy as np
    import pandas as pd

    from mlops.data.columns import ColumnChunk, kind_of, summarize

    rows = len(col)
    if kind_of(ref_dtype) == "numeric" or _is_numeric(col):
        if _is_numeric(col):
            series = pd.Series(_np(col))
        else:
            series = pd.Series(_text(col).to_numpy(zero_copy_only=False))
        return summarize(name, series, ref_dtype, keep_values=False)
    codes, values = _categorical(col)
    counts = np.bincount(codes[codes >= 0], minlength=len(values))
    merged: dict[str, int] = {}
    for v, c in zip(values, counts.tolist(), strict=True):
        if v is not None and c:
            merged[v] = merged.get(v, 0) + c
    return ColumnChunk(
        name,
        "categorical",
        ref_dtype,
        rows,
        missing=int((codes < 0).sum()),
        counts=pd.Series(list(merged.values()), index=list(merged), dtype="int64"),
    )


def _chunks(table: pa.Table, names: list[str], reference: dict[str, Any]) -> list[Any]:
    from concurrent.futures import ThreadPoolExecutor

    from mlops.data.columns import THREADS

    jobs = [
        (n, table.column(FEATURE_PREFIX + n), reference["columns"][n].get("dtype", "str"))
        for n in names
        if FEATURE_PREFIX + n in table.column_names
    ]
    if table.num_rows >= 50_000 and len(jobs) > 1:
        with ThreadPoolExecutor(THREADS) as pool:  # numpy sorts release the GIL
            return list(pool.map(lambda j: _chunk(*j), jobs))
    return [_chunk(*j) for j in jobs]


def _prediction_reference(live: LiveModel) -> tuple[dict[str, Any] | None, str]:
    """The predictions' reference profile: the evaluation set's predictions, else the training
    labels (bundles written before evaluate stored them)."""
    if live.prediction_reference:
        return live.prediction_reference, "the evaluation set's predictions"
    target = live.target
    col = (live.reference.get("columns") or {}).get(target or "")
    if col is None:
        return None, ""
    profile = {"format": 2, "rows": live.reference.get("rows", 0), "columns": {"prediction": col}}
    return profile, "the training labels (this bundle stores no evaluation predictions)"


# ---- the analysis ------------------------------------------------------------------------------


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    import numpy as np

    values = values[~np.isnan(values)]
    if not len(values):
        return {f"p{q}": None for q in PERCENTILES}
    got = np.percentile(values, PERCENTILES)
    return {f"p{q}": round(float(v), 4) for q, v in zip(PERCENTILES, got, strict=True)}


def _metric_name(live: LiveModel, wanted: str, notes: list[str]) -> str:
    supported = CLASSIFICATION if live.task == "classification" else REGRESSION
    if wanted in supported:
        return wanted
    fallback = supported[0]
    notes.append(
        f"performance.metric {wanted!r} cannot be computed from labels alone for a "
        f"{live.task} model; using {fallback} (online metrics: {', '.join(supported)})"
    )
    return fallback


def _labelled(pred: pa.Table, fb: pa.Table) -> tuple[np.ndarray, pa.Array | None]:
    """For each prediction row, the index of its label in the returned labels (-1: none); the
    latest feedback for a (request id, row) wins."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = pred.num_rows
    out = np.full(n, -1, dtype=np.int64)
    if not fb.num_rows or not n:
        return out, None
    order = np.argsort(_np(fb.column("ts")), kind="stable")
    fb = fb.take(pa.array(order))
    one_row = (
        not pc.any(pc.not_equal(fb.column("row"), 0)).as_py()
        and not pc.any(pc.not_equal(pred.column("row"), 0)).as_py()
    )
    if one_row:  # one-row requests: the request id is the key
        fkeys = fb.column("request_id").combine_chunks()
    else:
        fkeys = pc.binary_join_element_wise(
            fb.column("request_id"), fb.column("row").cast(pa.string()), "\x1f"
        ).combine_chunks()
    rev = fkeys[::-1]  # keep the last occurrence of each key
    first_in_rev = np.unique(
        np.asarray(pc.index_in(rev, value_set=pc.unique(rev))), return_index=True
    )[1]
    keep = np.sort(len(fkeys) - 1 - first_in_rev)
    fkeys = fkeys.take(pa.array(keep))
    labels = fb.column("label").combine_chunks().take(pa.array(keep))
    ids = fkeys if one_row else pc.unique(fb.column("request_id"))
    candidate = pc.is_in(pred.column("request_id"), value_set=ids)  # cheaper than index_in
    rows = np.flatnonzero(np.asarray(pc.fill_null(candidate, False)))
    if not len(rows):
        return out, labels
    sub = pred.select(["request_id", "row"]).take(pa.array(rows))
    if one_row:
        pkeys = sub.column("request_id")
    else:
        pkeys = pc.binary_join_element_wise(
            sub.column("request_id"), sub.column("row").cast(pa.string()), "\x1f"
        )
    found = pc.index_in(pkeys, value_set=fkeys)
    out[rows] = np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False))
    return out, labels


@dataclass
class _Scored:
    """Per prediction row: whether it is labelled, and codes (classes) or values (regression)."""

    labelled: np.ndarray  # bool
    y: np.ndarray  # label codes or values (meaningful where labelled)
    p: np.ndarray
    classes: list[str]


def _score_rows(pred: pa.Table, fb: pa.Table, live: LiveModel) -> _Scored:
    import numpy as np
    import pyarrow as pa

    idx, labels = _labelled(pred, fb)
    labelled = idx >= 0
    if live.task == "classification":
        pcodes, pvalues = _categorical(pred.column("prediction"))
        classes = [str(c) for c in live.classes]
        known = set(classes)
        classes += sorted({v for v in pvalues if v is not None and v not in known})
        y = np.full(pred.num_rows, -1, dtype=np.int64)
        if labels is not None and labelled.any():
            lcodes, lvalues = _categorical(labels)
            known = set(classes)
            classes += sorted({v for v in lvalues if v is not None and v not in known})
            y[labelled] = _recode(lcodes, lvalues, classes)[idx[labelled]]
        p = _recode(pcodes, pvalues, classes)
        labelled &= (y >= 0) & (p >= 0)
        return _Scored(labelled, y, p, classes)
    if not _is_numeric(pred.column("prediction")):
        return _Scored(np.zeros(pred.num_rows, bool), np.zeros(0), np.zeros(0), [])
    p = _np(pred.column("prediction"))
    y = np.full(pred.num_rows, math.nan)
    if labels is not None and labelled.any() and _is_numeric(labels):
        y[labelled] = _np(labels.take(pa.array(idx[labelled])))
    labelled &= ~np.isnan(y) & ~np.isnan(p)
    return _Scored(labelled, y, p, [])


def _estimate(s: _Scored, mask: np.ndarray, live: LiveModel, metric: str, conf: float) -> Estimate:
    rows = mask & s.labelled
    if live.task == "classification":
        return classification_estimate(s.y[rows], s.p[rows], len(s.classes), metric, conf)
    return regression_estimate(s.y[rows], s.p[rows], metric, conf)


@dataclass
class _Frame:
    """The log's columns as numpy, computed once for every check."""

    ts: np.ndarray
    in_window: np.ndarray
    version_codes: np.ndarray
    version_values: list[str | None]
    first: np.ndarray  # the first row of its request
    e_ts: np.ndarray
    e_in: np.ndarray
    status: np.ndarray  # of the errors in the window

    def version_mask(self, version: str | None) -> np.ndarray:
        import numpy as np

        if version not in self.version_values:
            return np.zeros(len(self.ts), bool)
        return self.version_codes == self.version_values.index(version)


def _frame(columns: LogColumns, window: Window) -> _Frame:
    import numpy as np

    pred, err = columns.predictions, columns.errors
    ts = _np(pred.column("ts")) if pred.num_rows else np.zeros(0)
    in_window = ts <= window.end
    if window.start is not None:
        in_window &= ts >= window.start
    if pred.num_rows:
        vcodes, vvalues = _categorical(pred.column("version"))
        first = np.asarray(pred.column("row").to_numpy()) == 0
        if "shadow" in set(pred.column("endpoint").unique().to_pylist()):  # issue 21
            # a shadow's copy of a request (mlops.serve.canary) is no request of its own
            first &= np.asarray(pred.column("endpoint").to_pylist(), dtype=object) != "shadow"
    else:
        vcodes, vvalues, first = np.zeros(0, np.int64), [], np.zeros(0, bool)
    e_ts = _np(err.column("ts")) if err.num_rows else np.zeros(0)
    e_in = e_ts <= window.end
    if window.start is not None:
        e_in &= e_ts >= window.start
    status = (
        np.asarray(err.column("status").to_numpy(zero_copy_only=False))[e_in]
        if err.num_rows
        else np.zeros(0)
    )
    return _Frame(ts, in_window, vcodes, vvalues, first, e_ts, e_in, status)


def analyse(
    columns: LogColumns,
    live: LiveModel,
    spec: MonitoringSpec,
    window: Window,
    *,
    env: str,
    previous: str | None = None,
) -> MonitorReport:
    """Run every check on the log (see the module docstring)."""
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
    _drift(report, live, spec, live_table, features, window)
    _quality(report, live, spec, live_table, features, err, f, requests, refused)
    scored = _score_rows(pred, fb, live) if pred.num_rows and fb.num_rows else None
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


def _drift(
    report: MonitorReport,
    live: LiveModel,
    spec: MonitoringSpec,
    live_table: pa.Table,
    features: list[str],
    window: Window,
) -> None:
    """Input and prediction drift, their p-values adjusted together: with default settings the
    chance of any drift breach on traffic like the reference's held-out rows is at most
    `monitoring.drift.alpha` (`mlops.data.calibration`)."""
    from mlops.data.drift import compare, correct

    n_live = live_table.num_rows
    ref, source = _prediction_reference(live)
    names: list[str] = []
    if ref is not None:
        names = [n for n in ("prediction", "confidence") if n in ref["columns"]]
        if "confidence" in names and live_table.column("confidence").null_count == n_live:
            names.remove("confidence")
    if n_live < spec.min_rows:
        report.drift_note = (
            f"{n_live} rows of {live.version} in the window; drift is judged from "
            f"monitoring.min_rows = {spec.min_rows}"
        )
    else:
        report.drift = compare(
            _chunks(live_table, features, live.reference),
            live.reference,
            spec.drift,
            columns=features,
            label=f"live inputs ({live.version}, {window.label}) vs training data",
            family=len(names),
            defer_correction=True,
        )
        if report.drift.missing_columns:
            report.notes.append(
                "features the log lacks: " + ", ".join(report.drift.missing_columns)
            )
        if live.excluded:
            report.notes.append(
                "not checked for drift (identifier or time columns): " + ", ".join(live.excluded)
            )
    if ref is None:
        report.prediction_note = "no reference for the predictions in the bundle"
    elif n_live < spec.min_rows:
        report.prediction_note = report.drift_note
    else:
        chunks = [
            _chunk(n, live_table.column(n), ref["columns"][n].get("dtype", "str")) for n in names
        ]
        report.prediction_drift = compare(
            chunks,
            ref,
            spec.drift,
            columns=names,
            label=f"predictions ({live.version}) vs {source}",
            family=len(features),
            defer_correction=True,
        )
        report.prediction_note = f"against {source}"
        unseen = report.prediction_drift.column("prediction").stats.get("unseen") or []
        if "prediction" in names and unseen:
            share = report.prediction_drift.column("prediction").stats.get("unseen_share", 0)
            report.notes.append(
                f"predicted classes {source} never had: {', '.join(map(str, unseen))} "
                f"({share:.1%} of live predictions; tested with the rest, not a breach alone)"
            )
    family = [r for r in (report.drift, report.prediction_drift) if r is not None]
    correct(family, spec.drift.correction, spec.drift.alpha)


def _quality(
    report: MonitorReport,
    live: LiveModel,
    spec: MonitoringSpec,
    live_table: pa.Table,
    features: list[str],
    err: pa.Table,
    f: _Frame,
    requests: int,
    refused: int,
) -> None:
    status = f.status
    schema_refused = int((status == 422).sum())
    malformed = int(((status >= 400) & (status < 500) & (status != 422)).sum())
    total = requests + refused
    rejected = schema_refused + malformed
    fields: dict[str, int] = {}
    if err.num_rows:
        for text in _mask(err.select(["fields"]), f.e_in).column("fields").to_pylist():
            if not text:
                continue
            try:
                for name, count in json.loads(text).items():
                    fields[str(name)] = fields.get(str(name), 0) + int(count)
            except (ValueError, TypeError, AttributeError):
                continue
    missing = {}
    n_live = live_table.num_rows
    ref_rows = max(int(live.reference.get("rows") or 0), 1)
    for name in features:
        col_name = FEATURE_PREFIX + name
        if col_name in live_table.column_names and n_live:
            ref_missing = (live.reference["columns"][name].get("missing") or 0) / ref_rows
            missing[name] = {
                "live": round(live_table.column(col_name).null_count / n_live, 6),
                "training": round(ref_missing, 6),
            }
    report.quality = {
        "requests": total,
        "rejected": rejected,
        "out_of_schema": schema_refused,
        "malformed": malformed,
        "rejected_share": round(rejected / total, 6) if total else 0.0,
        "max_rejected": spec.quality.max_rejected,
        "fields": dict(sorted(fields.items(), key=lambda kv: -kv[1])),
        "missing": missing,
        "judged": total >= spec.min_rows,
    }


def _performance(
    report: MonitorReport,
    live: LiveModel,
    spec: MonitoringSpec,
    scored: _Scored | None,
    f: _Frame,
    live_rows: np.ndarray,
    feedback_rows: int,
) -> None:
    notes: list[str] = []
    metric = _metric_name(live, spec.performance.metric, notes)
    report.notes.extend(notes)
    conf = spec.performance.confidence
    offline = live.metrics.get(metric)
    perf: dict[str, Any] = {
        "metric": metric,
        "offline": offline,
        "min": spec.performance.min,
        "max": spec.performance.max,
        "max_drop": spec.performance.max_drop,
        "min_labels": spec.performance.min_labels,
        "confidence": conf,
        "lower_is_better": metric in LOWER_IS_BETTER,
        "feedback_rows": feedback_rows,
    }
    live_est = Estimate(metric, None, None, None, 0, conf, note="no labelled rows")
    by_version: dict[str, Any] = {}
    comparison: Comparison | None = None
    if scored is not None:
        live_est = _estimate(scored, live_rows, live, metric, conf)
        for code, v in enumerate(f.version_values):
            if v is None or v == live.version:
                continue
            mask = f.version_codes == code
            if (mask & scored.labelled).any():
                by_version[v] = _estimate(scored, mask, live, metric, conf).to_dict()
        previous = report.previous
        if previous is not None and previous != live.version:
            prev_est = _estimate(scored, f.version_mask(previous), live, metric, conf)
            comparison = compare_estimates(
                live_est, prev_est, previous, spec.performance.min_labels, conf
            )
    perf["online"] = live_est.to_dict()
    perf["by_version"] = by_version
    if offline is not None and live_est.value is not None:
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        perf["drop"] = round(sign * (float(offline) - live_est.value), 6)
    perf["judged"] = live_est.labelled >= spec.performance.min_labels
    perf["previous"] = comparison.to_dict() if comparison else None
    report.performance = perf


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


def _js_rows(counts: np.ndarray, ref: np.ndarray) -> list[float | None]:
    """Jensen-Shannon distance (natural log) of each row of counts against reference counts."""
    import numpy as np

    out: list[float | None] = []
    r = ref / ref.sum() if ref.sum() else ref
    for row in counts:
        total = row.sum()
        if not total:
            out.append(None)
            continue
        q = row / total
        m = (r + q) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(r > 0, r * np.log(r / m), 0.0).sum()
            b = np.where(q > 0, q * np.log(q / m), 0.0).sum()
        out.append(round(float(math.sqrt(max(0.0, (a + b) / 2))), 4))
    return out


def _series(pred: pa.Table, f: _Frame, live: LiveModel, scored: _Scored | None) -> dict[str, Any]:
    """Per time bucket: traffic, refusals, errors, latency, online metric, drift per feature."""
    import numpy as np

    times = np.concatenate([f.ts[f.in_window], f.e_ts[f.e_in]])
    if not len(times):
        return {}
    edges, step = buckets(float(times.min()), float(times.max()))
    nb = len(edges) - 1

    def bucket_of(t: np.ndarray) -> np.ndarray:
        return np.clip(((t - edges[0]) // step).astype(np.int64), 0, nb - 1)

    w = f.in_window
    b = bucket_of(f.ts[w])
    eb = bucket_of(f.e_ts[f.e_in])
    first = f.first[w]
    series: dict[str, Any] = {
        "edges": edges,
        "step": step,
        "rows": np.bincount(b, minlength=nb).tolist(),
        "requests": np.bincount(b[first], minlength=nb).tolist(),
        "refused": np.bincount(eb[f.status < 500], minlength=nb).tolist(),
        "errors": np.bincount(eb[f.status >= 500], minlength=nb).tolist(),
    }
    if pred.num_rows:
        lat = _np(pred.column("latency_ms"))[w][first]
        lb = b[first]
        ok = ~np.isnan(lat)
        lat, lb = lat[ok], lb[ok]
        order = np.argsort(lb, kind="stable")  # the log is nearly in time order: cheap
        lat, lb = lat[order], lb[order]
        bounds = np.searchsorted(lb, np.arange(nb + 1))
        table: list[list[float | None]] = []
        for i in range(nb):
            seg = lat[bounds[i] : bounds[i + 1]]
            got = np.percentile(seg, PERCENTILES) if len(seg) else [None] * len(PERCENTILES)
            table.append([None if v is None else round(float(v), 4) for v in got])
        for j, q in enumerate(PERCENTILES):
            series[f"latency_p{q}"] = [row[j] for row in table]
    live_w = f.version_mask(live.version)[w]
    if scored is not None:
        lab = scored.labelled[w] & live_w
        tot = np.bincount(b[lab], minlength=nb)
        series["labelled"] = tot.tolist()
        if live.task == "classification":
            hits = np.bincount(b[lab & (scored.y == scored.p)[w]], minlength=nb)
            series["accuracy"] = [
                round(float(h / t), 4) if t else None for h, t in zip(hits, tot, strict=True)
            ]
        else:
            errs = np.abs(scored.y - scored.p)[w]
            sums = np.bincount(b[lab], weights=errs[lab], minlength=nb)
            series["mae"] = [
                round(float(x / t), 4) if t else None for x, t in zip(sums, tot, strict=True)
            ]
    series["drift_js"] = _drift_series(pred, w, live_w, b, nb, live)
    if live.task == "classification" and pred.num_rows:
        codes, values = _categorical(pred.column("prediction"))
        classes = [str(c) for c in live.classes] or sorted(v for v in values if v is not None)
        mapped = _recode(codes, values, classes)[w]
        ok = (mapped >= 0) & live_w
        k = len(classes)
        counts = np.bincount(b[ok] * k + mapped[ok], minlength=nb * k).reshape(nb, k)
        totals = counts.sum(axis=1)
        series["prediction_shares"] = {
            c: [round(float(counts[i, j] / totals[i]), 4) if totals[i] else None for i in range(nb)]
            for j, c in enumerate(classes)
        }
    return series


def _drift_series(
    pred: pa.Table, w: np.ndarray, live_w: np.ndarray, b: np.ndarray, nb: int, live: LiveModel
) -> dict[str, list[float | None]]:
    """Per feature and bucket: Jensen-Shannon distance to the training data on the reference's
    20 quantile bins (numbers) or its categories (text). A picture of when things moved; the
    verdict is the whole window's test."""
    import numpy as np

    out: dict[str, list[float | None]] = {}
    rows = np.flatnonzero(w)
    if len(rows) > SERIES_SAMPLE:  # shares per bucket: a regular sample draws the same picture
        keep = np.zeros(len(rows), bool)
        keep[:: math.ceil(len(rows) / SERIES_SAMPLE)] = True
        w = np.zeros_like(w)
        w[rows[keep]] = True
        b, live_w = b[keep], live_w[keep]
    for name in live.features:
        ref_col = live.reference["columns"].get(name)
        col_name = FEATURE_PREFIX + name
        if ref_col is None or col_name not in pred.column_names:
            continue
        col = pred.column(col_name)
        if ref_col.get("kind") == "numeric" and _is_numeric(col):
            hist = ref_col.get("histogram") or {}
            e = np.asarray(hist.get("edges") or [], dtype=float)
            if len(e) < 2:
                continue
            x = _np(col)[w]
            ok = ~np.isnan(x) & live_w
            # bin 0: below the first edge; len(e): above the last (the last edge is inside)
            bins = np.searchsorted(e, x[ok], side="left")
            bins[x[ok] == e[0]] = 1
            nbins = len(e) + 1
            counts = np.bincount(b[ok] * nbins + bins, minlength=nb * nbins).reshape(nb, nbins)
            ref = np.zeros(nbins)
            ref[1 : len(e)] = hist.get("counts") or np.zeros(len(e) - 1)
            out[name] = _js_rows(counts, ref)
        elif ref_col.get("kind") != "numeric":
            top = list((ref_col.get("top") or {}).items())
            keys = [str(k) for k, _ in top]
            codes, values = _categorical(col)
            mapped = _recode(codes, values, keys)[w]
            present = codes[w] >= 0
            mapped[mapped < 0] = len(keys)  # another value: the reference's "other"
            ok = present & live_w
            k = len(keys) + 1
            counts = np.bincount(b[ok] * k + mapped[ok], minlength=nb * k).reshape(nb, k)
            ref = np.array([float(v) for _, v in top] + [float(ref_col.get("other") or 0)])
            out[name] = _js_rows(counts, ref)
    return out
