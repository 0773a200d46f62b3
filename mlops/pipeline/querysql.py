"""Run filters and sort keys (`mlops.pipeline.query`) as SQLite expressions over `.mlops/runs.db`.

`mlops runs list --where ... --sort ...` used to read every record back and filter it in Python.
Here the parsed filter becomes one SQL expression per row, with SQLite's JSON functions reading
the JSON columns (params, metrics, extra...), so only the rows that match are decoded:

- **Three answers.** The expression is 1 (the row matches), 0 (it does not) or NULL (SQL cannot
  tell what Python would say). NULL goes to `query.evaluate` for that row only. SQL says NULL
  for: a JSON column SQLite cannot parse (Python's `json.dumps` writes NaN and Infinity, which
  SQLite 3.40's JSON parser refuses), objects and lists compared with each other, `str()` of a
  float (text compared with a number, `~` on a number: Python's repr is not SQLite's), `~` on
  non-ASCII text (SQLite's `lower()` folds ASCII only), numbers beyond 2**53 (SQLite reads big
  JSON integers as floats) and values of an unexpected SQL type. Every other case gives exactly
  `query._compare`'s answer: `and`/`or`/`not` in SQL's three-valued logic keep that (true
  and unknown is unknown, false and unknown is false).
- **Same lookup.** A dotted field resolves the way `query.lookup` does: the longest key first at
  each level (`metrics.f1.macro` finds a flattened "f1.macro" before "f1" → "macro"), missing
  when a level is not an object. Paths of more than seven parts are left to Python.
- **Same order.** `--sort F` orders by (missing or null last, numbers before text, value), then
  newest first: what `query.select`'s stable sort gives on records listed newest first. When a
  matching row's sort value is an object, a list or unreadable JSON, the caller sorts in Python.

Tested against `query.select` on a real store (tests/test_runs_sql.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops.pipeline.query import ROOTS

JSON_COLUMNS = ("targets", "stages", "params", "deps", "outs", "metrics", "verdict", "extra")
TEXT_COLUMNS = ("id", "kind", "outcome", "git_commit", "git_branch", "message")
NUMBER_COLUMNS = ("started", "ended", "exit_code")
MAX_PARTS = 7  # path parts after the column: the lookup's CASE has 2**(n-1) branches
BIG = 2.0**53  # beyond it, a JSON integer SQLite read as a float may differ from Python's int
_NUMS = "('integer','real')"


@dataclass
class Operand:
    """A value in SQL: its type (`t`: NULL when missing, else 'null' 'true' 'false' 'integer'
    'real' 'text' 'object' 'array'), its value (`v`: true/false as 1/0) and a condition that
    must hold for SQL to know them (`ok`)."""

    t: str
    v: str
    ok: str = "1"


@dataclass
class Compiled:
    """SQL text with named parameters."""

    sql: str
    args: dict[str, Any] = field(default_factory=dict)


class _Builder:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # a filter's and a sort's parameters go into one query
        self.args: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        name = f"{self.prefix}{len(self.args)}"
        self.args[name] = value
        return f":{name}"

    # ---- operands ------------------------------------------------------------------------

    def literal(self, value: Any) -> Operand:
        if value is None:
            return Operand("'null'", "NULL")
        if isinstance(value, bool):
            return Operand("'true'" if value else "'false'", "1" if value else "0")
        if isinstance(value, int):
            ok = "1" if abs(value) < BIG else "0"
            return Operand("'integer'", self.param(value), ok)
        if isinstance(value, float):
            ok = "1" if abs(value) < BIG else "0"  # NaN cannot be written in a filter
            return Operand("'real'", self.param(value), ok)
        return Operand("'text'", self.param(str(value)))

    def field(self, path: str) -> Operand:
        root, *rest = path.split(".")
        if root not in ROOTS:
            raise ValueError(path)
        if root in JSON_COLUMNS:
            return self._json(root, rest)
        if rest:  # a level below a value that is not an object: missing
            return Operand("NULL", "NULL")
        if root in TEXT_COLUMNS or root in NUMBER_COLUMNS:  # what sqlite3 reads back
            known = "('text','integer','real','null')"
            t = f"typeof({root})"
            return Operand(t, root, f"({t} IN {known} AND {self._small(root, t)})")
        if root == "git_dirty":
            return Operand(
                "(CASE WHEN git_dirty IS NULL THEN 'null' WHEN git_dirty THEN 'true' "
                "ELSE 'false' END)",
                "(CASE WHEN git_dirty THEN 1 ELSE 0 END)",
                "(typeof(git_dirty) IN ('integer','null'))",
            )
        # duration: ended - started, None while running
        return Operand(
            "(CASE WHEN ended IS NULL THEN 'null' ELSE typeof(ended - started) END)",
            "(ended - started)",
            f"(typeof(started) IN {_NUMS} AND typeof(ended) IN ('integer','real','null'))",
        )

    @staticmethod
    def _small(v: str, t: str) -> str:
        return f"({t} IS NULL OR {t} NOT IN {_NUMS} OR abs({v}) < {BIG!r})"

    def _json(self, col: str, parts: list[str]) -> Operand:
        if len(parts) > MAX_PARTS:
            return Operand("NULL", "NULL", "0")
        if not parts:  # the column itself: None reads back as [] or {} (RunStore._from_row)
            empty = "'[]'" if col in ("targets", "stages") else "'{}'"
            kind = "'array'" if col in ("targets", "stages") else "'object'"
            t = f"(CASE json_type({col}) WHEN 'null' THEN {kind} ELSE json_type({col}) END)"
            v = f"(CASE json_type({col}) WHEN 'null' THEN {empty} ELSE json({col}) END)"
            return Operand(t, v, self._valid(col, self._small(v, t)))
        path = self._path(col, "$", parts)
        t = f"json_type({col}, {path})"
        v = f"json_extract({col}, {path})"
        return Operand(t, v, self._valid(col, self._small(v, t)))

    @staticmethod
    def _valid(col: str, then: str) -> str:
        # CASE, not AND: SQLite may evaluate both sides of AND, and JSON functions raise an
        # error on text they cannot parse
        return f"(CASE WHEN json_valid({col}) THEN {then} ELSE 0 END)"

    def _path(self, col: str, base: str, parts: list[str]) -> str:
        """SQL giving the JSON path `query.lookup` would follow (NULL when it finds nothing)."""
        if not parts:
            return self.param(base)
        branches = []
        for j in range(len(parts), 0, -1):  # longest key first
            step = f'{base}."{".".join(parts[:j])}"'
            rest = self._path(col, step, parts[j:]) if j < len(parts) else self.param(step)
            branches.append(f"WHEN json_type({col}, {self.param(step)}) IS NOT NULL THEN {rest}")
        return f"(CASE {' '.join(branches)} ELSE NULL END)"

    # ---- the filter ----------------------------------------------------------------------

    def value(self, node: tuple) -> Operand:
        return self.field(node[1]) if node[0] == "field" else self.literal(node[1])

    def expr(self, node: tuple) -> str:
        kind = node[0]
        if kind in ("or", "and"):
            return f"({self.expr(node[1])} {kind.upper()} {self.expr(node[2])})"
        if kind == "not":
            return f"(NOT {self.expr(node[1])})"
        if kind == "truthy":
            a = self.value(node[1])
            return f"(CASE WHEN NOT {a.ok} THEN NULL ELSE {_truthy(a)} END)"
        a, b = self.value(node[2]), self.value(node[3])
        return f"(CASE WHEN NOT ({a.ok} AND {b.ok}) THEN NULL ELSE {_compare(node[1], a, b)} END)"


def _truthy(a: Operand) -> str:
    return (
        f"(CASE {a.t} WHEN 'true' THEN 1 WHEN 'integer' THEN {a.v} != 0 "
        f"WHEN 'real' THEN {a.v} != 0 WHEN 'text' THEN {a.v} != '' "
        f"WHEN 'array' THEN {a.v} != '[]' WHEN 'object' THEN {a.v} != '{{}}' ELSE 0 END)"
    )


def _str(a: Operand) -> str:
    """Python's `str()` of the value, NULL where SQL cannot write it (floats, objects)."""
    return (
        f"(CASE {a.t} WHEN 'text' THEN {a.v} WHEN 'integer' THEN CAST({a.v} AS TEXT) "
        "WHEN 'null' THEN 'None' WHEN 'true' THEN 'True' WHEN 'false' THEN 'False' END)"
    )


def _ascii(s: str) -> str:
    return f"({s} NOT GLOB ('*[^' || char(1) || '-' || char(127) || ']*'))"


def _compare(op: str, a: Operand, b: Operand) -> str:
    """`query._compare(op, a, b)` in SQL: 1, 0 or NULL (unknown)."""
    missing = f"{a.t} IS NULL OR {b.t} IS NULL"
    if op == "~":
        sa, sb = _str(a), _str(b)
        contains = (
            f"(CASE WHEN {sa} IS NULL OR {sb} IS NULL OR NOT ({_ascii(sa)} AND {_ascii(sb)}) "
            f"THEN NULL ELSE instr(lower({sa}), lower({sb})) > 0 END)"
        )
        return f"(CASE WHEN {missing} THEN 0 ELSE {contains} END)"
    flags = "('null','true','false')"
    numeric_or_bool = "('integer','real','true','false')"
    nonnum = "('text','object','array')"
    if op in ("==", "!="):
        neg = "NOT " if op == "!=" else ""
        equal_none_bool = (
            f"(CASE WHEN {a.t} = 'null' OR {b.t} = 'null' THEN ({a.t} = 'null' AND {b.t} = 'null') "
            f"WHEN {a.t} IN {numeric_or_bool} AND {b.t} IN {numeric_or_bool} THEN {a.v} = {b.v} "
            "ELSE 0 END)"
        )
        # a number and text or an object: str(a) == str(b)
        str_equal = (
            f"(CASE WHEN {a.t} IN ('object','array') OR {b.t} IN ('object','array') THEN 0 "
            f"WHEN {a.t} = 'real' OR {b.t} = 'real' THEN NULL "
            f"ELSE CAST({a.v} AS TEXT) = CAST({b.v} AS TEXT) END)"
        )
        both_other = (
            f"(CASE WHEN {a.t} = 'text' AND {b.t} = 'text' THEN {a.v} = {b.v} "
            f"WHEN {a.t} = 'text' OR {b.t} = 'text' THEN 0 ELSE NULL END)"
        )
        return (
            f"(CASE WHEN {missing} THEN 0 "
            f"WHEN {a.t} IN {flags} OR {b.t} IN {flags} THEN {neg}{equal_none_bool} "
            f"WHEN {a.t} IN {_NUMS} AND {b.t} IN {_NUMS} THEN {neg}({a.v} = {b.v}) "
            f"WHEN {a.t} IN {_NUMS} OR {b.t} IN {_NUMS} THEN {neg}{str_equal} "
            f"ELSE {neg}{both_other} END)"
        )
    sql_op = op  # one of < <= > >= (the parser's)
    return (
        f"(CASE WHEN {missing} THEN 0 "
        f"WHEN {a.t} IN {flags} OR {b.t} IN {flags} THEN 0 "
        f"WHEN {a.t} IN {_NUMS} AND {b.t} IN {_NUMS} THEN {a.v} {sql_op} {b.v} "
        f"WHEN {a.t} IN {_NUMS} OR {b.t} IN {_NUMS} THEN 0 "
        f"WHEN {a.t} = 'text' AND {b.t} = 'text' THEN {a.v} {sql_op} {b.v} "
        f"WHEN {a.t} = 'text' OR {b.t} = 'text' THEN 0 "
        f"WHEN {a.t} IN {nonnum} AND {b.t} IN {nonnum} THEN NULL ELSE 0 END)"
    )


def where(node: tuple) -> Compiled:
    """The parsed filter (`query.parse`) as an SQL expression: 1, 0, or NULL for "ask Python"."""
    b = _Builder("w")
    return Compiled(b.expr(node), b.args)


@dataclass
class Order:
    """`ORDER BY` text for a sort field, and a condition true for rows SQL cannot place."""

    sql: str
    unknown: str
    args: dict[str, Any] = field(default_factory=dict)


def order(path: str, descending: bool = False) -> Order:
    """`query.select`'s order by `path` (missing and null last either way), newest first
    among equals."""
    b = _Builder("s")
    f = b.field(path)
    # every expression guarded, so that no JSON function reads text it cannot parse
    a = Operand(
        f"(CASE WHEN {f.ok} THEN {f.t} ELSE 'unknown' END)", f"(CASE WHEN {f.ok} THEN {f.v} END)"
    )
    d = "DESC" if descending else "ASC"
    last = f"(CASE WHEN {a.t} IS NULL OR {a.t} = 'null' THEN 1 ELSE 0 END)"
    sub = f"(CASE WHEN {a.t} IN {_NUMS} THEN 0 ELSE 1 END)"
    num = f"(CASE WHEN {a.t} IN {_NUMS} THEN {a.v} END)"
    text = (
        f"(CASE {a.t} WHEN 'text' THEN {a.v} WHEN 'true' THEN 'True' WHEN 'false' THEN 'False' END)"
    )
    sql = f"{last} ASC, {sub} {d}, {num} {d}, {text} {d}, started DESC, id DESC"
    unknown = f"({a.t} IN ('object','array','unknown'))"
    return Order(sql, unknown, b.args)
