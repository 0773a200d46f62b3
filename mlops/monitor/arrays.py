"""The log's Arrow columns as numpy, for the checks (`mlops.monitor.checks`): numbers, text,
categorical codes, the window and version masks computed once (`Frame`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pyarrow as pa

    from mlops.monitor.logdata import LogColumns
    from mlops.monitor.window import Window

PERCENTILES = (50, 95, 99)


def _np(col: Any, fill: float = math.nan) -> np.ndarray:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_null(col.type):
        return np.full(len(col), fill)
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        raise TypeError(f"not a numeric column: {col.type}")
    if col.null_count == 0 and pa.types.is_float64(col.type):  # one copy (none for one chunk)
        return np.asarray(col.to_numpy(), dtype=np.float64)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
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


def _categorical(col: Any) -> tuple[np.ndarray, list[str | None]]:
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


def _recode(
    codes: np.ndarray, values: Sequence[str | None], onto: Sequence[str | None]
) -> np.ndarray:
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


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    import numpy as np

    values = values[~np.isnan(values)]
    if not len(values):
        return {f"p{q}": None for q in PERCENTILES}
    got = np.percentile(values, PERCENTILES)
    return {f"p{q}": round(float(v), 4) for q, v in zip(PERCENTILES, got, strict=True)}


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
