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
from mlops.data.roles import describe
from mlops.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

MAX_CATEGORIES = 50
HEADER = (
    "# The data contract, inferred by `mlops validate --infer`. Review it, edit it, commit it:\n"
    "# the validate stage enforces it (pandera's YAML schema format).\n"
)


def _num(v: Any, direction: int = 0) -> float | int:
    """A tidy bound: whole numbers as ints; others to 10 significant digits, rounded outwards
    (`direction` -1 down, +1 up) so the bound still holds for the value it came from."""
    f = float(v)
    if f.is_integer() and abs(f) < 2**53:
        return int(f)
    if direction == 0 or f == 0 or not math.isfinite(f):
        return f
    scale = 10.0 ** (10 - math.ceil(math.log10(abs(f))))
    tidy = (math.floor if direction < 0 else math.ceil)(f * scale) / scale
    return tidy if (tidy <= f if direction < 0 else tidy >= f) else f


def infer_schema(df: pd.DataFrame, tolerance: float = 0.0) -> dict[str, Any]:
    """A schema dict (pandera YAML layout) that `df` satisfies (see `schema_from_profile`)."""
    from mlops.data.profile import profile_frame

    return schema_from_profile(profile_frame(df), tolerance)


def schema_from_profile(
    profile: dict[str, Any], tolerance: float = 0.0, roles: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A schema dict (pandera YAML layout) that the profiled data satisfies.

    Numeric ranges are widened by `tolerance` x (max - min) on each side; string columns with at
    most 50 distinct values get a vocabulary (`isin`); integer and string columns whose values
    are all distinct (an id) are marked `unique`. The schema is strict: a new column is an error.
    A profile can be built from a file larger than memory, so inference streams too.
    `roles` (`mlops.data.roles.infer_roles`) marks identifier and time columns in their
    `description`: training and drift leave them out.
    """
    columns: dict[str, Any] = {}
    for name, p in profile["columns"].items():
        dtype = p["dtype"]
        col: dict[str, Any] = {"dtype": dtype, "nullable": bool(p.get("missing"))}
        checks: dict[str, Any] = {}
        present = p.get("count", 0) - p.get("missing", 0)
        if dtype in ("int64", "float64") and p.get("min") is not None:
            lo, hi = float(p["min"]), float(p["max"])
            pad = (hi - lo) * tolerance
            lo, hi = lo - pad, hi + pad
            if dtype == "int64":
                lo, hi = math.floor(lo), math.ceil(hi)
            checks["in_range"] = {"min_value": _num(lo, -1), "max_value": _num(hi, 1)}
        elif dtype == "str" and 0 < p.get("distinct", 0) <= MAX_CATEGORIES and not p.get("other"):
            checks["isin"] = sorted(p["top"])
        exact = not p.get("distinct_is_lower_bound")
        is_id = dtype in ("int64", "str") and present > 1 and exact and "isin" not in checks
        if is_id and p.get("distinct") == present:
            col["unique"] = True
        if checks:
            col["checks"] = checks
        if roles and str(name) in roles:
            col["description"] = describe(roles[str(name)])
        columns[str(name)] = col
    return {
        "schema_type": "dataframe",
        "columns": columns,
        "coerce": False,
        "strict": True,
    }


def write_schema(path: Path, schema: dict[str, Any]) -> None:
    """Write `schema` as pandera YAML with a short header (atomically)."""
    atomic_write_text(path, HEADER + dump_yaml(schema))


def read_schema(path: Path) -> dict[str, Any]:
    """Read a schema file; a missing or malformed one is a usage error with what to do next."""
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
    """Every failure of `df` against `schema`, found by pandera itself (lazy, grouped).

    The validate stage uses the vectorised engine in `mlops.data.checks`; this function is the
    reference it is tested against, and the fallback for checks that engine does not implement.
    """
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
