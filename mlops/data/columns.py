"""One pass over a column of one chunk: the numbers every later step needs, computed once.

Validation, profiling and drift all read the same `ColumnChunk`: a numeric column is parsed and
sorted once (so range checks, quantiles and histograms are binary searches on the sorted array);
a categorical column is counted once (`value_counts`), so vocabulary checks look at the distinct
values only. Row-level work (which rows fail) happens only for a check that has failures.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

NUMERIC = ("int64", "float64")
THREADS = 2  # numpy's sort releases the GIL: two columns sort at once on two cores


def dtype_name(series: pd.Series) -> str:
    """A portable dtype name pandera understands: int64, float64, bool, str, datetime64[ns]."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int64"
    if pd.api.types.is_float_dtype(series):
        return "float64"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime64[ns]"
    return "str"


def kind_of(dtype: str) -> str:
    """`numeric` for int64/float64, `categorical` for everything else (str, bool, dates)."""
    return "numeric" if dtype in NUMERIC else "categorical"


@dataclass
class ColumnChunk:
    """Summary of one column in one chunk.

    numeric: `sorted` holds the finite values in order; `unparsed` marks cells that are not
    numbers (strings in a numeric column); `nonint` counts fractional values in an int column.
    categorical: `counts` maps each distinct value (as text) to its count.
    """

    name: str
    kind: str
    dtype: str  # the dtype the column should have (schema), else the one it has
    rows: int
    missing: int
    sorted: np.ndarray | None = None
    infinite: int = 0
    unparsed: Any = None  # boolean mask (numpy) of cells that could not be read as numbers
    unparsed_count: int = 0
    values: np.ndarray | None = None  # float64 values in row order (NaN for missing/unparsed)
    counts: pd.Series | None = None
    mean: float = 0.0  # of the finite values
    m2: float = 0.0  # sum of squared deviations from the mean
    distinct: int = 0  # distinct finite values


def as_numeric(series: pd.Series) -> tuple[np.ndarray, np.ndarray | None, int]:
    """float64 values (NaN where missing or unparsable), the unparsable mask, its count."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype="float64", na_value=np.nan), None, 0
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype="float64", na_value=np.nan), None, 0
    coerced = pd.to_numeric(series, errors="coerce")
    values = coerced.to_numpy(dtype="float64", na_value=np.nan)
    bad = (series.notna() & coerced.isna()).to_numpy()
    return values, bad, int(bad.sum())


def as_text(series: pd.Series) -> pd.Series:
    """Non-missing values as text, the form vocabularies and category counts use."""
    import pandas as pd

    values = series.dropna()
    if pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values):
        return values
    if pd.api.types.is_float_dtype(values) and len(values):
        # 1.0 read from a CSV is the category "1"
        whole = values == values.round()
        if bool(whole.all()):
            return values.astype("int64").astype(str)
    return values.astype(str)


def _m2(x: np.ndarray, mean: float) -> float:
    """Sum of squared deviations: one pass (sum of squares) when that is accurate enough,
    two passes when the mean is large against the spread (cancellation)."""
    import numpy as np

    n = len(x)
    if n < 2:
        return 0.0
    sq = float(np.einsum("i,i->", x, x))
    m2 = sq - n * mean * mean
    if m2 > 1e-6 * sq:  # relative error of the one-pass formula below ~1e-10
        return m2
    dev = x - mean
    return float(np.einsum("i,i->", dev, dev))


def summarize(
    name: str, series: pd.Series, expected: str | None = None, *, keep_values: bool = True
) -> ColumnChunk:
    """Parse and summarize one column of one chunk (see the module docstring).

    `keep_values=False` drops the row-ordered values (validation needs them to locate failing
    rows; drift does not), halving the memory a numeric column holds."""
    import numpy as np

    dtype = expected or dtype_name(series)
    rows = len(series)
    if kind_of(dtype) == "numeric":
        values, bad, nbad = as_numeric(series)
        finite_mask = np.isfinite(values)
        n_finite = int(np.count_nonzero(finite_mask))
        nan_count = int(np.count_nonzero(np.isnan(values))) if n_finite < rows else 0
        if n_finite < rows:
            finite = values[finite_mask]
        elif keep_values or np.may_share_memory(values, series.to_numpy()):
            finite = values.copy()
        else:
            finite = values  # already a private copy (e.g. parsed from strings)
        finite.sort(kind="quicksort")
        mean = float(finite.mean()) if n_finite else 0.0
        m2 = _m2(finite, mean)
        distinct = int(np.count_nonzero(finite[1:] != finite[:-1])) + 1 if n_finite else 0
        return ColumnChunk(
            name,
            "numeric",
            dtype,
            rows,
            missing=nan_count - nbad,
            sorted=finite,
            infinite=int(rows - nan_count - len(finite)),
            unparsed=bad,
            unparsed_count=nbad,
            values=values if keep_values else None,
            mean=mean,
            m2=m2,
            distinct=distinct,
        )
    missing = int(series.isna().sum())
    counts = as_text(series).value_counts(sort=False)
    return ColumnChunk(name, "categorical", dtype, rows, missing=missing, counts=counts)


def summarize_frame(df: pd.DataFrame, expected: dict[str, str] | None = None) -> list[ColumnChunk]:
    """`summarize` every column, two at a time (numpy sorts release the GIL)."""
    expected = expected or {}
    names = [str(c) for c in df.columns]
    if len(df) < 50_000 or len(names) < 2:
        return [
            summarize(n, df[c], expected.get(n)) for n, c in zip(names, df.columns, strict=True)
        ]
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [
            pool.submit(summarize, n, df[c], expected.get(n))
            for n, c in zip(names, df.columns, strict=True)
        ]
        return [f.result() for f in futures]
