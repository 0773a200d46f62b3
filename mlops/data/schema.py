"""The data contract: a pandera schema inferred from data, reviewed by a person, versioned in git.

`data/schema.yaml` is written in pandera's YAML format (`pandera.DataFrameSchema.from_yaml`
reads it), with checks pandera's YAML keeps: `in_range` for numbers and `isin` for categories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config.yamlfile import atomic_write_text, dump_yaml, read_yaml
from mlops.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

MAX_CATEGORIES = 50
HEADER = (
    "# The data contract, inferred by `mlops validate --infer`. Review it, edit it, commit it:\n"
    "# the validate stage enforces it (pandera's YAML schema format).\n"
)


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


def _num(v: Any) -> float | int:
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else round(f, 10)


def infer_schema(df: pd.DataFrame, tolerance: float = 0.0) -> dict[str, Any]:
    """A schema dict (pandera YAML layout) that `df` satisfies.

    Numeric ranges are widened by `tolerance` x (max - min) on each side; string columns with at
    most 50 distinct values get a vocabulary (`isin`).
    """
    columns: dict[str, Any] = {}
    for name in df.columns:
        s = df[name]
        dtype = dtype_name(s)
        col: dict[str, Any] = {"dtype": dtype, "nullable": bool(s.isna().any())}
        checks: dict[str, Any] = {}
        non_null = s.dropna()
        if dtype in ("int64", "float64") and len(non_null):
            lo, hi = float(non_null.min()), float(non_null.max())
            pad = (hi - lo) * tolerance
            lo, hi = lo - pad, hi + pad
            if dtype == "int64":
                lo, hi = math.floor(lo), math.ceil(hi)
            checks["in_range"] = {"min_value": _num(lo), "max_value": _num(hi)}
        elif dtype == "str":
            values = sorted(str(v) for v in non_null.unique())
            if 0 < len(values) <= MAX_CATEGORIES:
                checks["isin"] = values
        if checks:
            col["checks"] = checks
        columns[str(name)] = col
    return {
        "schema_type": "dataframe",
        "columns": columns,
        "coerce": False,
        "strict": False,
    }


def write_schema(path: Path, schema: dict[str, Any]) -> None:
    atomic_write_text(path, HEADER + dump_yaml(schema))


def read_schema(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise UsageError(
            f"schema {path} does not exist",
            "Run `mlops validate --infer` to draft one from the data, review it, and commit it.",
        )
    data = read_yaml(path, with_lines=False).data
    if not isinstance(data, dict) or "columns" not in data:
        raise UsageError(f"{path} is not a schema (no `columns:`)", "Recreate it with --infer.")
    return data


@dataclass
class Failure:
    column: str
    check: str
    count: int
    examples: list[Any] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)


def validate_frame(df: pd.DataFrame, schema: dict[str, Any]) -> list[Failure]:
    """Every failure of `df` against `schema` (lazy: all of them, grouped by column and check)."""
    import pandera.pandas as pa
    from pandera.io.pandas_io import deserialize_schema

    pschema = deserialize_schema(schema)
    try:
        pschema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        failures: list[Failure] = []
        for (column, check), grp in cases.groupby(["column", "check"], dropna=False, sort=False):
            rows = [int(i) for i in grp["index"].dropna().tolist()[:5]]
            examples = [v for v in grp["failure_case"].tolist()[:5]]
            failures.append(
                Failure(
                    str(column) if column is not None else "<frame>",
                    str(check),
                    len(grp),
                    examples,
                    rows,
                )
            )
        return failures
    except pa.errors.SchemaError as exc:  # pragma: no cover - lazy mode collects instead
        return [Failure("<frame>", str(exc), 1)]
    return []
