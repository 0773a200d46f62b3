"""Parsing the JSON-lines prediction log, entry by entry (the careful parser), into the three
tables of `mlops.monitor.logdata`; the column helpers both parsers share.

Every field of an entry is checked for its shape (`_prediction_ok`); an entry that does not
fit is skipped and counted, never guessed at. `mlops.serve.logarrow` is the fast path that
hands back to this parser whatever Arrow's reader cannot type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

FEATURE_PREFIX = "in."


def _loads() -> Callable[[bytes], Any]:
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover - orjson comes with the serve extra
        return json.loads


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
