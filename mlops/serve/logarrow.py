"""The fast path of the log parser: Arrow's multithreaded JSON reader over a whole block of
log lines, with the schema inferred from a sample; None when the block has anything it cannot
type, so that `mlops.serve.logparse` parses it entry by entry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.serve.logparse import (
    FEATURE_PREFIX,
    Parsed,
    _error_entries,
    _errors_table,
    _loads,
    _Malformed,
)

if TYPE_CHECKING:
    import pyarrow as pa


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
