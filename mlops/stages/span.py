"""The rows of a `span:` (ingest): an inclusive range of a column, compared as time or numbers.

- bounds that are YAML dates or datetimes, or a `format:`, parse the column as time
  (`pandas.to_datetime`, with the format when given); a non-missing cell that does not parse
  stops the stage with examples, rather than dropping rows silently;
- quoted text bounds on a text column that parses as dates compare as time too, so
  `from: "2012-01-01"` and `from: 2012-01-01` select the same rows;
- a date `to:` (no time of day) includes that whole day;
- a time zone on one side only: naive bounds are read in the column's zone;
- otherwise values compare as they are (numbers with numbers).
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import TYPE_CHECKING, Any

from mlops.config.models import SpanSpec
from mlops.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

HINT = (
    "Give `format:` in the span (a pandas.to_datetime format such as '%d/%m/%Y'), "
    "or fix those cells (docs/howto.md, 'Time spans')."
)


def _parse_column(col: pd.Series, span: SpanSpec, strict: bool) -> pd.Series | None:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(col):
        return col
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if span.format is not None:
            parsed = pd.to_datetime(col, format=span.format, errors="coerce")
        elif pd.api.types.is_numeric_dtype(col):
            if not strict:
                return None
            raise UsageError(
                f"span column {span.column!r} holds numbers, but the span's bounds are dates",
                "Give numbers as `from`/`to`, or `format:` when the numbers encode dates "
                "(e.g. '%Y%m%d').",
            )
        else:
            parsed = pd.to_datetime(col, errors="coerce", format="mixed")
    bad = col.notna() & parsed.isna()
    if bad.any():
        if not strict:
            return None
        examples = ", ".join(repr(str(v)) for v in col[bad].unique()[:5])
        how = f"format {span.format!r}" if span.format else "dates"
        raise UsageError(
            f"span column {span.column!r}: {int(bad.sum())} of {int(col.notna().sum())} "
            f"values do not parse as {how} (e.g. {examples})",
            HINT,
        )
    return parsed


def _bound(value: Any, column: pd.Series, end: bool) -> Any:
    """A bound as a Timestamp in the column's time zone (a date `to` -> the next midnight)."""
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise UsageError(f"span bound {value!r} is not a date or time", HINT) from None
    whole_day = end and (
        (isinstance(value, dt.date) and not isinstance(value, dt.datetime))
        or (isinstance(value, str) and len(value.strip()) <= 10)
    )
    if whole_day:
        ts = ts + pd.Timedelta(days=1)
    tz = getattr(column.dt, "tz", None)
    if tz is not None and ts.tzinfo is None:
        ts = ts.tz_localize(tz)
    elif tz is None and ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts, whole_day


def span_mask(col: pd.Series, span: SpanSpec) -> pd.Series:
    """Boolean mask of the rows of `col` inside `span` (missing values are outside)."""
    import pandas as pd

    bounds = [b for b in (span.from_, span.to) if b is not None]
    parsed = None
    if span.is_time:
        parsed = _parse_column(col, span, strict=True)
    elif (
        bounds
        and all(isinstance(b, str) for b in bounds)
        and not pd.api.types.is_numeric_dtype(col)
    ):
        parsed = _parse_column(col, span, strict=False)  # text that reads as dates
        try:
            for b in bounds:
                pd.Timestamp(b)
        except (ValueError, TypeError):
            parsed = None
    if parsed is None:
        values = col
        if pd.api.types.is_numeric_dtype(col) and any(isinstance(b, str) for b in bounds):
            raise UsageError(
                f"span column {span.column!r} holds numbers; give numbers as `from`/`to` "
                f"(got {', '.join(repr(b) for b in bounds)})",
                HINT,
            )
        mask = values.notna()
        if span.from_ is not None:
            mask &= values >= span.from_
        if span.to is not None:
            mask &= values <= span.to
        return mask
    mask = parsed.notna()
    if span.from_ is not None:
        lo, _ = _bound(span.from_, parsed, end=False)
        mask &= parsed >= lo
    if span.to is not None:
        hi, whole_day = _bound(span.to, parsed, end=True)
        mask &= (parsed < hi) if whole_day else (parsed <= hi)
    return mask
