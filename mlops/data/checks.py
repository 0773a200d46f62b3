"""A vectorised, lazy validation engine for pandera schemas (the YAML layout of `data/schema.yaml`).

Every failure is collected (never just the first), per column and check: how many values fail,
a few example values and their row numbers (0-based, counted over the whole file when it is read
in chunks). Counting reads the per-chunk summaries (`mlops.data.columns`): a range check is two
binary searches on the sorted column, a vocabulary check looks at the distinct values only; rows
are located only for checks that fail. Checks this engine does not implement are run by pandera
on the same chunk, so any pandera YAML schema works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.data.columns import ColumnChunk, as_text
from mlops.data.schema import Failure

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MAX_EXAMPLES = 5
NUMERIC_CHECKS = (
    "in_range",
    "greater_than_or_equal_to",
    "less_than_or_equal_to",
    "greater_than",
    "less_than",
    "equal_to",
    "not_equal_to",
    "isin",
    "notin",
)
TEXT_CHECKS = (
    "isin",
    "notin",
    "equal_to",
    "not_equal_to",
    "str_length",
    "str_matches",
    "str_contains",
    "str_startswith",
    "str_endswith",
)


@dataclass
class _Acc:
    count: int = 0
    examples: list[Any] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    def add(self, count: int, examples: list[Any], rows: list[int]) -> None:
        self.count += count
        room = MAX_EXAMPLES - len(self.examples)
        if room > 0:
            self.examples += examples[:room]
            self.rows += rows[:room]


def _args(spec: Any, names: tuple[str, ...]) -> list[Any]:
    """Check arguments in pandera's YAML forms: a scalar, a list, or a mapping of names."""
    if isinstance(spec, dict):
        spec = {k: v for k, v in spec.items() if k != "options"}
        if "value" in spec and len(spec) == 1:
            return [spec["value"]]
        return [spec.get(n) for n in names]
    return [spec]


def _label(name: str, spec: Any) -> str:
    if isinstance(spec, dict):
        spec = {k: v for k, v in spec.items() if k not in ("options", "include_min", "include_max")}
        inner = ", ".join(repr(v) for v in spec.values())
    elif isinstance(spec, list):
        inner = repr(spec)
    else:
        inner = repr(spec)
    text = f"{name}({inner})"
    return text if len(text) <= 60 else text[:57] + "...)"


def _plain(v: Any) -> Any:
    """A JSON-friendly example value."""
    if hasattr(v, "item"):
        try:
            return v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, float) and v != v:
        return None
    return v if isinstance(v, int | float | str | bool) or v is None else str(v)


class Validator:
    """Checks chunks against a schema dict; `add(chunk, summaries, offset)`, then `finish()`."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.columns: dict[str, dict[str, Any]] = {
            str(k): (v or {}) for k, v in (schema.get("columns") or {}).items()
        }
        self.strict = schema.get("strict", False)
        self.rows = 0
        self.acc: dict[tuple[str, str], _Acc] = {}
        self.order: list[tuple[str, str]] = []
        self.seen: set[str] | None = None
        self.hashes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}

    def expected_dtypes(self) -> dict[str, str]:
        """Column -> the dtype the schema wants (what `summarize` parses the column as)."""
        out = {}
        for name, spec in self.columns.items():
            dtype = str(spec.get("dtype") or "")
            if dtype.startswith(("int", "Int", "uint")):
                out[name] = "int64"
            elif dtype.startswith(("float", "Float")):
                out[name] = "float64"
            elif dtype:
                out[name] = "bool" if dtype.startswith("bool") else "str"
        return out

    def _fail(self, column: str, check: str, count: int, examples: list, rows: list) -> None:
        key = (column, check)
        if key not in self.acc:
            self.acc[key] = _Acc()
            self.order.append(key)
        self.acc[key].add(count, [_plain(e) for e in examples], [int(r) for r in rows])

    def _rows(self, series: pd.Series, mask: np.ndarray, offset: int) -> tuple[list, list, int]:
        import numpy as np

        idx = np.flatnonzero(mask)
        first = idx[:MAX_EXAMPLES]
        return series.iloc[first].tolist(), [offset + int(i) for i in first], len(idx)

    def add(self, df: pd.DataFrame, summaries: list[ColumnChunk], offset: int) -> None:
        """Check one chunk whose first row is row number `offset` of the whole table."""
        self.rows += len(df)
        present = [str(c) for c in df.columns]
        if self.seen is None:
            self.seen = set(present)
            for name, spec in self.columns.items():
                if name not in self.seen and spec.get("required", True):
                    self._fail(name, "column_in_dataframe", 0, [], [])
            if self.strict is True:
                for name in present:
                    if name not in self.columns:
                        self._fail(name, "column_in_schema", 0, [], [])
        by_name = {c.name: c for c in summaries}
        for col, name in zip(df.columns, present, strict=True):
            spec = self.columns.get(name)
            summary = by_name.get(name)
            if spec is None or summary is None:
                continue
            self._column(df[col], name, spec, summary, offset)

    def _column(
        self, s: pd.Series, name: str, spec: dict[str, Any], c: ColumnChunk, offset: int
    ) -> None:
        import numpy as np

        if c.kind == "numeric":
            if c.unparsed_count:
                ex, rows, n = self._rows(s, c.unparsed, offset)
                self._fail(name, f"dtype('{spec.get('dtype')}')", n, ex, rows)
            if c.dtype == "int64" and c.sorted is not None and len(c.sorted):
                x = c.sorted
                if np.count_nonzero(x != np.floor(x)):
                    v = c.values
                    mask = np.isfinite(v) & (v != np.floor(v))
                    ex, rows, n = self._rows(s, mask, offset)
                    self._fail(name, f"dtype('{spec.get('dtype')}')", n, ex, rows)
        elif str(spec.get("dtype") or "").startswith("bool") and c.counts is not None:
            bad = [k for k in c.counts.index if str(k) not in ("True", "False")]
            if bad:
                text = as_text(s)
                mask = s.notna().to_numpy().copy()
                mask[mask] = text.isin(bad).to_numpy()
                ex, rows, n = self._rows(s, mask, offset)
                self._fail(name, f"dtype('{spec['dtype']}')", n, ex, rows)
        if spec.get("nullable", False) is False and c.missing:
            mask = s.isna().to_numpy().copy()
            if c.values is not None and c.unparsed is not None:
                mask &= ~c.unparsed
            ex, rows, n = self._rows(s, mask, offset)
            self._fail(name, "not_nullable", n, [None] * len(ex), rows)
        if spec.get("unique"):
            self._unique(s, name, offset)
        for check, args in (spec.get("checks") or {}).items():
            if c.kind == "numeric" and check in NUMERIC_CHECKS:
                self._numeric_check(s, name, check, args, c, offset)
            elif c.kind == "categorical" and check in TEXT_CHECKS:
                self._text_check(s, name, check, args, c, offset)
            else:
                self._pandera(s, name, check, args, offset)

    def _numeric_check(
        self, s: pd.Series, name: str, check: str, args: Any, c: ColumnChunk, offset: int
    ) -> None:
        import numpy as np

        x = c.sorted if c.sorted is not None else np.empty(0)
        v = c.values
        assert v is not None
        if check == "in_range":
            lo, hi, inc_lo, inc_hi = _args(
                args, ("min_value", "max_value", "include_min", "include_max")
            )
            inc_lo = True if inc_lo is None else inc_lo
            inc_hi = True if inc_hi is None else inc_hi
            below = np.searchsorted(x, lo, "left" if inc_lo else "right")
            above = len(x) - np.searchsorted(x, hi, "right" if inc_hi else "left")
            fails = below + above

            def ok(a: np.ndarray) -> np.ndarray:
                return ((a >= lo) if inc_lo else (a > lo)) & ((a <= hi) if inc_hi else (a < hi))

        elif check in ("greater_than_or_equal_to", "greater_than"):
            (lo,) = _args(args, ("min_value",))
            side = "left" if check == "greater_than_or_equal_to" else "right"
            fails = np.searchsorted(x, lo, side)

            def ok(a: np.ndarray) -> np.ndarray:
                return (a >= lo) if check == "greater_than_or_equal_to" else (a > lo)

        elif check in ("less_than_or_equal_to", "less_than"):
            (hi,) = _args(args, ("max_value",))
            side = "right" if check == "less_than_or_equal_to" else "left"
            fails = len(x) - np.searchsorted(x, hi, side)

            def ok(a: np.ndarray) -> np.ndarray:
                return (a <= hi) if check == "less_than_or_equal_to" else (a < hi)

        elif check in ("equal_to", "not_equal_to"):
            (val,) = _args(args, ("value",))
            eq = np.searchsorted(x, val, "right") - np.searchsorted(x, val, "left")
            fails = len(x) - eq if check == "equal_to" else eq

            def ok(a: np.ndarray) -> np.ndarray:
                return (a == val) if check == "equal_to" else (a != val)

        else:  # isin / notin
            (allowed,) = _args(
                args, ("allowed_values",) if check == "isin" else ("forbidden_values",)
            )
            allowed_arr = np.asarray(sorted(float(a) for a in allowed or []), dtype="float64")
            hit = np.isin(x, allowed_arr)
            fails = int((~hit).sum()) if check == "isin" else int(hit.sum())

            def ok(a: np.ndarray) -> np.ndarray:
                inside = np.isin(a, allowed_arr)
                return inside if check == "isin" else ~inside

        if int(fails) == 0 and c.infinite == 0:
            return
        with np.errstate(invalid="ignore"):
            mask = ~np.isnan(v) & ~ok(v)
        if mask.any():
            ex, rows, n = self._rows(s, mask, offset)
            self._fail(name, _label(check, args), n, ex, rows)

    def _text_check(
        self, s: pd.Series, name: str, check: str, args: Any, c: ColumnChunk, offset: int
    ) -> None:
        counts = c.counts
        if counts is None or not len(counts):
            return
        keys = [str(k) for k in counts.index]
        if check in ("isin", "notin"):
            (values,) = _args(
                args, ("allowed_values",) if check == "isin" else ("forbidden_values",)
            )
            allowed = {str(a) for a in values or []}
            bad = [k for k in keys if (k in allowed) != (check == "isin")]
        elif check in ("equal_to", "not_equal_to"):
            (val,) = _args(args, ("value",))
            bad = [k for k in keys if (k == str(val)) != (check == "equal_to")]
        elif check == "str_length":
            lo, hi = _args(args, ("min_value", "max_value"))
            bad = [
                k
                for k in keys
                if (lo is not None and len(k) < lo) or (hi is not None and len(k) > hi)
            ]
        else:
            (pattern,) = _args(
                args,
                {
                    "str_matches": ("pattern",),
                    "str_contains": ("pattern",),
                    "str_startswith": ("string",),
                    "str_endswith": ("string",),
                }[check],
            )
            pattern = str(pattern)
            if check == "str_matches":
                rx = re.compile(pattern)
                bad = [k for k in keys if not rx.match(k)]
            elif check == "str_contains":
                rx = re.compile(pattern)
                bad = [k for k in keys if not rx.search(k)]
            elif check == "str_startswith":
                bad = [k for k in keys if not k.startswith(pattern)]
            else:
                bad = [k for k in keys if not k.endswith(pattern)]
        if not bad:
            return
        text = as_text(s)
        mask = s.notna().to_numpy().copy()
        mask[mask] = text.isin(bad).to_numpy()
        ex, rows, n = self._rows(s, mask, offset)
        self._fail(name, _label(check, args), n, ex, rows)

    def _unique(self, s: pd.Series, name: str, offset: int) -> None:
        import numpy as np
        import pandas as pd

        values = s.dropna()
        dup = values.duplicated(keep=False)
        if dup.any():
            first = values[dup]
            self._fail(name, "unique", 0, first.head(MAX_EXAMPLES).tolist(), [])
        hashes = pd.util.hash_pandas_object(values.astype(str), index=False).to_numpy()
        positions = np.flatnonzero(s.notna().to_numpy()) + offset
        self.hashes.setdefault(name, []).append((hashes, positions))

    def _finish_unique(self) -> None:
        import numpy as np

        for name, parts in self.hashes.items():
            h = np.concatenate([p[0] for p in parts])
            rows = np.concatenate([p[1] for p in parts])
            order = np.argsort(h, kind="stable")
            hs = h[order]
            same = np.zeros(len(hs), dtype=bool)
            if len(hs) > 1:
                eq = hs[1:] == hs[:-1]
                same[1:] |= eq
                same[:-1] |= eq
            n = int(same.sum())
            if not n:
                self.acc.pop((name, "unique"), None)
                continue
            dup_rows = np.sort(rows[order][same])[:MAX_EXAMPLES]
            key = (name, "unique")
            if key not in self.acc:
                self.acc[key] = _Acc()
                self.order.append(key)
            acc = self.acc[key]
            acc.count = n
            acc.rows = [int(r) for r in dup_rows]

    def _pandera(self, s: pd.Series, name: str, check: str, args: Any, offset: int) -> None:
        """A check this engine does not implement: pandera runs it on this chunk."""
        import pandera.pandas as pa
        from pandera.io.pandas_io import deserialize_schema

        mini = {"columns": {name: {"nullable": True, "checks": {check: args}}}}
        frame = s.to_frame(name=name).reset_index(drop=True)
        try:
            deserialize_schema(mini).validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            cases = exc.failure_cases
            idx = [offset + int(i) for i in cases["index"].dropna().tolist()]
            self._fail(name, _label(check, args), len(cases), cases["failure_case"].tolist(), idx)
        except (AttributeError, TypeError) as exc:
            from mlops.errors import UsageError

            raise UsageError(
                f"schema check {check!r} on column {name!r} cannot be run: {exc}",
                "Use a pandera built-in check (in_range, isin, str_matches, ...).",
            ) from None

    def merge(self, other: Validator) -> Validator:
        """Fold in a validator that checked the rows that follow (another partition, checked
        from row 0 elsewhere): counts add, its row numbers shift by the rows seen here, examples
        keep the first ones in table order. Returns self."""
        shift = self.rows
        for key in other.order:
            theirs = other.acc[key]
            if key not in self.acc:
                self.acc[key] = _Acc()
                self.order.append(key)
            self.acc[key].add(theirs.count, theirs.examples, [r + shift for r in theirs.rows])
        for name, parts in other.hashes.items():
            self.hashes.setdefault(name, []).extend((h, pos + shift) for h, pos in parts)
        if self.seen is None:
            self.seen = other.seen
        self.rows += other.rows
        return self

    def finish(self) -> list[Failure]:
        """Every failure, in the order first seen; whole-column failures count every row."""
        if self.hashes:
            self._finish_unique()
        out = []
        rank = {name: i for i, name in enumerate(self.columns)}
        order = sorted(self.order, key=lambda key: rank.get(key[0], len(rank)))
        for column, check in order:
            acc = self.acc[(column, check)]
            count = acc.count
            if check in ("column_in_dataframe", "column_in_schema"):
                count = self.rows
            out.append(Failure(column, check, count, acc.examples, acc.rows))
        return out


def validate_chunk(df: pd.DataFrame, schema: dict[str, Any]) -> list[Failure]:
    """Validate one in-memory frame (convenience for tests and small data)."""
    from mlops.data.columns import summarize_frame

    v = Validator(schema)
    v.add(df, summarize_frame(df, v.expected_dtypes()), 0)
    return v.finish()
