"""Column roles: which columns identify a row or a moment rather than describe it.

An identifier (unique per row) or a time column (dates, or a monotonic counter) is no feature:
a model that learns it memorises rows or calendar positions, and between two spans every value
of it is new, so it always counts as drifted. `infer_roles` flags such columns so that schema
inference, `mlops init --data`, training and drift exclude them by default, and say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

IDENTIFIER = "identifier"
TIME = "time"
MIN_ROWS = 20  # below this, uniqueness and order say nothing
DATE_PARSE_SHARE = 0.95  # share of non-missing text cells that must parse as dates


@dataclass(frozen=True)
class ColumnRole:
    """Why a column is not a feature: its role (`identifier` or `time`) and the evidence."""

    column: str
    role: str
    reason: str

    def line(self) -> str:
        """One line for a report: `date: time column (values parse as dates); …`."""
        return f"{self.column}: {self.role} column ({self.reason}); not a feature, no drift check"


ROLE_PREFIX = "role: "


def describe(role: ColumnRole) -> str:
    """The schema column's `description` that records a role (read back by `roles_in_schema`)."""
    return f"{ROLE_PREFIX}{role.role} ({role.reason}); not a feature, no drift check"


def roles_in_schema(schema: dict | None) -> dict[str, str]:
    """Columns whose schema `description` records an identifier or time role: name -> role."""
    out: dict[str, str] = {}
    for name, col in ((schema or {}).get("columns") or {}).items():
        text = col.get("description") if isinstance(col, dict) else None
        if isinstance(text, str) and text.startswith(ROLE_PREFIX):
            role = text[len(ROLE_PREFIX) :].split(" ", 1)[0]
            if role in (IDENTIFIER, TIME):
                out[str(name)] = role
    return out


def _date_like(series: pd.Series) -> bool:
    import warnings

    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    values = series.dropna().astype(str)
    if values.empty:
        return False
    sample = values.head(1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= DATE_PARSE_SHARE)


def infer_roles(frame: pd.DataFrame, *, target: str | None = None) -> dict[str, ColumnRole]:
    """Flag identifier and time columns of `frame` (the target is never flagged).

    - time: a datetime dtype, or text whose values (≥ 95% of non-missing cells) parse as dates;
    - identifier: text or integer values unique on every row (floats are measurements: a
      continuous feature is often unique without identifying anything);
    - time: an integer column that only ever increases and is unique (a row counter or a
      timestamp in seconds).
    Frames with fewer than 20 rows give no verdicts except from a datetime dtype.
    """
    import pandas as pd

    roles: dict[str, ColumnRole] = {}
    rows = len(frame)
    for name in frame.columns:
        column = str(name)
        if column == target:
            continue
        series = frame[name]
        if pd.api.types.is_datetime64_any_dtype(series):
            roles[column] = ColumnRole(column, TIME, "a date/time column")
            continue
        if rows < MIN_ROWS or pd.api.types.is_bool_dtype(series):
            continue
        if _date_like(series):
            roles[column] = ColumnRole(column, TIME, "values parse as dates")
            continue
        if pd.api.types.is_float_dtype(series):
            continue
        non_missing = series.dropna()
        unique = len(non_missing) == rows and non_missing.nunique() == rows
        if not unique:
            continue
        if pd.api.types.is_integer_dtype(series) and non_missing.is_monotonic_increasing:
            roles[column] = ColumnRole(column, TIME, "unique and always increasing")
        else:
            roles[column] = ColumnRole(column, IDENTIFIER, "a different value on every row")
    return roles
