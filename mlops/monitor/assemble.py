"""The report from per-chunk partials (`mlops.monitor.partials`), cached or computed.

`analyse_partials` is what `mlops.monitor.checks.analyse` runs when the report can be made
from partials (`partials.plan`); it returns None otherwise and the rows are analysed as before.
With and without the cache the report is the same, to the byte (tests/test_monitor_partials.py):
every figure comes from the merged counts either way. Differences from the row path, by
design: the drift-over-time picture counts every live row (the row path draws a regular sample
of 200,000), and a chunk's contribution is summed in chunk order.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.monitor import partials as P
from mlops.monitor.arrays import PERCENTILES, _Frame, _np
from mlops.monitor.partials_check import valid
from mlops.monitor.window import buckets

if TYPE_CHECKING:
    import numpy as np

    from mlops.config.models import MonitoringSpec
    from mlops.monitor.checks import LiveModel, MonitorReport
    from mlops.monitor.logdata import LogColumns
    from mlops.monitor.window import Window


def percentile_counts(values: Any, counts: Any) -> list[float]:
    """numpy's `percentile` (linear method) of the multiset {value: count} at PERCENTILES: the
    same order statistics and the same interpolation arithmetic as numpy."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    v = v[order]
    cum = np.cumsum(np.asarray(counts, dtype=np.int64)[order])
    n = int(cum[-1])
    q = np.true_divide(np.asarray(PERCENTILES, dtype=np.float64), 100)
    virtual = (n - 1) * q
    prev = np.floor(virtual)
    gamma = virtual - prev
    lo = np.clip(prev.astype(np.int64), 0, n - 1)
    hi = np.clip(lo + 1, 0, n - 1)
    a = v[np.searchsorted(cum, lo, side="right")]
    b = v[np.searchsorted(cum, hi, side="right")]
    diff = b - a
    out = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return out.tolist()


def _merge_counts(pairs: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """The packed (value, count) lists of `mlops.monitor.partials` merged."""
    import numpy as np

    vals = [P.unpack(v, "<f8") for v, _ in pairs]
    cnts = [P.unpack(c, "<i8") for _, c in pairs]
    if not sum(len(v) for v in vals):
        return np.zeros(0), np.zeros(0, np.int64)
    u, inv = np.unique(np.concatenate(vals), return_inverse=True)
    out = np.zeros(len(u), np.int64)
    np.add.at(out, inv, np.concatenate(cnts))
    return u, out


def _pct(pairs: list[list[str]]) -> list[float | None]:
    vals, cnts = _merge_counts(pairs)
    if not len(vals):
        return [None] * len(PERCENTILES)
    return [round(float(x), 4) for x in percentile_counts(vals, cnts)]


class Counted:
    """The live columns as `compare` reads them, from merged partials (what `inputs._drift`
    and `inputs._quality` ask of it)."""

    def __init__(self, parts: list[dict[str, Any]], n_live: int, method: str) -> None:
        self.parts = parts
        self.n_live = n_live
        self.method = method

    def nulls(self, name: str) -> int:
        got = [p["drift"].get(name) for p in self.parts]
        return sum(int(d.get("nulls", d.get("missing", 0))) for d in got if d)

    def chunks(self, names: list[str], reference: dict[str, Any]) -> list[Any]:
        import numpy as np
        import pandas as pd

        from mlops.data.columns import ColumnChunk
        from mlops.monitor import counted

        out: list[Any] = []
        for name in names:
            ref = reference["columns"][name]
            got = [p["drift"][name] for p in self.parts if name in p["drift"]]
            if not got:
                continue
            dtype = ref.get("dtype", "str")
            if "le" in got[0]:
                points = counted.points_for(ref)
                summaries = [
                    counted.Summary(
                        points,
                        np.asarray(d["le"], dtype=np.int64),
                        int(d["n"]),
                        int(d["missing"]),
                        int(d["infinite"]),
                        int(d["total"], 16),
                        int(d["total_sq"], 16),
                        math.inf if d["low"] is None else float(d["low"]),
                        -math.inf if d["high"] is None else float(d["high"]),
                    )
                    for d in got
                ]
                s = counted.merge(summaries, points)
                if not counted.plan(ref, self.method, s.n):
                    raise _RowsNeeded(name)
                out.append(
                    counted.CountedChunk(
                        name,
                        "numeric",
                        dtype,
                        self.n_live,
                        missing=s.missing,
                        infinite=s.infinite,
                        counted=counted.Counted(s),
                    )
                )
            else:
                merged: dict[str, int] = {}
                for d in got:
                    for v, c in d["counts"]:
                        merged[v] = merged.get(v, 0) + int(c)
                out.append(
                    ColumnChunk(
                        name,
                        "categorical",
                        dtype,
                        self.n_live,
                        missing=sum(int(d["missing"]) for d in got),
                        counts=pd.Series(list(merged.values()), index=list(merged), dtype="int64"),
                    )
                )
        return out


class _RowsNeeded(Exception):
    """A column whose drift needs the values after all (few live rows): use the row path."""


class Estimates:
    """Online metric estimates from merged confusion counts (what `performance._performance`
    asks of it)."""

    def __init__(self, parts: list[dict[str, Any]], classes: list[str], versions: list[Any]):
        self.classes = classes
        self.versions = versions
        self.by: dict[Any, dict[tuple[str, str], int]] = {}
        self.live: dict[tuple[str, str], int] = {}
        for p in parts:
            perf = p["perf"] or {}
            for v, rows in perf.get("versions", []):
                into = self.by.setdefault(v, {})
                for lab, pred, c in rows:
                    into[(lab, pred)] = into.get((lab, pred), 0) + int(c)
            for lab, pred, c in perf.get("live", []):
                self.live[(lab, pred)] = self.live.get((lab, pred), 0) + int(c)

    def has_labels(self, version: Any) -> bool:
        return bool(self.by.get(version))

    def estimate(self, version: Any, metric: str, conf: float) -> Any:
        import numpy as np

        from mlops.stats import classification_estimate

        cm = self.live if version is None else self.by.get(version, {})
        code = {c: i for i, c in enumerate(self.classes)}
        cells = sorted((code[lab], code[pred], c) for (lab, pred), c in cm.items())
        y = np.repeat([c[0] for c in cells], [c[2] for c in cells]).astype(np.int64)
        p = np.repeat([c[1] for c in cells], [c[2] for c in cells]).astype(np.int64)
        return classification_estimate(y, p, len(self.classes), metric, conf)


def analyse_partials(
    report: MonitorReport,
    columns: LogColumns,
    live: LiveModel,
    spec: MonitoringSpec,
    window: Window,
    cache: Path | None,
) -> MonitorReport | None:
    """Fill `report` from partials; None when the rows must be analysed instead."""
    import numpy as np

    pred, fb, err = columns.predictions, columns.feedback, columns.errors
    setup = P.plan(pred, live, spec)
    if setup is None:
        return None
    e_ts = _np(err.column("ts")) if err.num_rows else np.zeros(0)
    e_in = e_ts <= window.end
    if window.start is not None:
        e_in &= e_ts >= window.start
    # per chunk (no copy of the whole column): which rows are in the window, and their span
    chunks = pred.column("ts").chunks
    lengths = [len(c) for c in chunks]
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64).tolist()
    masks: list[np.ndarray | None] = []
    times: list[float] = []
    for c in chunks:
        x = _np(c)
        m = x <= window.end
        if window.start is not None:
            m &= x >= window.start
        if m.all():
            masks.append(None)
            times += [float(x.min()), float(x.max())] if len(x) else []
        else:
            masks.append(m)
            times += [float(x[m].min()), float(x[m].max())] if m.any() else []
    if not times:
        return None
    if e_in.any():
        times += [float(e_ts[e_in].min()), float(e_ts[e_in].max())]
    edges, step = buckets(min(times), max(times))
    setup.step = step
    setup.digest = P.digest(setup, live, spec.drift.method)
    store = P.PartialCache(cache) if cache is not None else None
    whole = [m is None for m in masks]

    def key_of(i: int) -> str | None:  # hashlib releases the GIL on large buffers
        if store is None or not whole[i]:
            return None
        return P.chunk_key(pred.slice(bounds[i], bounds[i + 1] - bounds[i])) + "-" + setup.digest

    # three threads: chunk hashing (hashlib), the feedback join (Arrow's hash kernels), and
    # numpy's counting and the cache's writes release the GIL
    with ThreadPoolExecutor(3) as pool:
        setup.fb_digest = P.table_digest(fb) if fb.num_rows and store else ""
        lvalues = _lvalues(store, setup, fb)
        # feedback the cache has not seen (or no cache): the join is needed, start it now
        joined = pool.submit(_join, pred, fb) if fb.num_rows and lvalues is None else None
        keys: list[str | None] = list(pool.map(key_of, range(len(lengths))))
        parts: list[dict[str, Any] | None] = []
        todo: list[int] = []  # chunks computed from their rows
        stale: list[int] = []  # cached chunks whose performance part other feedback gave
        for i, key in enumerate(keys):
            got = store.get(key) if store is not None and key is not None else None
            if store is not None and got is not None and not valid(got, setup):
                store.rejected += 1
                got = None
            if got is not None and not fb.num_rows:
                if got["perf"] is not None:  # the feedback is gone: no performance part
                    got["perf"] = None
                    stale.append(i)
            elif got is not None and (got["perf"] or {}).get("fb", "") != setup.fb_digest:
                stale.append(i)  # only the performance part is recomputed (below)
            parts.append(got)
            if got is None:
                todo.append(i)
        labels = None

        def one(i: int) -> tuple[dict[str, Any], Any]:
            a, b = bounds[i], bounds[i + 1]
            return P.compute_split(pred.slice(a, b - a), masks[i], setup)

        # (also when every chunk is cached but the feedback's label list is not)
        if joined is None and fb.num_rows and (todo or stale):
            joined = pool.submit(_join, pred, fb)
        split = list(pool.map(one, todo)) if len(todo) > 1 else [one(i) for i in todo]
        # the cached partials' performance parts: what does not depend on the labels now
        refresh = {i: P.perf_split(_chunk(pred, bounds, i), setup) for i in stale if fb.num_rows}
        if joined is not None:
            labels, lvalues = joined.result()
            if store is not None:
                pool.submit(store.put, "fb-" + setup.fb_digest, {"lvalues": lvalues})
        setup.lvalues = lvalues or []
        for i, (part, finish) in zip(todo, split, strict=True):
            a, b = bounds[i], bounds[i + 1]
            part["perf"] = finish(None if labels is None else labels[a:b])
            parts[i] = part
        for i, (b0, nbk, finish) in refresh.items():
            a, b = bounds[i], bounds[i + 1]
            cached = parts[i]
            assert cached is not None and labels is not None
            if (b0, nbk) == (cached["b0"], cached["nb"]):
                cached["perf"] = finish(labels[a:b])
            else:  # not the chunk it was computed from after all: from its rows
                part, full_finish = one(i)
                part["perf"] = full_finish(labels[a:b])
                parts[i] = part
        for i in sorted(set(todo) | set(stale)):  # written while the report is assembled
            key, kept = keys[i], parts[i]
            if store is not None and key is not None and kept is not None:
                pool.submit(store.put, key, kept)
        if store is not None:
            keep = {k for k in keys if k} | ({"fb-" + setup.fb_digest} if fb.num_rows else set())
            pool.submit(store.prune, keep)
        full = [p for p in parts if p is not None]
        try:
            _fill(report, full, setup, live, spec, window, pred, fb, err, e_ts, e_in, edges, step)
        except _RowsNeeded:
            return None
    return report


def _chunk(pred: Any, bounds: list[int], i: int) -> Any:
    return pred.slice(bounds[i], bounds[i + 1] - bounds[i])


def _lvalues(store: P.PartialCache | None, setup: P.Setup, fb: Any) -> list[str] | None:
    if store is None or not fb.num_rows:
        return None
    got = store.get("fb-" + setup.fb_digest)
    vals = (got or {}).get("lvalues")
    if isinstance(vals, list) and all(isinstance(v, str) for v in vals):
        return vals
    return None


def _join(pred: Any, fb: Any) -> tuple[np.ndarray, list[str]]:
    """For each prediction row the code of its label (latest feedback wins) into the label
    texts (-1: none)."""
    import numpy as np

    from mlops.monitor.arrays import _categorical
    from mlops.monitor.performance import _labelled

    idx, labels = _labelled(pred, fb)
    if labels is None:
        return np.full(pred.num_rows, -1, np.int64), []
    lcodes, lvalues = _categorical(labels)
    keep = [v for v in lvalues if v is not None]
    where = {v: i for i, v in enumerate(keep)}
    remap = np.array([where[v] if v is not None else -1 for v in lvalues] + [-1], np.int64)
    out = np.full(pred.num_rows, -1, np.int64)
    has = idx >= 0
    out[has] = remap[lcodes[idx[has]]]
    return out, keep


def _fill(
    report: MonitorReport,
    parts: list[dict[str, Any]],
    setup: P.Setup,
    live: LiveModel,
    spec: MonitoringSpec,
    window: Window,
    pred: Any,
    fb: Any,
    err: Any,
    e_ts: np.ndarray,
    e_in: np.ndarray,
    edges: list[float],
    step: float,
) -> None:
    import numpy as np

    from mlops.monitor.inputs import _drift, _quality
    from mlops.monitor.performance import _performance

    requests = sum(p["requests"] for p in parts)
    refused = int(e_in.sum())
    order: list[Any] = []
    win: dict[Any, int] = {}
    for p in parts:
        for v, c in p["versions"]:
            win[v] = win.get(v, 0) + int(c)
        for v in p["all_versions"]:
            if v not in order:
                order.append(v)
    named = [None, *[v for v in order if v is not None]]
    by_version = {str(v): win[v] for v in named if win.get(v)}
    rows = sum(p["rows"] for p in parts)
    n_live = sum(p["live_rows"] for p in parts)
    firsts = [p["first"] for p in parts if p["first"] is not None]
    lasts = [p["last"] for p in parts if p["last"] is not None]
    report.traffic = {
        "requests": requests + refused,
        "answered": requests,
        "rows": rows,
        "live_rows": n_live,
        "by_version": by_version,
        "first": min(firsts) if firsts else None,
        "last": max(lasts) if lasts else None,
    }
    if rows and not n_live:
        report.notes.append(
            f"no rows of the live version {live.version} in the window (only "
            f"{', '.join(by_version)}): drift and performance are not judged"
        )
    features = [c for c in live.features if c in live.reference["columns"]]
    counted = Counted(parts, n_live, spec.drift.method)
    empty = pred.slice(0, 0)
    _drift(report, live, spec, empty, features, window, counted=counted)
    status = (
        np.asarray(err.column("status").to_numpy(zero_copy_only=False))[e_in]
        if err.num_rows
        else np.zeros(0)
    )
    z = np.zeros(0)
    f = _Frame(z, z.astype(bool), z.astype(np.int64), [], z.astype(bool), e_ts, e_in, status)
    _quality(report, live, spec, empty, features, err, f, requests, refused, counted=counted)
    pvalues = sorted({v for p in parts for v in p["pvalues"]} - set(setup.classes))
    classes = list(setup.classes) + pvalues
    classes += sorted(set(setup.lvalues) - set(classes))
    estimates = Estimates(parts, classes, order) if fb.num_rows else None
    _performance(report, live, spec, None, f, None, fb.num_rows, estimates=estimates)
    e_lat = _np(err.column("latency_ms"))[e_in] if err.num_rows else np.zeros(0)
    e_lat = e_lat[~np.isnan(e_lat)]
    lat_pairs = [b for p in parts for b in p["series"]["latency"]] + [P._counts(e_lat)]
    total = requests + refused
    server_errors = int((status >= 500).sum())
    got = _pct(lat_pairs)
    report.health = {
        "requests": total,
        "server_errors": server_errors,
        "error_rate": round(server_errors / total, 6) if total else 0.0,
        "max_error_rate": spec.health.max_error_rate,
        "latency_ms": {f"p{q}": v for q, v in zip(PERCENTILES, got, strict=True)},
        "max_latency_p99_ms": spec.health.max_latency_p99_ms,
        "judged": total >= spec.min_rows,
    }
    report.series = _series(parts, setup, live, pred, fb, e_ts, e_in, status, edges, step)
    from mlops.monitor.checks import _judge

    _judge(report, spec)


def _series(
    parts: list[dict[str, Any]],
    setup: P.Setup,
    live: LiveModel,
    pred: Any,
    fb: Any,
    e_ts: np.ndarray,
    e_in: np.ndarray,
    status: np.ndarray,
    edges: list[float],
    step: float,
) -> dict[str, Any]:
    import numpy as np

    from mlops.monitor.series import _js_rows

    nb = len(edges) - 1
    s0 = round(edges[0] / step)

    def place(p: dict[str, Any]) -> np.ndarray:
        return np.clip(p["b0"] + np.arange(p["nb"]) - s0, 0, nb - 1)

    def add(key: str) -> np.ndarray:
        out = np.zeros(nb, np.int64)
        for p in parts:
            np.add.at(out, place(p), np.asarray(p["series"][key], np.int64))
        return out

    eb = np.clip(((e_ts[e_in] - edges[0]) // step).astype(np.int64), 0, nb - 1)
    series: dict[str, Any] = {
        "edges": edges,
        "step": step,
        "rows": add("rows").tolist(),
        "requests": add("requests").tolist(),
        "refused": np.bincount(eb[status < 500], minlength=nb).tolist(),
        "errors": np.bincount(eb[status >= 500], minlength=nb).tolist(),
    }
    lat: list[list[list[str]]] = [[] for _ in range(nb)]
    for p in parts:
        for i, pair in zip(place(p).tolist(), p["series"]["latency"], strict=True):
            lat[i].append(pair)
    table = [_pct(x) for x in lat]
    for j, q in enumerate(PERCENTILES):
        series[f"latency_p{q}"] = [row[j] for row in table]
    if fb.num_rows:
        tot = np.zeros(nb, np.int64)
        hits = np.zeros(nb, np.int64)
        for p in parts:
            np.add.at(tot, place(p), np.asarray(p["perf"]["labelled"], np.int64))
            np.add.at(hits, place(p), np.asarray(p["perf"]["hits"], np.int64))
        series["labelled"] = tot.tolist()
        series["accuracy"] = [
            round(float(h / t), 4) if t else None for h, t in zip(hits, tot, strict=True)
        ]
    drift_js: dict[str, list[float | None]] = {}
    for name in live.features:
        ref_col = live.reference["columns"].get(name)
        if ref_col is None or not any(name in p["series"]["js"] for p in parts):
            continue
        got = [p for p in parts if name in p["series"]["js"]]
        if ref_col.get("kind") == "numeric":
            hist = ref_col.get("histogram") or {}
            e = hist.get("edges") or []
            nbins = len(e) + 1
            ref = np.zeros(nbins)
            ref[1 : len(e)] = hist.get("counts") or np.zeros(len(e) - 1)
        else:
            top = list((ref_col.get("top") or {}).items())
            nbins = len(top) + 1
            ref = np.array([float(v) for _, v in top] + [float(ref_col.get("other") or 0)])
        counts = np.zeros((nb, nbins), np.int64)
        for p in got:
            got_counts = np.asarray(p["series"]["js"][name], np.int64).reshape(-1, nbins)
            np.add.at(counts, place(p), got_counts)
        drift_js[name] = _js_rows(counts, ref)
    series["drift_js"] = drift_js
    k = len(setup.classes)
    cls = np.zeros((nb, k), np.int64)
    for p in parts:
        np.add.at(cls, place(p), np.asarray(p["series"]["classes"], np.int64).reshape(-1, k))
    totals = cls.sum(axis=1)
    series["prediction_shares"] = {
        c: [round(float(cls[i, j] / totals[i]), 4) if totals[i] else None for i in range(nb)]
        for j, c in enumerate(setup.classes)
    }
    return series
