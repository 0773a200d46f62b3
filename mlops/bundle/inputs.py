"""Request bodies → validated feature columns, without pandas or pydantic on the hot path.

Payload formats (MLflow's, so its clients switch without change):

- `{"dataframe_split": {"columns": [...], "data": [[...], ...]}}` (`index` ignored)
- `{"dataframe_records": [{...}, ...]}`
- `{"instances": ...}` and `{"inputs": ...}`: a list of records, a list of rows in the schema's
  feature order, or a dict of columns (`{"col": [values...]}`)
- `text/csv` with a header line
- `/predict`: a list of records, one record, or `{"records": [...]}`

Every value is checked against the bundle's input schema (`schema.json`): type, null, range,
vocabulary. All problems are collected, per field, and returned as one 422; extra columns are
ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

try:  # orjson parses and serialises JSON several times faster than the standard library
    import orjson

    _loads = orjson.loads

    def dumps(obj: Any) -> bytes:
        """Serialise to JSON bytes (NumPy arrays included; NaN becomes null)."""
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

except ImportError:  # pragma: no cover - orjson is part of the serve extra
    _loads = json.loads  # type: ignore[assignment]  # also takes bytes, as orjson's does

    def dumps(obj: Any) -> bytes:
        """Serialise to JSON bytes (NumPy arrays included; NaN becomes null)."""
        return json.dumps(_plain(obj), separators=(",", ":")).encode()

    def _plain(obj: Any) -> Any:
        if hasattr(obj, "tolist"):
            obj = obj.tolist()
        if isinstance(obj, dict):
            return {k: _plain(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [_plain(v) for v in obj]
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        return obj


MAX_PROBLEMS_PER_FIELD = 20
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class RequestError(Exception):
    """A request the service refuses: an HTTP status and a JSON body saying what to fix."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {"error": self.error, "message": self.message, **self.extra}


def parse_json(body: bytes) -> Any:
    """Parse a JSON body; `RequestError(400)` when it is not JSON.

    orjson refuses NaN/Infinity literals and integers beyond 64 bits; those bodies are given to
    the standard parser, so a NaN reads as a missing value and a huge number as out of range.
    """
    try:
        return _loads(body)
    except ValueError:
        pass
    try:
        return json.loads(body, parse_constant=float)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise RequestError(400, "bad_json", f"the body is not valid JSON: {reason}") from None


def _shown(v: Any) -> Any:
    """A value as it may appear in an error body (long or odd values abbreviated)."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v if abs(v) < 2**53 else f"an integer of {v.bit_length()} bits"
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, str):
        return v if len(v) <= 80 else v[:77] + "…"
    return _type(v)


@dataclass
class Feature:
    """One input column of the schema, with its checks prepared."""

    name: str
    kind: str  # "float", "int", "bool" or "str"
    nullable: bool
    lo: float = -math.inf
    hi: float = math.inf
    categories: frozenset | None = None
    shown_range: str = ""

    def describe(self) -> dict[str, Any]:
        """The feature's checks, as shown in a 422 response and `/version`."""
        out: dict[str, Any] = {"name": self.name, "type": self.kind, "nullable": self.nullable}
        if self.kind in ("float", "int"):
            out["min"], out["max"] = self.lo, self.hi
        elif self.categories is not None:
            out["categories"] = sorted(self.categories, key=str)
        return out


@dataclass
class Batch:
    """Validated rows as columns: floats (NaN when missing) for numbers, str/bool/None else."""

    n: int
    columns: dict[str, list[Any]]


@dataclass
class InputSpec:
    """The checks of a bundle's `schema.json`, ready for the hot path."""

    features: list[Feature]
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = [f.name for f in self.features]

    @classmethod
    def from_schema(cls, schema: dict[str, Any], range_margin: float = 0.0) -> InputSpec:
        """Build from `schema.json`; numeric ranges widened by `range_margin` x (max - min)."""
        features = []
        for spec in schema.get("features", []):
            dtype = spec.get("dtype", "str")
            kind = {"float64": "float", "int64": "int", "bool": "bool"}.get(dtype, "str")
            f = Feature(spec["name"], kind, bool(spec.get("nullable", False)))
            if kind in ("float", "int"):
                lo, hi = spec.get("min"), spec.get("max")
                if lo is not None and hi is not None:
                    pad = range_margin * (float(hi) - float(lo))
                    f.lo, f.hi = float(lo) - pad, float(hi) + pad
                    f.shown_range = f"[{f.lo:g}, {f.hi:g}]"
            elif spec.get("categories") is not None:
                cats = spec["categories"]
                if kind == "bool":
                    f.categories = frozenset(c in (True, "True", "true") for c in cats)
                else:
                    f.categories = frozenset(str(c) for c in cats)
            features.append(f)
        return cls(features)

    # ---- payloads -> raw columns ----------------------------------------------------------

    def from_invocations(self, obj: Any, max_rows: int) -> Batch:
        """An MLflow `/invocations` JSON body."""
        if not isinstance(obj, dict):
            raise _bad_format(f"expected a JSON object, got {_type(obj)}")
        keys = [k for k in FORMATS if k in obj]
        if len(keys) != 1:
            found = "none of them" if not keys else "several: " + ", ".join(keys)
            raise _bad_format(f"the body must have exactly one of {', '.join(FORMATS)}; {found}")
        key = keys[0]
        value = obj[key]
        if key == "dataframe_split":
            return self.check(*self._split(value, max_rows))
        if key == "dataframe_records":
            if not isinstance(value, list):
                raise _bad_format(
                    f"dataframe_records must be a list of objects, got {_type(value)}"
                )
            return self.check(*self._records(value, max_rows))
        return self.check(*self._tensor(value, key, max_rows))

    def from_records(self, obj: Any, max_rows: int) -> Batch:
        """A `/predict` body: a list of records, one record, or `{"records": [...]}`."""
        if isinstance(obj, dict) and set(obj) == {"records"}:
            obj = obj["records"]
        elif isinstance(obj, dict):
            obj = [obj]
        if not isinstance(obj, list):
            raise _bad_format(f"expected a record or a list of records, got {_type(obj)}")
        return self.check(*self._records(obj, max_rows))

    def from_csv(self, body: bytes, max_rows: int) -> Batch:
        """A CSV body with a header line (empty cells are missing values); rows beyond
        `max_rows` are refused as they are read, not after the whole body was parsed."""
        import csv
        import io

        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise RequestError(400, "bad_csv", "the CSV body is not UTF-8 text") from None
        if "\x00" in text:
            raise RequestError(400, "bad_csv", "the CSV body contains NUL bytes")
        rows = []
        try:
            for r in csv.reader(io.StringIO(text)):
                if r:
                    rows.append(r)
                    if len(rows) > max_rows + 1:
                        raise _too_many(f"more than {max_rows}", max_rows)
        except csv.Error as exc:
            raise RequestError(400, "bad_csv", f"the body is not valid CSV: {exc}") from None
        if not rows:
            raise _bad_format("the CSV body has no header line")
        header, data = rows[0], rows[1:]
        if len(data) > max_rows:
            raise _too_many(len(data), max_rows)
        for n, r in enumerate(data):
            if len(r) != len(header):
                raise _bad_format(
                    f"CSV line {n + 2} has {len(r)} cells; the header has {len(header)}"
                )
        pos = {name: i for i, name in enumerate(header)}
        raw: dict[str, list[Any]] = {}
        for f in self.features:
            i = pos.get(f.name)
            if i is None:
                continue
            raw[f.name] = [_from_text(r[i], f.kind) for r in data]
        return self.check(raw, len(data))

    def _records(self, rows: list, max_rows: int) -> tuple[dict[str, list], int]:
        n = len(rows)
        if n > max_rows:
            raise _too_many(n, max_rows)
        for i, r in enumerate(rows):
            if not isinstance(r, dict):
                raise _bad_format(f"row {i} must be an object of column: value, got {_type(r)}")
        raw = {}
        for name in self.names:
            if any(name in r for r in rows):
                raw[name] = [r.get(name) for r in rows]
        return raw, n

    def _split(self, value: Any, max_rows: int) -> tuple[dict[str, list], int]:
        if not isinstance(value, dict):
            raise _bad_format(f"dataframe_split must be an object, got {_type(value)}")
        data = value.get("data")
        if not isinstance(data, list):
            raise _bad_format("dataframe_split needs `data`: a list of rows")
        columns = value.get("columns")
        if columns is None:
            columns = self.names
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise _bad_format("dataframe_split `columns` must be a list of column names")
        return self._rows(data, columns, max_rows)

    def _rows(self, data: list, columns: list[str], max_rows: int) -> tuple[dict[str, list], int]:
        n = len(data)
        if n > max_rows:
            raise _too_many(n, max_rows)
        width = len(columns)
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != width:
                raise _bad_format(f"row {i} must be a list of {width} values, got {_type(row)}")
        pos = {c: i for i, c in enumerate(columns)}
        raw = {}
        for name in self.names:
            at = pos.get(name)
            if at is not None:
                raw[name] = [row[at] for row in data]
        return raw, n

    def _tensor(self, value: Any, key: str, max_rows: int) -> tuple[dict[str, list], int]:
        if isinstance(value, dict):  # columns
            cols = {k: v if isinstance(v, list) else [v] for k, v in value.items()}
            lengths = {len(v) for v in cols.values()}
            if len(lengths) > 1:
                raise _bad_format(f"the columns of `{key}` have different lengths")
            n = lengths.pop() if lengths else 0
            if n > max_rows:
                raise _too_many(n, max_rows)
            return {k: v for k, v in cols.items() if k in self.names}, n
        if not isinstance(value, list):
            raise _bad_format(f"`{key}` must be a list of records or rows, or an object of columns")
        if value and all(isinstance(r, dict) for r in value):
            return self._records(value, max_rows)
        if value and isinstance(value[0], list):
            return self._rows(value, self.names, max_rows)
        if not value:
            return {}, 0
        raise _bad_format(f"`{key}` must be a list of records or of rows, not of {_type(value[0])}")

    # ---- value checks -------------------------------------------------------------------

    def check(self, raw: dict[str, list], n: int) -> Batch:
        """Validate every value of every feature; `RequestError(422)` listing all problems."""
        if n == 0:
            raise RequestError(422, "no_rows", "the request has no rows to predict")
        problems: dict[str, dict[str, Any]] = {}
        columns: dict[str, list[Any]] = {}
        for f in self.features:
            col = raw.get(f.name)
            if col is None:
                problems[f.name] = {"problems": ["missing column"], "count": 1}
                continue
            bad: list[Any] = []
            if f.kind == "float" or f.kind == "int":
                columns[f.name] = _check_number(f, col, bad)
            elif f.kind == "str":
                columns[f.name] = _check_values(f, col, bad, str, "a string")
            else:
                columns[f.name] = _check_values(f, col, bad, bool, "true or false")
            if bad:
                problems[f.name] = {"problems": bad[:MAX_PROBLEMS_PER_FIELD], "count": len(bad)}
        if problems:
            n_bad = sum(p["count"] for p in problems.values())
            raise RequestError(
                422,
                "invalid_input",
                f"{n_bad} invalid value{'s' if n_bad != 1 else ''} in "
                f"{len(problems)} field{'s' if len(problems) != 1 else ''}: " + ", ".join(problems),
                fields=problems,
                schema=[f.describe() for f in self.features if f.name in problems],
            )
        return Batch(n, columns)


def _problem(row: int, value: Any, why: str) -> dict[str, Any]:
    return {"row": row, "value": _shown(value), "problem": why}


def _check_number(f: Feature, col: list, bad: list) -> list[float]:
    out: list[float] = []
    append = out.append
    lo, hi, nullable = f.lo, f.hi, f.nullable
    for i, v in enumerate(col):
        t = type(v)
        if t is float or t is int:
            try:
                x = float(v)
            except OverflowError:
                bad.append(_problem(i, v, f"is outside the accepted range {f.shown_range}"))
                continue
            if x != x:  # NaN: a missing value
                if not nullable:
                    bad.append(_problem(i, v, "is missing (NaN) but the field is not nullable"))
            elif not (lo <= x <= hi):
                why = (
                    "is not a finite number"
                    if math.isinf(x)
                    else f"is outside the accepted range {f.shown_range}"
                )
                bad.append(_problem(i, v, why))
            elif t is float and f.kind == "int" and not x.is_integer():
                bad.append(_problem(i, v, "must be an integer"))
            append(x)
        elif v is None:
            if not nullable:
                bad.append(_problem(i, v, "is missing (null) but the field is not nullable"))
            append(math.nan)
        else:
            bad.append(_problem(i, v, f"must be a number, got {_type(v)}"))
    return out


def _check_values(f: Feature, col: list, bad: list, kind: type, expected: str) -> list[Any]:
    """Check a column of `kind` values in place (no conversion): type, vocabulary, nulls."""
    cats, nullable = f.categories, f.nullable
    for i, v in enumerate(col):
        if type(v) is kind:
            if cats is not None and v not in cats:
                bad.append(_problem(i, v, f"is not one of {_vocab(cats)}"))
        elif v is None:
            if not nullable:
                bad.append(_problem(i, v, "is missing (null) but the field is not nullable"))
        else:
            bad.append(_problem(i, v, f"must be {expected}, got {_type(v)}"))
    return col


def _vocab(cats: frozenset) -> str:
    shown = sorted(cats, key=str)
    text = ", ".join(json.dumps(c) for c in shown[:12])
    return f"[{text}{', …' if len(shown) > 12 else ''}]"


def _from_text(cell: str, kind: str) -> Any:
    """A CSV cell as the JSON value it stands for (empty → null; numbers parsed)."""
    if cell == "":
        return None
    if kind in ("float", "int"):
        try:
            return int(cell) if kind == "int" and cell.lstrip("+-").isdigit() else float(cell)
        except ValueError:
            return cell  # reported as "must be a number"
    if kind == "bool":
        low = cell.lower()
        return True if low == "true" else False if low == "false" else cell
    return cell


def _type(v: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(v), type(v).__name__)


def _bad_format(message: str) -> RequestError:
    return RequestError(
        400,
        "bad_format",
        message,
        hint="Send one of: {'dataframe_split': {'columns': [...], 'data': [[...]]}}, "
        "{'dataframe_records': [{...}]}, {'instances': [...]}, {'inputs': ...}, or text/csv.",
    )


def _too_many(n: int | str, max_rows: int) -> RequestError:
    return RequestError(
        413,
        "too_many_rows",
        f"the request has {n} rows; the limit is {max_rows}",
        hint="Split the batch into smaller requests.",
    )
