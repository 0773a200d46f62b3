"""Series over time buckets for the report's plots: traffic, refusals, errors, latency, the
online metric, prediction shares and drift per feature (`mlops.monitor.checks.analyse`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlops.monitor.arrays import (
    PERCENTILES,
    _categorical,
    _is_numeric,
    _np,
    _recode,
)
from mlops.monitor.logdata import FEATURE_PREFIX
from mlops.monitor.window import buckets

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from mlops.monitor.arrays import _Frame
    from mlops.monitor.checks import LiveModel
    from mlops.monitor.performance import _Scored

SERIES_SAMPLE = 200_000  # rows drawn for the drift-over-time picture of a large window


def _js_rows(counts: np.ndarray, ref: np.ndarray) -> list[float | None]:
    """Jensen-Shannon distance (natural log, SciPy's, as `mlops.data.drift.jensenshannon`) of
    each row of counts against reference counts; None for a row without counts."""
    import numpy as np
    from scipy.spatial import distance

    counts = np.asarray(counts, dtype="float64")
    if not len(counts):
        return []
    ref = np.asarray(ref, dtype="float64")
    if not ref.sum():  # nothing to compare with
        return [None] * len(counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        got = distance.jensenshannon(counts, np.broadcast_to(ref, counts.shape), axis=1)
    return [
        None if not total or not math.isfinite(v) else round(float(v), 4)
        for v, total in zip(got.tolist(), counts.sum(axis=1).tolist(), strict=True)
    ]


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
    sel = slice(None) if w.all() else w  # the whole log in the window: views, not copies
    b = bucket_of(f.ts[sel])
    eb = bucket_of(f.e_ts[f.e_in])
    first = f.first[sel]
    series: dict[str, Any] = {
        "edges": edges,
        "step": step,
        "rows": np.bincount(b, minlength=nb).tolist(),
        "requests": np.bincount(b[first], minlength=nb).tolist(),
        "refused": np.bincount(eb[f.status < 500], minlength=nb).tolist(),
        "errors": np.bincount(eb[f.status >= 500], minlength=nb).tolist(),
    }
    if pred.num_rows:
        lat = _np(pred.column("latency_ms"))[sel][first]
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
    live_w = f.version_mask(live.version)[sel]
    if scored is not None:
        lab = scored.labelled[sel] & live_w
        tot = np.bincount(b[lab], minlength=nb)
        series["labelled"] = tot.tolist()
        if live.task == "classification":
            hits = np.bincount(b[lab & (scored.y == scored.p)[sel]], minlength=nb)
            series["accuracy"] = [
                round(float(h / t), 4) if t else None for h, t in zip(hits, tot, strict=True)
            ]
        else:
            errs = np.abs(scored.y - scored.p)[sel]
            sums = np.bincount(b[lab], weights=errs[lab], minlength=nb)
            series["mae"] = [
                round(float(x / t), 4) if t else None for x, t in zip(sums, tot, strict=True)
            ]
    series["drift_js"] = _drift_series(pred, w, live_w, b, nb, live)
    if live.task == "classification" and pred.num_rows:
        codes, values = _categorical(pred.column("prediction"))
        classes = [str(c) for c in live.classes] or sorted(v for v in values if v is not None)
        mapped = _recode(codes, values, classes)[sel]
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
    import pyarrow as pa

    out: dict[str, list[float | None]] = {}
    rows = np.flatnonzero(w)
    if len(rows) > SERIES_SAMPLE:  # shares per bucket: a regular sample draws the same picture
        keep = np.zeros(len(rows), bool)
        keep[:: math.ceil(len(rows) / SERIES_SAMPLE)] = True
        rows = rows[keep]
        b, live_w = b[keep], live_w[keep]
    taken = pa.array(rows)  # only the sampled rows of each column are converted

    def column(name: str) -> Any:
        col = pred.column(name)
        return col if len(rows) == len(col) else col.take(taken)

    for name in live.features:
        ref_col = live.reference["columns"].get(name)
        col_name = FEATURE_PREFIX + name
        if ref_col is None or col_name not in pred.column_names:
            continue
        col = column(col_name)
        if ref_col.get("kind") == "numeric" and _is_numeric(col):
            hist = ref_col.get("histogram") or {}
            e = np.asarray(hist.get("edges") or [], dtype=float)
            if len(e) < 2:
                continue
            x = _np(col)
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
            mapped = _recode(codes, values, keys)
            present = codes >= 0
            mapped[mapped < 0] = len(keys)  # another value: the reference's "other"
            ok = present & live_w
            k = len(keys) + 1
            counts = np.bincount(b[ok] * k + mapped[ok], minlength=nb * k).reshape(nb, k)
            ref = np.array([float(v) for _, v in top] + [float(ref_col.get("other") or 0)])
            out[name] = _js_rows(counts, ref)
    return out
