"""Incremental monitoring: what each chunk of the log contributes to a report, in a form that
adds up exactly, cached beside the log's index.

A report over a million predictions reads the same rows again on every scheduled run. Most of
what it computes from them are counts, and counts of a union are the sums of the counts of its
parts. So the predictions are cut into chunks (the Arrow chunks the reader produced: one per
indexed log file or shipped segment), and for each chunk a *partial* is computed:

- traffic: rows, requests, rows per version, first and last time in the window;
- drift: per numeric feature (and the top-class probability) the counts at the reference's
  points and the exact integer sums of `mlops.monitor.counted`; per text feature (and the
  predicted class) the count of each value; missing values;
- series: per time bucket (numbered from the epoch, `floor(ts / step)`, so buckets of chunks
  line up) rows, requests, each distinct latency with its count (percentiles, of a bucket and
  of the whole window, are then exact order statistics), predicted classes, the feature
  histograms the drift-over-time picture is drawn from;
- performance (depends on the feedback too): the confusion counts (label, prediction) per
  version, and per bucket the labelled rows and hits.

Partials add up (`merge`) into exactly what the rows together give; `mlops.monitor.assemble`
turns the sum into the report. A partial depends on the chunk's rows (a SHA-256 of its schema,
row count, times and request ids), the live version, the reference it is counted against, the
bucket step and, for performance, the feedback's content: all of that is its cache key. A chunk
the window cuts is computed from its rows inside the window and not cached. The cache
(`PartialCache`) is one JSON file per chunk, written atomically, each carrying its format, key
and a SHA-256 of its contents; a file that is not exactly that (truncated, edited, another
format, too large) is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.monitor.arrays import _categorical, _is_numeric, _np
from mlops.monitor.logdata import FEATURE_PREFIX

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from mlops.config.models import MonitoringSpec
    from mlops.monitor.checks import LiveModel

FORMAT = 1
MAX_FILE_BYTES = 32 << 20  # a partial larger than this is neither written nor read
CACHE_DIR = "monitor-partials"


# ---- what a partial depends on --------------------------------------------------------------


@dataclass
class Numeric:
    """A numeric column counted at its reference's points."""

    name: str  # the report's name (feature or "confidence")
    column: str  # the log's column
    points: np.ndarray
    edge_cum: np.ndarray  # edge_cum[j]: histogram edges among points[:j]
    first_edge: float


@dataclass
class Setup:
    """Everything a partial depends on besides the rows (hashed into its cache key)."""

    version: str
    numeric: list[Numeric]
    text: list[tuple[str, str, list[str]]]  # name, log column, the reference's top values
    prediction: bool  # the predicted class is compared (prediction drift)
    classes: list[str]
    step: float
    digest: str = ""
    fb_digest: str = ""  # the feedback's content ("" when there is none)
    lvalues: list[str] = field(default_factory=list)


def plan(table: pa.Table, live: LiveModel, spec: MonitoringSpec) -> Setup | None:
    """The setup when the whole report can be made from partials, else None (the caller then
    computes from rows as before: regression models, drift methods that need the live values
    (`wasserstein`), a shadow endpoint, classes unknown to the bundle)."""
    import numpy as np

    from mlops.data.columns import kind_of
    from mlops.monitor import counted

    if live.task != "classification" or not live.classes or not table.num_rows:
        return None
    names = table.column_names
    if "endpoint" in names and "shadow" in set(table.column("endpoint").unique().to_pylist()):
        return None
    if "prediction" not in names or _is_numeric(table.column("prediction")):
        return None
    numeric: list[Numeric] = []
    text: list[tuple[str, str, list[str]]] = []
    cols = live.reference["columns"]
    refs = [(n, FEATURE_PREFIX + n, cols[n]) for n in live.features if n in cols]
    pref = live.prediction_reference
    if pref is not None:
        if (pref["columns"].get("prediction") or {}).get("kind") == "numeric":
            return None
        if "confidence" in pref["columns"] and "confidence" in names:
            refs.append(("confidence", "confidence", pref["columns"]["confidence"]))
    for name, col, ref in refs:
        if col not in names:  # a feature the log lacks: the report names it
            continue
        is_num = ref.get("kind") == "numeric"
        typed = kind_of(ref.get("dtype", "str")) == "numeric"
        if not is_num == typed == _is_numeric(table.column(col)):
            return None  # a column logged as another kind than its reference: the rows decide
        if is_num:
            if not counted.plan(ref, spec.drift.method):
                return None
            points = counted.points_for(ref)
            edges = np.asarray((ref.get("histogram") or {}).get("edges") or [], dtype=float)
            if len(edges) < 2:
                return None
            is_edge = np.isin(points, edges)
            edge_cum = np.concatenate([[0], np.cumsum(is_edge)]).astype(np.int64)
            numeric.append(Numeric(name, col, points, edge_cum, float(edges[0])))
        else:
            text.append((name, col, [str(k) for k in (ref.get("top") or {})]))
    setup = Setup(
        live.version, numeric, text, pref is not None, [str(c) for c in live.classes], 0.0
    )
    return setup


def digest(setup: Setup, live: LiveModel, method: str) -> str:
    """The part of the cache key that is not the rows."""
    import orjson

    blob = orjson.dumps(
        {
            "format": FORMAT,
            "version": setup.version,
            "reference": live.reference,
            "prediction_reference": live.prediction_reference,
            "classes": setup.classes,
            "step": setup.step,
            "method": method,
        },
        option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY,
        default=str,
    )
    return hashlib.sha256(blob).hexdigest()


def chunk_key(chunk: pa.Table) -> str:
    """A SHA-256 of a chunk's identity: its schema (types may change when another host's log
    joins), row count, times and request ids (the buffers behind them, with the slice's offset).
    The other columns are not hashed (that would cost as much as the analysis): a log rewritten
    with the same times and request ids but other values would reuse the old partial. The log
    is append-only and its index checks the file's inode and size, so that only happens by
    editing the log in place."""
    import pyarrow as pa

    h = hashlib.sha256()
    h.update(str(chunk.schema).encode())
    h.update(str(chunk.num_rows).encode())
    for name in ("ts", "request_id"):
        if name not in chunk.column_names:
            continue
        col = chunk.column(name)
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        h.update(f"{name}:{arr.offset}:{len(arr)}".encode())
        for buf in arr.buffers():
            if buf is not None:
                h.update(memoryview(buf))
    return h.hexdigest()


def table_digest(table: pa.Table) -> str:
    """A SHA-256 of a whole (small) table's contents: the feedback."""
    import pyarrow as pa

    h = hashlib.sha256()
    h.update(str(table.schema).encode())
    h.update(str(table.num_rows).encode())
    for col in table.columns:
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        h.update(f"{arr.offset}:{len(arr)}".encode())
        for buf in arr.buffers():  # a dictionary column: its indices and its dictionary
            if buf is not None:
                h.update(memoryview(buf))
        if pa.types.is_dictionary(arr.type):
            for buf in arr.dictionary.buffers():
                if buf is not None:
                    h.update(memoryview(buf))
    return h.hexdigest()


# ---- one chunk's partial, from its rows --------------------------------------------------------


def _counts(keys: np.ndarray) -> list[str]:
    """Each distinct value and its count, packed (`pack`)."""
    import numpy as np

    values, counts = np.unique(keys, return_counts=True)
    return [pack(values, "<f8"), pack(counts, "<i8")]


def pack(a: np.ndarray, dtype: str) -> str:
    """An array as base64 of its little-endian bytes (thousands of numbers parse as one string)."""
    import base64

    import numpy as np

    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def unpack(text: Any, dtype: str) -> np.ndarray:
    """The array `pack` wrote; ValueError when `text` is not one."""
    import base64
    import binascii

    import numpy as np

    if not isinstance(text, str):
        raise ValueError("not packed")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None
    if len(raw) % 8:
        raise ValueError("not whole numbers of 8 bytes")
    return np.frombuffer(raw, dtype=dtype)


def compute(
    chunk: pa.Table,
    window: np.ndarray | None,
    setup: Setup,
    labels: np.ndarray | None,
) -> dict[str, Any]:
    """The partial of one chunk (see the module docstring). `window`: which rows are in the
    report's window (None: all); `labels`: for each row its label's text code into
    `setup.lvalues` (-1: none), None when there is no feedback."""
    part, finish = compute_split(chunk, window, setup)
    part["perf"] = finish(labels)
    return part


def compute_split(
    chunk: pa.Table, window: np.ndarray | None, setup: Setup
) -> tuple[dict[str, Any], Any]:
    """`compute` in two steps: the partial without its performance part, and a function of
    the labels that gives that part (the feedback join can run meanwhile)."""
    import numpy as np

    n = chunk.num_rows
    w = np.ones(n, bool) if window is None else window
    ts = _np(chunk.column("ts"))
    vcodes, vvalues = _categorical(chunk.column("version"))
    first = np.asarray(chunk.column("row").to_numpy(zero_copy_only=False)) == 0
    live_code = vvalues.index(setup.version) if setup.version in vvalues else -2
    live = vcodes == live_code
    lw = live & w
    wv = np.bincount(vcodes[w] + 1, minlength=len(vvalues) + 1)
    used = np.bincount(vcodes[vcodes >= 0], minlength=len(vvalues)).tolist()
    seen = [v for v, c in zip(vvalues, used, strict=True) if c]
    part: dict[str, Any] = {
        "rows": int(w.sum()),
        "requests": int((first & w).sum()),
        "live_rows": int(lw.sum()),
        "versions": [[v, int(c)] for v, c in zip([None, *vvalues], wv.tolist(), strict=True) if c],
        "all_versions": seen + ([None] if (vcodes < 0).any() else []),
        "first": float(ts[w].min()) if w.any() else None,
        "last": float(ts[w].max()) if w.any() else None,
    }
    part["b0"], nbk, b = _bucketing(ts[w], setup.step)
    part["nb"] = nbk
    first_w = first[w]
    s: dict[str, Any] = {
        "rows": np.bincount(b, minlength=nbk).tolist(),
        "requests": np.bincount(b[first_w], minlength=nbk).tolist(),
    }
    # latency of the requests in the window: each distinct value with its count
    lat = _np(chunk.column("latency_ms"))[w][first_w]
    lb = b[first_w]
    ok = ~np.isnan(lat)
    lat, lb = lat[ok], lb[ok]
    per_bucket = []  # (the health section's percentiles merge every bucket's counts)
    for i in range(nbk):
        per_bucket.append(_counts(lat[lb == i]))
    s["latency"] = per_bucket
    # predictions: classes (all rows: the report's class list), drift counts, shares per bucket
    pcodes, pvalues = _categorical(chunk.column("prediction"))
    present = np.bincount(pcodes[pcodes >= 0], minlength=len(pvalues))
    part["pvalues"] = [
        v for v, c in zip(pvalues, present.tolist(), strict=True) if c and v is not None
    ]
    where = {v: i for i, v in enumerate(setup.classes)}
    lookup = np.array([where.get(v, -1) if v is not None else -1 for v in pvalues] + [-1])
    mapped = lookup[pcodes[w]] if n else np.zeros(0, np.int64)
    live_wsel = live[w]
    k = len(setup.classes)
    okp = (mapped >= 0) & live_wsel
    s["classes"] = np.bincount(b[okp] * k + mapped[okp], minlength=nbk * k).reshape(nbk, k).tolist()
    drift: dict[str, Any] = {}
    if setup.prediction:
        lp = pcodes[lw]
        counts = np.bincount(lp[lp >= 0], minlength=len(pvalues)).tolist()
        drift["prediction"] = {
            "rows": int(lw.sum()),
            "missing": int((lp < 0).sum()),
            "counts": [[v, c] for v, c in zip(pvalues, counts, strict=True) if c and v is not None],
        }
    js: dict[str, Any] = {}
    for num in setup.numeric:
        col = chunk.column(num.column)
        x = _np(col)
        drift[num.name], js_counts = _numeric(x[lw] if not lw.all() else x, num, b[live_wsel], nbk)
        nulls = col.null_count if lw.all() else col.filter(_pa_mask(lw)).null_count
        drift[num.name]["nulls"] = int(nulls)
        if num.name != "confidence":
            js[num.name] = js_counts
    for name, colname, top in setup.text:
        codes, values = _categorical(chunk.column(colname))
        lc = codes[lw]
        counts = np.bincount(lc[lc >= 0], minlength=len(values)).tolist()
        drift[name] = {
            "rows": int(lw.sum()),
            "missing": int((lc < 0).sum()),
            "counts": [[v, c] for v, c in zip(values, counts, strict=True) if c and v is not None],
        }
        wtop = {v: i for i, v in enumerate(top)}
        look = np.array([wtop.get(v, len(top)) if v is not None else -1 for v in values] + [-1])
        m = look[codes[w]] if n else np.zeros(0, np.int64)
        okc = (m >= 0) & live_wsel
        kk = len(top) + 1
        js[name] = np.bincount(b[okc] * kk + m[okc], minlength=nbk * kk).reshape(nbk, kk).tolist()
    part["drift"] = drift
    s["js"] = js
    part["series"] = s
    part["perf"] = None

    def finish(labels: np.ndarray | None) -> dict[str, Any] | None:
        return _perf(labels, pcodes, pvalues, vcodes, vvalues, live_code, w, b, nbk, setup)

    return part, finish


def _bucketing(wts: np.ndarray, step: float) -> tuple[int, int, np.ndarray]:
    """The absolute number of the first bucket of these (in-window) times, the number of
    buckets they span, and each time's bucket counted from the first."""
    import numpy as np

    anchor = math.floor(float(wts.min()) / step) * step if len(wts) else 0.0
    rel = ((wts - anchor) // step).astype(np.int64) if len(wts) else np.zeros(0, np.int64)
    b0 = int(rel.min()) if len(rel) else 0
    nbk = int(rel.max()) - b0 + 1 if len(rel) else 0
    return round(anchor / step) + b0, nbk, rel - b0


def perf_split(chunk: pa.Table, setup: Setup) -> tuple[int, int, Any]:
    """Only the performance part of a whole chunk's partial (the window holds all its rows):
    what a cached partial needs when the feedback changed since it was computed. Gives the
    chunk's first bucket and bucket count (to check against the cached partial's) and a
    function of the labels that gives the part. Reads only the times, versions and
    predictions, with the same operations as `compute_split` (so the same figures)."""
    import numpy as np

    ts = _np(chunk.column("ts"))
    vcodes, vvalues = _categorical(chunk.column("version"))
    live_code = vvalues.index(setup.version) if setup.version in vvalues else -2
    pcodes, pvalues = _categorical(chunk.column("prediction"))
    b0, nbk, b = _bucketing(ts, setup.step)
    w = np.ones(chunk.num_rows, bool)

    def finish(labels: np.ndarray | None) -> dict[str, Any] | None:
        return _perf(labels, pcodes, pvalues, vcodes, vvalues, live_code, w, b, nbk, setup)

    return b0, nbk, finish


def _pa_mask(mask: np.ndarray) -> Any:
    import pyarrow as pa

    return pa.array(mask)


def _numeric(
    x: np.ndarray, num: Numeric, b: np.ndarray, nbk: int
) -> tuple[dict[str, Any], list[list[int]]]:
    """Counted summary of live values (`mlops.monitor.counted.summarise`) and their histogram
    on the reference's edges per bucket, from one search of the points."""
    import numpy as np

    from mlops.monitor.counted import _exact_sums

    finite_mask = np.isfinite(x)
    all_finite = bool(finite_mask.all())
    finite = x if all_finite else x[finite_mask]
    nan_mask = np.isnan(x)
    bins = np.searchsorted(num.points, finite, side="left")
    le = np.cumsum(np.bincount(bins, minlength=len(num.points) + 1)[: len(num.points)])
    total, total_sq = _exact_sums(finite)
    summary = {
        "le": le.astype(np.int64).tolist(),
        "n": len(finite),
        "missing": int(nan_mask.sum()),
        "infinite": int(len(x) - len(finite) - nan_mask.sum()),
        "total": hex(total),
        "total_sq": hex(total_sq),
        "low": float(finite.min()) if len(finite) else None,
        "high": float(finite.max()) if len(finite) else None,
    }
    # histogram bins as the drift series draws them: 0 below the first edge, len(edges) above
    # the last (the first edge itself in bin 1); infinite values at the ends
    nedges = int(num.edge_cum[-1])
    hb = np.empty(len(x), np.int64)
    if all_finite:
        hb = num.edge_cum[bins]
    else:
        hb[finite_mask] = num.edge_cum[bins]
        hb[x == np.inf] = nedges
        hb[x == -np.inf] = 0
    hb[x == num.first_edge] = 1
    keep = ~nan_mask
    nbins = nedges + 1
    counts = np.bincount(b[keep] * nbins + hb[keep], minlength=nbk * nbins)
    return summary, counts.reshape(nbk, nbins).tolist()


def _perf(
    labels: np.ndarray | None,
    pcodes: np.ndarray,
    pvalues: list[str | None],
    vcodes: np.ndarray,
    vvalues: list[str | None],
    live_code: int,
    w: np.ndarray,
    b: np.ndarray,
    nbk: int,
    setup: Setup,
) -> dict[str, Any] | None:
    """Confusion counts per version (every row: the report compares versions over the whole
    log) and of the live version in the window; labelled rows and hits per bucket."""
    import numpy as np

    if labels is None:
        return None
    nl = len(setup.lvalues)
    ok = (labels >= 0) & (pcodes >= 0)
    pair = labels * max(len(pvalues), 1) + pcodes
    out: dict[str, Any] = {"fb": setup.fb_digest, "versions": []}

    def confusion(mask: np.ndarray) -> list[list[Any]]:
        got = np.bincount(pair[mask], minlength=nl * max(len(pvalues), 1))
        rows = []
        for code in np.flatnonzero(got).tolist():
            lab, pred = divmod(code, max(len(pvalues), 1))
            rows.append([setup.lvalues[lab], pvalues[pred], int(got[code])])
        return rows

    for code, v in enumerate(vvalues):
        mask = ok & (vcodes == code)
        if mask.any():
            out["versions"].append([v, confusion(mask)])
    lwok = ok & (vcodes == live_code) & w
    out["live"] = confusion(lwok)
    inw = lwok[w]
    # a hit: the label's text is the prediction's (label codes mapped onto prediction codes)
    where = {v: i for i, v in enumerate(pvalues) if v is not None}
    onto = np.array([where.get(v, -2) for v in setup.lvalues] + [-3], np.int64)
    hit = ok & (onto[labels] == pcodes)
    out["labelled"] = np.bincount(b[inw], minlength=nbk).tolist()
    out["hits"] = np.bincount(b[inw & hit[w]], minlength=nbk).tolist()
    return out


# ---- the cache -------------------------------------------------------------------------------


class PartialCache:
    """Partials on disk: `<dir>/<chunk key>-<setup digest>.json`, each verified when read."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.hits = 0
        self.written = 0
        self.rejected = 0

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The partial stored for `key`, or None when absent or not trustworthy."""
        path = self._path(key)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                self.rejected += 1
                return None
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            self.rejected += 1
            return None
        head, _, body = raw.partition(b"\n")
        try:
            meta = json.loads(head)
            ok = (
                isinstance(meta, dict)
                and meta.get("format") == FORMAT
                and meta.get("key") == key
                and meta.get("bytes") == len(body)
                and meta.get("sha256") == hashlib.sha256(body).hexdigest()
            )
            partial = _loads(body) if ok else None
        except ValueError:
            partial = None
        if not isinstance(partial, dict):
            self.rejected += 1
            return None
        self.hits += 1
        return partial

    def put(self, key: str, partial: dict[str, Any]) -> None:
        """Store a partial atomically (temp file + rename); a directory that cannot be written
        only costs speed."""
        body = json.dumps(partial, separators=(",", ":")).encode()
        if len(body) > MAX_FILE_BYTES - 1024:
            return
        digest = hashlib.sha256(body).hexdigest()
        meta = {"format": FORMAT, "key": key, "bytes": len(body), "sha256": digest}
        head = json.dumps(meta).encode()
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(head + b"\n" + body)
            os.replace(tmp, path)
            self.written += 1
        except OSError:
            with _suppress():
                tmp.unlink()

    def prune(self, keep: set[str]) -> None:
        """Remove the partials of chunks no longer in the log (and stale temporary files)."""
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return
        for p in entries:
            if p.suffix == ".json" and p.stem not in keep and not p.name.startswith("."):
                with _suppress():
                    p.unlink()


def _loads(body: bytes) -> Any:
    """orjson (several times faster), json where orjson refuses (Infinity, NaN)."""
    import orjson

    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def _suppress() -> Any:
    import contextlib

    return contextlib.suppress(OSError)
