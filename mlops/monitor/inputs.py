"""The inputs and predictions of live traffic: drift against the bundle's references, and
data quality (refused requests, missing values)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlops.monitor.arrays import _categorical, _is_numeric, _mask, _np, _text
from mlops.monitor.logdata import FEATURE_PREFIX

if TYPE_CHECKING:
    import pyarrow as pa

    from mlops.config.models import MonitoringSpec
    from mlops.monitor.arrays import _Frame
    from mlops.monitor.checks import LiveModel, MonitorReport
    from mlops.monitor.window import Window


def _chunk(
    name: str,
    col: Any,
    ref_dtype: str,
    ref_col: dict[str, Any] | None = None,
    method: str = "auto",
) -> Any:
    """A `ColumnChunk` (what `compare` reads) of one logged column: a numeric column whose
    drift method needs only counts (`mlops.monitor.counted`) is counted chunk by chunk, any
    other is sorted whole."""
    import numpy as np
    import pandas as pd

    from mlops.data.columns import ColumnChunk, kind_of, summarize

    rows = len(col)
    if kind_of(ref_dtype) == "numeric" or _is_numeric(col):
        if _is_numeric(col):
            got = counted_chunk(name, col, ref_dtype, ref_col, method) if ref_col else None
            if got is not None:
                return got
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


def counted_chunk(
    name: str, col: Any, ref_dtype: str, ref_col: dict[str, Any], method: str
) -> Any | None:
    """The column as counts at the reference's points, one chunk (segment) at a time, when
    its drift method needs nothing else (`mlops.monitor.counted.plan`); None otherwise."""
    import pyarrow as pa

    from mlops.monitor import counted

    if not counted.plan(ref_col, method):
        return None
    points = counted.points_for(ref_col)
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    summary = counted.merge([counted.summarise(_np(c), points) for c in chunks], points)
    if not counted.plan(ref_col, method, summary.n):
        return None
    return counted.CountedChunk(
        name,
        "numeric",
        ref_dtype,
        len(col),
        missing=summary.missing,
        infinite=summary.infinite,
        counted=counted.Counted(summary),
    )


def _chunks(
    table: pa.Table, names: list[str], reference: dict[str, Any], method: str = "auto"
) -> list[Any]:
    from concurrent.futures import ThreadPoolExecutor

    from mlops.data.columns import THREADS

    jobs = [
        (
            n,
            table.column(FEATURE_PREFIX + n),
            reference["columns"][n].get("dtype", "str"),
            reference["columns"][n],
            method,
        )
        for n in names
        if FEATURE_PREFIX + n in table.column_names
    ]
    if table.num_rows >= 50_000 and len(jobs) > 1:
        with ThreadPoolExecutor(THREADS) as pool:  # numpy sorts release the GIL
            return list(pool.map(lambda j: _chunk(*j), jobs))
    return [_chunk(*j) for j in jobs]


NO_PREDICTION_REFERENCE = (
    "prediction drift not judged: this bundle stores no predictions of held-out rows (it was "
    "built before the evaluate stage recorded them); `mlops run` rebuilds it with them"
)


def _prediction_reference(live: LiveModel) -> tuple[dict[str, Any] | None, str]:
    """The predictions' reference profile: the evaluation set's predictions (held-out rows).
    Never the training labels: an overfit model predicts its training rows' classes more often
    than live rows', so that comparison breaches on normal traffic."""
    if live.prediction_reference:
        return live.prediction_reference, "the evaluation set's predictions"
    return None, ""


def _drift(
    report: MonitorReport,
    live: LiveModel,
    spec: MonitoringSpec,
    live_table: pa.Table,
    features: list[str],
    window: Window,
    counted: Any = None,
) -> None:
    """Input and prediction drift, their p-values adjusted together: with default settings the
    chance of any drift breach on traffic like the reference's held-out rows is at most
    `monitoring.drift.alpha` (`mlops.data.calibration`). `counted` (`mlops.monitor.assemble`)
    gives the live columns' chunks from merged partials instead of `live_table`'s rows."""
    from mlops.data.drift import compare, correct

    n_live = live_table.num_rows if counted is None else counted.n_live
    ref, source = _prediction_reference(live)
    names: list[str] = []
    if ref is not None:
        names = [n for n in ("prediction", "confidence") if n in ref["columns"]]
        nulls = (
            counted.nulls("confidence")
            if counted is not None
            else live_table.column("confidence").null_count
        )
        if "confidence" in names and nulls == n_live:
            names.remove("confidence")
    if n_live < spec.min_rows:
        report.drift_note = (
            f"{n_live} rows of {live.version} in the window; drift is judged from "
            f"monitoring.min_rows = {spec.min_rows}"
        )
    else:
        report.drift = compare(
            _chunks(live_table, features, live.reference, spec.drift.method)
            if counted is None
            else counted.chunks(features, live.reference),
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
        report.prediction_note = NO_PREDICTION_REFERENCE
    elif n_live < spec.min_rows:
        report.prediction_note = report.drift_note
    else:
        chunks = (
            [
                _chunk(
                    n,
                    live_table.column(n),
                    ref["columns"][n].get("dtype", "str"),
                    ref["columns"][n],
                    spec.drift.method,
                )
                for n in names
            ]
            if counted is None
            else counted.chunks(names, ref)
        )
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
    counted: Any = None,
) -> None:
    status = f.status
    schema_refused = int((status == 422).sum())
    malformed = int(((status >= 400) & (status < 500) & (status != 422)).sum())
    total = requests + refused
    rejected = schema_refused + malformed
    fields: dict[str, int] = {}
    if err.num_rows:
        import pyarrow.compute as pc

        # each distinct text parsed once (refusals of one kind repeat the same fields)
        texts = _mask(err.select(["fields"]), f.e_in).column("fields")
        for item in pc.value_counts(texts).to_pylist():
            text, times = item["values"], item["counts"]
            if not text:
                continue
            try:
                for name, count in json.loads(text).items():
                    fields[str(name)] = fields.get(str(name), 0) + int(count) * times
            except (ValueError, TypeError, AttributeError):
                continue
    missing = {}
    n_live = live_table.num_rows if counted is None else counted.n_live
    ref_rows = max(int(live.reference.get("rows") or 0), 1)
    for name in features:
        col_name = FEATURE_PREFIX + name
        if col_name in live_table.column_names and n_live:
            ref_missing = (live.reference["columns"][name].get("missing") or 0) / ref_rows
            nulls = (
                live_table.column(col_name).null_count if counted is None else counted.nulls(name)
            )
            missing[name] = {
                "live": round(nulls / n_live, 6),
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
