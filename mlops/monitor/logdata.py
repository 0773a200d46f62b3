"""The prediction log as columns: parsed once, kept in an incremental columnar index.

`mlops serve` writes JSON Lines (`mlops.serve.log`; format in docs/architecture.md, "Prediction
log"). Parsing JSON costs a few microseconds per line in Python, so a log of a million one-row
requests takes seconds to read; monitoring reads the same log again on every scheduled run. The
log is append-only (a file is only ever extended, then closed and eventually deleted), so what
was parsed once stays valid: for each log file the parsed columns are stored as Arrow IPC files
under `<log dir>/.index/`, with the byte offset they cover and the file's inode. A later read
parses only the bytes appended since, and reads the rest from the index (memory-mapped).

Three tables come out:

- `predictions`, one row per predicted row: `ts`, `request_id`, `row` (position in the
  request), `n` (rows in the request), `version`, `endpoint`, `latency_ms` (of the request),
  `prediction`, `confidence` (the highest class probability, when logged), and each input
  feature as `in.<name>` (float64 for numbers, dictionary-encoded text otherwise);
- `feedback`, one row per labelled row: `ts`, `request_id`, `row`, `label`;
- `errors`, one row per refused or failed request: `ts`, `request_id`, `endpoint`, `status`,
  `error`, `version`, `latency_ms`, `fields` (JSON: problems per input field).

Robustness: a line that is not a JSON object, or an entry whose fields have the wrong shape (a
list of another length than `n`, a `ts` that is not a number), is skipped and counted; a last
line without its newline (being written) is left for the next read; an unreadable file is
noted. An index that does not match its log file (another inode, a shorter file, another
format) is rebuilt. An index that cannot be written (read-only directory) only costs speed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.serve.log import log_files

if TYPE_CHECKING:
    import pyarrow as pa

INDEX_DIR = ".index"
FORMAT = 1
PARALLEL_BYTES = 24 << 20  # parse in two processes when at least this much is new
PIECE_BYTES = 8 << 20  # a work unit of the parallel parse
FEATURE_PREFIX = "in."


def _loads() -> Callable[[bytes], Any]:
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover - orjson comes with the serve extra
        return json.loads


# ---- parsing ---------------------------------------------------------------------------------


@dataclass
class Parsed:
    """The entries of one stretch of a log file, as Arrow tables, and what could not be read."""

    predictions: pa.Table
    feedback: pa.Table
    errors: pa.Table
    lines: int = 0
    bad: int = 0  # not a JSON object, or an entry of the wrong shape
    unknown: int = 0  # a JSON object of another kind

    @property
    def ts_range(self) -> tuple[float | None, float | None]:
        import pyarrow.compute as pc

        lo, hi = None, None
        for t in (self.predictions, self.feedback, self.errors):
            if t.num_rows:
                mm = pc.min_max(t.column("ts"))
                a, b = mm["min"].as_py(), mm["max"].as_py()
                lo = a if lo is None else min(lo, a)
                hi = b if hi is None else max(hi, b)
        return lo, hi


def _number(v: Any) -> float:
    f = float(v)
    if not math.isfinite(f):
        raise ValueError("not a finite number")
    return f


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str | int | float | bool):
        raise TypeError("not a scalar")
    return str(v)


def _column(values: list[Any], numeric_ok: bool = True) -> pa.Array:
    """An Arrow array from logged scalars: numbers as float64 (ints kept for class labels),
    text dictionary-encoded; mixed or odd values become text."""
    import pyarrow as pa

    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, ValueError):
        arr = None
    if arr is not None and pa.types.is_null(arr.type):
        return arr
    if arr is not None and numeric_ok and pa.types.is_floating(arr.type):
        return arr.cast(pa.float64())
    if arr is not None and numeric_ok and pa.types.is_integer(arr.type):
        return arr.cast(pa.int64())
    if arr is not None and pa.types.is_string(arr.type):
        return arr.dictionary_encode()
    text = []
    for v in values:
        if v is None or isinstance(v, str):
            text.append(v)
        elif isinstance(v, int | float | bool):
            text.append(str(v))
        else:
            text.append(json.dumps(v, sort_keys=True, default=str)[:200])
    return pa.array(text, pa.string()).dictionary_encode()


class _Malformed(Exception):
    """An entry of the wrong shape in a batch: the batch is checked entry by entry instead."""


def _chain(lists: list[list[Any]]) -> list[Any]:
    import itertools

    return list(itertools.chain.from_iterable(lists))


def _strings(values: list[Any]) -> pa.Array:
    import pyarrow as pa

    try:
        return pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise _Malformed(str(exc)) from None


def _floats(values: list[Any], finite: bool = False) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(values, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
        raise _Malformed(str(exc)) from None
    if finite and len(arr) and not pc.all(pc.is_finite(arr)).as_py():
        raise _Malformed("not a finite number")
    return arr


def _predictions_fast(entries: list[dict[str, Any]]) -> pa.Table:
    """One batch of prediction entries as a row-level table; `_Malformed` on any bad entry.

    Column by column (list comprehensions and Arrow conversions) rather than entry by entry:
    several times faster than checking each entry in Python."""
    import numpy as np
    import pyarrow as pa

    preds = [e.get("predictions") for e in entries]
    if set(map(type, preds)) - {list}:
        raise _Malformed("predictions")
    ns = list(map(len, preds))
    if 0 in ns:
        raise _Malformed("empty predictions")
    declared = [e.get("n") for e in entries]
    if any(d is not None and d != n for d, n in zip(declared, ns, strict=True)):
        raise _Malformed("n")
    total = sum(ns)
    single = total == len(entries)
    ins = [e.get("inputs") or {} for e in entries]
    if set(map(type, ins)) - {dict}:
        raise _Malformed("inputs")
    names: dict[str, None] = {}
    for keys in {tuple(d) for d in ins}:
        names.update(dict.fromkeys(keys))
    take = None
    if not single:
        take = pa.array(np.repeat(np.arange(len(entries)), ns))

    def spread(arr: pa.Array) -> pa.Array:
        return arr if take is None else arr.take(take)

    cols: dict[str, Any] = {
        "ts": spread(_floats([e.get("ts") for e in entries], finite=True)),
        "request_id": spread(_strings([e.get("request_id") for e in entries])),
    }
    if single:
        cols["row"] = pa.array(np.zeros(total, dtype=np.int32))
        cols["n"] = pa.array(np.ones(total, dtype=np.int32))
    else:
        counts = np.asarray(ns)
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        cols["row"] = pa.array((np.arange(total) - starts).astype(np.int32))
        cols["n"] = pa.array(np.repeat(counts, counts).astype(np.int32))
    cols["version"] = spread(_strings([e.get("version") for e in entries]).dictionary_encode())
    cols["endpoint"] = spread(_strings([e.get("endpoint") for e in entries]).dictionary_encode())
    lat = [e.get("latency_ms") for e in entries]
    cols["latency_ms"] = spread(_floats(lat, finite=any(v is not None for v in lat)))
    cols["prediction"] = _column(_chain(preds))
    probs = [e.get("probabilities") for e in entries]
    try:
        if set(map(type, probs)) - {list} or list(map(len, probs)) != ns:
            raise TypeError
        conf: list[Any] = [max(p) if p else None for p in _chain(probs)]
        cols["confidence"] = _floats(conf)
    except (TypeError, ValueError, _Malformed):
        conf = _chain([_confidence(p, n) for p, n in zip(probs, ns, strict=True)])
        cols["confidence"] = pa.array(conf, pa.float64())
    for name in names:
        lists = [d.get(name) for d in ins]
        if set(map(type, lists)) - {list} or list(map(len, lists)) != ns:
            if any(v is not None and (type(v) is not list) for v in lists):
                raise _Malformed(f"inputs.{name}")
            lists = [v if v is not None else [None] * n for v, n in zip(lists, ns, strict=True)]
            if list(map(len, lists)) != ns:
                raise _Malformed(f"inputs.{name}")
        arr = _column(_chain(lists))
        if pa.types.is_integer(arr.type):
            arr = arr.cast(pa.float64())
        cols[FEATURE_PREFIX + name] = arr
    return pa.table(cols)


def _confidence(p: Any, n: int) -> list[float | None]:
    """The highest probability of each row, or None where the entry has none usable."""
    if type(p) is not list or len(p) != n:
        return [None] * n
    out: list[float | None] = []
    for row in p:
        try:
            v = float(max(row)) if row else None
        except (TypeError, ValueError):
            v = None
        out.append(v if v is None or math.isfinite(v) else None)
    return out


def _prediction_ok(e: dict[str, Any]) -> bool:
    """The careful check of one prediction entry (used when its batch is malformed)."""
    try:
        preds = e["predictions"]
        if type(preds) is not list or not preds:
            return False
        n = len(preds)
        if e.get("n") is not None and e["n"] != n:
            return False  # the request said another number of rows than it predicted
        inputs = e.get("inputs") or {}
        if type(inputs) is not dict:
            return False
        for v in inputs.values():
            if v is not None and (type(v) is not list or len(v) != n):
                return False
        _number(e.get("ts"))
        for key in ("request_id", "version", "endpoint"):
            if not isinstance(e.get(key), str | None):
                return False
        if e.get("latency_ms") is not None:
            _number(e["latency_ms"])
        return True
    except (KeyError, TypeError, ValueError, OverflowError):
        return False


def _feedback_table(entries: list[dict[str, Any]]) -> tuple[pa.Table, int]:
    import pyarrow as pa

    good = [
        e for e in entries if type(e.get("labels")) is list and isinstance(e.get("request_id"), str)
    ]
    bad = len(entries) - len(good)
    ts = []
    keep = []
    for e in good:
        try:
            ts.append(_number(e.get("ts")))
            keep.append(e)
        except (TypeError, ValueError, OverflowError):
            bad += 1
    counts = [len(e["labels"]) for e in keep]
    rows = [r for k in counts for r in range(k)]
    table = pa.table(
        {
            "ts": pa.array([t for t, k in zip(ts, counts, strict=True) for _ in range(k)],
                           pa.float64()),
            "request_id": pa.array(
                [e["request_id"] for e, k in zip(keep, counts, strict=True) for _ in range(k)],
                pa.string(),
            ),
            "row": pa.array(rows, pa.int32()),
            "label": _column(_chain([e["labels"] for e in keep])),
        }
    )  # fmt: skip
    return table, bad


def _errors_table(entries: list[dict[str, Any]]) -> tuple[pa.Table, int]:
    import pyarrow as pa

    keys = ("ts", "request_id", "endpoint", "status", "error", "version", "latency_ms")
    cols: dict[str, list[Any]] = {k: [] for k in (*keys, "fields")}
    bad = 0
    for e in entries:
        try:
            lat = e.get("latency_ms")
            row = (
                _number(e.get("ts")),
                _text(e.get("request_id")),
                _text(e.get("endpoint")),
                int(e.get("status") or 0),
                _text(e.get("error")),
                _text(e.get("version")),
                None if lat is None else _number(lat),
            )
        except (TypeError, ValueError, OverflowError):
            bad += 1
            continue
        for key, value in zip(keys, row, strict=True):
            cols[key].append(value)
        fields = e.get("fields")
        cols["fields"].append(json.dumps(fields) if isinstance(fields, dict) else None)
    types = {
        "ts": pa.float64(),
        "status": pa.int32(),
        "latency_ms": pa.float64(),
    }
    table = pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in cols.items()})
    return table, bad


def parse_bytes(data: bytes | memoryview) -> Parsed:
    """Parse complete JSON lines (the caller cuts at the last newline) into tables."""
    import gc

    # millions of live dicts and lists would make the cyclic GC rescan them again and again
    # (JSON objects cannot form cycles): collection is paused while parsing
    paused = gc.isenabled()
    gc.disable()
    try:
        return _parse(data)
    finally:
        if paused:
            gc.enable()


def _parse(data: bytes | memoryview) -> Parsed:
    data = bytes(data)
    fast = _parse_arrow(data)
    return fast if fast is not None else _parse_objects(data)


def _value_type(values: list[Any]) -> pa.DataType | None:
    import pyarrow as pa

    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return None
    if kinds <= {float, int} and float in kinds:
        return pa.float64()
    if kinds == {int}:
        return pa.int64()
    if kinds == {str}:
        return pa.string()
    raise _Malformed("mixed or unusual values")


def _schema(data: bytes) -> tuple[pa.Schema, dict[str, pa.DataType]] | None:
    """An explicit schema for Arrow's JSON reader, from the first prediction lines."""
    import pyarrow as pa

    loads = _loads()
    features: dict[str, pa.DataType | None] = {}
    pred_type = None
    pos = 0
    for _ in range(50):
        at = data.find(b'"kind":"prediction"', pos)
        if at < 0:
            break
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        end = len(data) if end < 0 else end
        pos = end
        try:
            e = loads(data[start:end])
            for name, values in (e.get("inputs") or {}).items():
                if features.get(name) is None:
                    features[name] = _value_type(values)
            if pred_type is None:
                pred_type = _value_type(e.get("predictions") or [])
        except (ValueError, TypeError, AttributeError, _Malformed):
            return None
        if pred_type is not None and all(t is not None for t in features.values()):
            break
    if pred_type is None:
        if b'"kind":"prediction"' in data:
            return None
        pred_type = pa.string() if b'"labels":["' in data else pa.float64()
    types = {k: (v if v is not None else pa.float64()) for k, v in features.items()}
    inputs = pa.struct([(k, pa.list_(t)) for k, t in types.items()])
    schema = pa.schema(
        [
            ("kind", pa.string()),
            ("ts", pa.float64()),
            ("request_id", pa.string()),
            ("version", pa.string()),
            ("endpoint", pa.string()),
            ("latency_ms", pa.float64()),
            ("n", pa.int64()),
            ("inputs", inputs),
            ("predictions", pa.list_(pred_type)),
            ("probabilities", pa.list_(pa.list_(pa.float64()))),
            ("labels", pa.list_(pred_type)),
        ]
    )
    return schema, types


def _parse_arrow(data: bytes) -> Parsed | None:
    """Arrow's JSON reader with an explicit schema (columns straight from the bytes, no Python
    objects per entry). None when anything is unusual: the caller parses entry by entry."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    if not data.strip():
        return None
    try:
        found = _schema(data)
        if found is None:
            return None
        schema, types = found
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(use_threads=False, block_size=8 << 20),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowException, _Malformed, ValueError):
        return None
    kind = table.column("kind")
    is_pred = pc.fill_null(pc.equal(kind, "prediction"), False)
    is_fb = pc.fill_null(pc.equal(kind, "feedback"), False)
    is_err = pc.fill_null(pc.equal(kind, "error"), False)
    pred = table.filter(is_pred)
    ns = pc.fill_null(pc.list_value_length(pred.column("predictions")), 0)
    declared = pred.column("n")
    checks = [
        pc.greater(ns, 0),
        pc.is_finite(pc.fill_null(pred.column("ts"), np.nan)),
        pc.or_(pc.is_null(declared), pc.equal(declared, ns.cast(pa.int64()))),
    ]
    inputs = pred.column("inputs").combine_chunks()
    for name in types:
        lengths = pc.list_value_length(inputs.field(name))
        checks.append(pc.or_(pc.is_null(lengths), pc.equal(lengths, ns)))
    lat = pred.column("latency_ms")
    checks.append(pc.or_(pc.is_null(lat), pc.is_finite(pc.fill_null(lat, 0.0))))
    if not all(pc.all(pc.fill_null(c, False)).as_py() is not False for c in checks):
        return None  # an entry of the wrong shape: the careful path counts it
    counts = np.asarray(ns.to_numpy(zero_copy_only=False), dtype=np.int64)
    total = int(counts.sum())
    take = None if total == pred.num_rows else pa.array(np.repeat(np.arange(len(counts)), counts))

    def spread(arr: Any) -> Any:
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        return arr if take is None else arr.take(take)

    starts = np.repeat(np.cumsum(counts) - counts, counts)
    cols: dict[str, Any] = {
        "ts": spread(pred.column("ts")),
        "request_id": spread(pred.column("request_id")),
        "row": pa.array((np.arange(total) - starts).astype(np.int32)),
        "n": pa.array(np.repeat(counts, counts).astype(np.int32)),
        "version": spread(pred.column("version")).dictionary_encode(),
        "endpoint": spread(pred.column("endpoint")).dictionary_encode(),
        "latency_ms": spread(lat),
    }
    values = pred.column("predictions").combine_chunks().flatten()
    cols["prediction"] = values.dictionary_encode() if pa.types.is_string(values.type) else values
    cols["confidence"] = _max_probability(pred.column("probabilities").combine_chunks(), counts)
    for name, t in types.items():
        field_lists = inputs.field(name)
        if field_lists.null_count:
            filled = pc.if_else(pc.is_null(field_lists), _null_lists(counts, t), field_lists)
        else:
            filled = field_lists
        flat = filled.flatten()
        cols[FEATURE_PREFIX + name] = flat.dictionary_encode() if pa.types.is_string(t) else flat
    predictions = pa.table(cols)
    fb = table.filter(is_fb)
    label_lists = fb.column("labels").combine_chunks()
    fb_counts = np.asarray(
        pc.fill_null(pc.list_value_length(label_lists), 0).to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
    fb_take = pa.array(np.repeat(np.arange(len(fb_counts)), fb_counts))
    fb_starts = np.repeat(np.cumsum(fb_counts) - fb_counts, fb_counts)
    fb_ok = pc.and_(
        pc.is_valid(fb.column("request_id")),
        pc.is_finite(pc.fill_null(fb.column("ts"), np.nan)),
    )
    if pc.all(fb_ok).as_py() is False:
        return None
    labels = label_lists.flatten()
    feedback = pa.table(
        {
            "ts": fb.column("ts").combine_chunks().take(fb_take),
            "request_id": fb.column("request_id").combine_chunks().take(fb_take),
            "row": pa.array((np.arange(int(fb_counts.sum())) - fb_starts).astype(np.int32)),
            "label": labels.dictionary_encode() if pa.types.is_string(labels.type) else labels,
        }
    )
    n_err = pc.sum(is_err).as_py() or 0
    errors, err_bad = _errors_table(_error_entries(data) if n_err else [])
    known = pred.num_rows + fb.num_rows + n_err
    return Parsed(predictions, feedback, errors, table.num_rows, err_bad, table.num_rows - known)


def _null_lists(counts: Any, t: pa.DataType) -> pa.Array:
    """One list of `count` nulls per entry (a feature an entry did not log)."""
    import numpy as np
    import pyarrow as pa

    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.nulls(int(offsets[-1]), t))


def _max_probability(lists: pa.Array, counts: Any) -> pa.Array:
    """Per predicted row, its highest class probability (null where none was logged)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    total = int(np.sum(counts))
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    if not np.array_equal(lengths, counts):  # some entries without probabilities
        return pa.nulls(total, pa.float64())
    rows = lists.flatten()
    if len(rows) == 0:
        return pa.nulls(total, pa.float64())
    values = pc.fill_null(rows.flatten(), -np.inf).to_numpy(zero_copy_only=False)
    row_len = pc.fill_null(pc.list_value_length(rows), 0).to_numpy(zero_copy_only=False)
    if (row_len == 0).any():
        return pa.nulls(total, pa.float64())
    starts = np.concatenate(([0], np.cumsum(row_len)[:-1]))
    return pa.array(np.maximum.reduceat(values, starts))


def _error_entries(data: bytes) -> list[dict[str, Any]]:
    loads = _loads()
    out = []
    for line in data.split(b"\n"):
        if b'"error"' in line:
            try:
                e = loads(line)
            except ValueError:
                continue
            if type(e) is dict and e.get("kind") == "error":
                out.append(e)
    return out


def _parse_objects(data: bytes) -> Parsed:
    """Entry by entry (orjson): every line that can be read is kept, the rest counted."""
    loads = _loads()
    preds: list[dict[str, Any]] = []
    feedback: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    lines = bad = unknown = 0
    for line in bytes(data).split(b"\n"):
        if not line or line.isspace():
            continue
        lines += 1
        try:
            e = loads(line)
        except ValueError:
            bad += 1
            continue
        kind = e.get("kind") if type(e) is dict else None
        if kind == "prediction":
            preds.append(e)
        elif kind == "feedback":
            feedback.append(e)
        elif kind == "error":
            errors.append(e)
        elif type(e) is dict:
            unknown += 1
        else:
            bad += 1
    try:
        predictions = _predictions_fast(preds)
    except _Malformed:
        good = [e for e in preds if _prediction_ok(e)]
        bad += len(preds) - len(good)
        try:
            predictions = _predictions_fast(good)
        except _Malformed:  # pragma: no cover - the careful check should have caught it
            bad += len(good)
            predictions = _predictions_fast([])
    fb, fb_bad = _feedback_table(feedback)
    err, err_bad = _errors_table(errors)
    return Parsed(predictions, fb, err, lines, bad + fb_bad + err_bad, unknown)


def _parse_region(path: str, start: int, end: int) -> Parsed:
    """Parse bytes [start, end) of a log file (a process-pool work unit)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    return parse_bytes(data)


# ---- combining tables ------------------------------------------------------------------------


def concat(tables: list[pa.Table]) -> pa.Table:
    """Concatenate tables whose columns may differ (missing columns become nulls) and whose
    types may differ (number in one, text in another: the column becomes text)."""
    import pyarrow as pa

    tables = [t for t in tables if t is not None]
    if not tables:
        return pa.table({})
    if len(tables) == 1:
        return tables[0]
    kinds: dict[str, set[str]] = {}
    dicts: set[str] = set()  # text columns dictionary-encoded in some table
    for t in tables:
        for f in t.schema:
            kinds.setdefault(f.name, set()).add(_kind(f.type))
            if pa.types.is_dictionary(f.type):
                dicts.add(f.name)
    fixed = []
    for t in tables:
        cols = {}
        for name in kinds:
            if name not in t.column_names:
                continue
            col = t.column(name)
            kind = _kind(col.type)
            want = _unify(kinds[name])
            plain = kind == "text" and not pa.types.is_dictionary(col.type)
            if want != kind or (plain and name in dicts):
                col = _as(col, want)
            cols[name] = col
        fixed.append(pa.table(cols))
    return pa.concat_tables(fixed, promote_options="default")


def _kind(t: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_null(t):
        return "null"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_integer(t):
        return "int"
    return "text"


def _unify(kinds: set[str]) -> str:
    kinds = kinds - {"null"}
    if not kinds:
        return "null"
    if kinds == {"int"}:
        return "int"
    if kinds <= {"int", "float"}:
        return "float"
    return "text"


def _as(col: Any, kind: str) -> Any:
    import pyarrow as pa

    if kind == "float":
        return col.cast(pa.float64())
    if kind == "int":
        return col.cast(pa.int64())
    if kind == "null":
        return col
    if pa.types.is_dictionary(col.type):
        return col
    if not pa.types.is_string(col.type):
        col = col.cast(pa.string())
    return col.dictionary_encode()  # text is dictionary-encoded everywhere


# ---- the index -------------------------------------------------------------------------------

TABLES = ("predictions", "feedback", "errors")


def _index_paths(index: Path, log: Path) -> dict[str, Path]:
    out = {t: index / f"{log.name}.{t}.arrow" for t in TABLES}
    out["meta"] = index / f"{log.name}.json"
    return out


def _read_index(index: Path, log: Path, st: os.stat_result) -> tuple[dict, Parsed] | None:
    import pyarrow as pa

    paths = _index_paths(index, log)
    try:
        meta = json.loads(paths["meta"].read_text(encoding="utf-8"))
        if (
            meta.get("format") != FORMAT
            or meta.get("inode") != st.st_ino
            or not 0 <= int(meta.get("offset", -1)) <= st.st_size
        ):
            return None
        tables = {}
        for t in TABLES:
            with pa.memory_map(str(paths[t])) as source:
                tables[t] = pa.ipc.open_file(source).read_all()
    except (OSError, ValueError, TypeError, pa.ArrowException):
        return None
    parsed = Parsed(
        tables["predictions"],
        tables["feedback"],
        tables["errors"],
        int(meta.get("lines", 0)),
        int(meta.get("bad", 0)),
        int(meta.get("unknown", 0)),
    )
    return meta, parsed


def _write_index(index: Path, log: Path, inode: int, offset: int, parsed: Parsed) -> bool:
    import pyarrow as pa

    from mlops.config.yamlfile import atomic_write_text

    paths = _index_paths(index, log)
    try:
        index.mkdir(exist_ok=True)
        for t in TABLES:
            # an IPC file holds one dictionary per column: pieces parsed apart are unified
            table = getattr(parsed, t).unify_dictionaries().combine_chunks()
            tmp = paths[t].with_name(f".{paths[t].name}.tmp-{os.getpid()}")
            # uncompressed: read back memory-mapped without a copy (about a third of the
            # JSON's size; zstd would halve that but cost ~0.2 s per million rows to read)
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
            os.replace(tmp, paths[t])
        lo, hi = parsed.ts_range
        meta = {
            "format": FORMAT,
            "log": log.name,
            "inode": inode,
            "offset": offset,
            "lines": parsed.lines,
            "bad": parsed.bad,
            "unknown": parsed.unknown,
            "ts_min": lo,
            "ts_max": hi,
            "written": time.time(),
        }
        atomic_write_text(paths["meta"], json.dumps(meta) + "\n")
        return True
    except (OSError, pa.ArrowException):
        return False


def _prune_index(index: Path, logs: list[Path]) -> None:
    """Drop the index of log files that no longer exist (the writer pruned them)."""
    if not index.is_dir():
        return
    alive = {p.name for p in logs}
    for p in index.iterdir():
        with contextlib.suppress(OSError):
            if p.name.startswith("."):  # a temporary file some reader left behind
                if time.time() - p.stat().st_mtime > 3600:
                    p.unlink()
            elif p.name.split(".jsonl", 1)[0] + ".jsonl" not in alive:
                p.unlink()


# ---- reading the whole log ---------------------------------------------------------------------


@dataclass
class LogColumns:
    """Every entry of the log since a time, as three tables, and what reading it cost."""

    predictions: pa.Table
    feedback: pa.Table
    errors: pa.Table
    directory: str
    files: int = 0
    lines: int = 0
    bad: int = 0
    unknown: int = 0
    bytes_parsed: int = 0  # JSON parsed in this read
    bytes_indexed: int = 0  # read from the index instead
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What was read, for reports (no table contents)."""
        return {
            "directory": self.directory,
            "files": self.files,
            "lines": self.lines,
            "bad_lines": self.bad,
            "unknown_entries": self.unknown,
            "bytes_parsed": self.bytes_parsed,
            "bytes_from_index": self.bytes_indexed,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


def _pieces(size_from: int, size_to: int, data_path: Path) -> list[tuple[int, int]]:
    """Split [from, to) at newlines into pieces of about PIECE_BYTES."""
    out = []
    start = size_from
    with open(data_path, "rb") as fh:
        while start < size_to:
            cut = min(start + PIECE_BYTES, size_to)
            if cut < size_to:
                fh.seek(cut)
                rest = fh.read(min(1 << 20, size_to - cut))
                nl = rest.find(b"\n")
                cut = size_to if nl < 0 else cut + nl + 1
            out.append((start, cut))
            start = cut
    return out


def _complete_end(path: Path, start: int, size: int) -> int:
    """The offset just after the last newline in [start, size) (start when there is none)."""
    with open(path, "rb") as fh:
        pos = size
        while pos > start:
            step = min(1 << 16, pos - start)
            fh.seek(pos - step)
            block = fh.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                return pos - step + nl + 1
            pos -= step
    return start


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and threading.active_count() == 1


def _parse_all(units: list[tuple[str, int, int]], parallel: bool) -> list[Parsed]:
    if parallel and len(units) > 1 and _can_fork():
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(2, mp_context=ctx) as pool:
            return list(pool.map(_parse_region, *zip(*units, strict=True)))
    return [_parse_region(*u) for u in units]


def read_columns(
    directory: Path | str,
    since: float | None = None,
    *,
    use_index: bool = True,
    parallel: bool = True,
) -> LogColumns:
    """Every complete entry of the log at `directory` with `ts >= since` (all when None).

    Parses only what the index does not cover yet, in two processes when that is a lot, and
    updates the index (unless `use_index` is False or the directory is read-only).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    d = Path(directory)
    out = LogColumns(pa.table({}), pa.table({}), pa.table({}), str(d))
    if not d.is_dir():
        out.notes.append(f"no prediction log at {d}")
        out.seconds = time.perf_counter() - t0
        return _empty(out)
    logs = log_files(d)
    _note_other_files(d, logs, out.notes)
    index = d / INDEX_DIR
    if use_index:
        _prune_index(index, logs)
    parts: list[Parsed] = []
    pending: list[tuple[str, int]] = []  # (file, bytes after its last newline)
    todo: list[tuple[Path, int, int, int, Parsed | None]] = []  # log, inode, from, to, cached
    for log in logs:
        try:
            st = log.stat()
        except OSError as exc:
            out.notes.append(f"cannot read {log.name}: {exc.strerror}")
            continue
        out.files += 1
        found = _read_index(index, log, st) if use_index else None
        if found is not None:
            meta, cached = found
            offset = int(meta["offset"])
            hi = meta.get("ts_max")
            end = _complete_end(log, offset, st.st_size) if st.st_size > offset else offset
            pending += [(log.name, st.st_size - end)] if st.st_size > end else []
            if end == offset:
                out.bytes_indexed += offset
                out.lines, out.bad, out.unknown = (
                    out.lines + cached.lines,
                    out.bad + cached.bad,
                    out.unknown + cached.unknown,
                )
                if since is None or hi is None or hi >= since:
                    parts.append(cached)
                continue
            out.bytes_indexed += offset
            todo.append((log, st.st_ino, offset, end, cached))
        else:
            try:
                end = _complete_end(log, 0, st.st_size)
            except OSError as exc:
                out.notes.append(f"cannot read {log.name}: {exc.strerror}")
                continue
            pending += [(log.name, st.st_size - end)] if st.st_size > end else []
            todo.append((log, st.st_ino, 0, end, None))
    units: list[tuple[str, int, int]] = []
    owners: list[int] = []
    total_new = sum(end - start for _, _, start, end, _ in todo)
    for i, (log, _, start, end, _) in enumerate(todo):
        if end <= start:
            continue
        pieces = _pieces(start, end, log) if total_new >= PARALLEL_BYTES else [(start, end)]
        for a, b in pieces:
            units.append((str(log), a, b))
            owners.append(i)
    try:
        results = _parse_all(units, parallel and total_new >= PARALLEL_BYTES)
    except OSError as exc:
        out.notes.append(f"cannot read the log: {exc.strerror or exc}")
        results = []
        todo = []
    by_owner: dict[int, list[Parsed]] = {}
    for owner, res in zip(owners, results, strict=True):
        by_owner.setdefault(owner, []).append(res)
    unwritable = False
    for i, (log, inode, start, end, cached) in enumerate(todo):
        got = ([cached] if cached is not None else []) + by_owner.get(i, [])
        merged = _merge(got)
        out.bytes_parsed += end - start
        out.lines += merged.lines
        out.bad += merged.bad
        out.unknown += merged.unknown
        if use_index and not unwritable and not _write_index(index, log, inode, end, merged):
            unwritable = True
            out.notes.append(f"the index could not be written in {index} (read-only?)")
        parts.append(merged)
    if out.bad:
        out.notes.append(
            f"{out.bad} log line(s) skipped: not JSON objects or not well-formed entries"
        )
    for name, size in pending:
        out.notes.append(
            f"{name} ends with an incomplete line ({size} bytes without a newline): left for "
            "the next read (a server still writing it), not counted"
        )
    if not parts:
        out.seconds = time.perf_counter() - t0
        return _empty(out)
    out.predictions = concat([p.predictions for p in parts])
    out.feedback = concat([p.feedback for p in parts])
    out.errors = concat([p.errors for p in parts])
    if since is not None:
        out.predictions = out.predictions.filter(pc.greater_equal(out.predictions["ts"], since))
        out.errors = out.errors.filter(pc.greater_equal(out.errors["ts"], since))
        # feedback is kept whenever it came: it labels predictions inside the window
    out.seconds = time.perf_counter() - t0
    return out


def _note_other_files(d: Path, logs: list[Path], notes: list[str]) -> None:
    """Say which files in the log directory are not read (compressed or renamed logs)."""
    kept = set(logs)
    other = sorted(
        p.name for p in d.iterdir() if p not in kept and not p.name.startswith(".") and p.is_file()
    )
    if other:
        shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        notes.append(
            f"{len(other)} file(s) in the log directory are not read (only *.jsonl is): {shown}; "
            "decompress or rename them into *.jsonl files to include them"
        )


def _merge(parts: list[Parsed]) -> Parsed:
    if len(parts) == 1:
        return parts[0]
    return Parsed(
        concat([p.predictions for p in parts]),
        concat([p.feedback for p in parts]),
        concat([p.errors for p in parts]),
        sum(p.lines for p in parts),
        sum(p.bad for p in parts),
        sum(p.unknown for p in parts),
    )


def _empty(out: LogColumns) -> LogColumns:
    empty = parse_bytes(b"")
    out.predictions, out.feedback, out.errors = empty.predictions, empty.feedback, empty.errors
    return out
