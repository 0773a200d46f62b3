"""Filter and sort run records: `metrics.accuracy > 0.9 and (params.train.C < 1 or kind == exp)`.

A small, safe expression language (a tokenizer and a recursive-descent parser; nothing is ever
evaluated as Python):

    expr  := term ("or" term)*           also ||
    term  := factor ("and" factor)*      also &&
    factor:= "not" factor | "(" expr ")" | value [op value]
    op    := == = != < <= > >= ~         (~ : the text contains)
    value := field | number | 'text' | "text" | true | false | null | bare-word

A field is a dotted path from a record's top level: `metrics.accuracy`, `params.train.C`,
`extra.overrides.train.C`, `outcome`, `kind`, `git_branch`, `duration`... Flattened metric names
that contain dots (`metrics.f1.macro`) resolve too. A bare word that is not a field is text
(`outcome == ok`). A comparison with a missing field is false.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlops.errors import UsageError

ROOTS = {
    "id",
    "kind",
    "started",
    "ended",
    "outcome",
    "exit_code",
    "git_commit",
    "git_dirty",
    "git_branch",
    "targets",
    "stages",
    "params",
    "deps",
    "outs",
    "metrics",
    "verdict",
    "message",
    "extra",
    "duration",
}
OPS = ("==", "!=", "<=", ">=", "<", ">", "=", "~")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|-?\.\d+(?:[eE][-+]?\d+)?)
      | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|<=|>=|&&|\|\||[<>=~()])
      | (?P<word>[A-Za-z_][\w.\-]*)
    )""",
    re.X,
)
MISSING = object()


@dataclass
class Token:
    kind: str  # num | str | op | word | end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _error(text, pos, "unexpected character")
        kind = m.lastgroup or "word"
        start = m.start(kind)
        tokens.append(Token(kind, m.group(kind), start))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _error(text: str, pos: int, what: str) -> UsageError:
    return UsageError(
        f"cannot read the filter at column {pos + 1}: {what}\n  {text}\n  {' ' * pos}^",
        "Write comparisons like `metrics.accuracy > 0.9 and params.train.C < 1`, joined by "
        "and/or, grouped with parentheses; quote text with spaces.",
    )


class Parser:
    """Builds a tree of tuples: ("or", a, b) ("and", a, b) ("not", a) ("cmp", op, l, r)
    and leaves ("field", path) ("lit", value)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _is(self, *words: str) -> bool:
        tok = self.peek()
        return (tok.kind == "word" and tok.text.lower() in words) or (
            tok.kind == "op" and tok.text in words
        )

    def parse(self) -> tuple:
        if self.peek().kind == "end":
            raise _error(self.text, 0, "the filter is empty")
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise _error(self.text, tok.pos, f"unexpected {tok.text!r}")
        return node

    def expr(self) -> tuple:
        node = self.term()
        while self._is("or", "||"):
            self.take()
            node = ("or", node, self.term())
        return node

    def term(self) -> tuple:
        node = self.factor()
        while self._is("and", "&&"):
            self.take()
            node = ("and", node, self.factor())
        return node

    def factor(self) -> tuple:
        if self._is("not"):
            self.take()
            return ("not", self.factor())
        tok = self.peek()
        if tok.kind == "op" and tok.text == "(":
            self.take()
            node = self.expr()
            close = self.take()
            if close.text != ")":
                raise _error(self.text, close.pos, "expected `)`")
            return node
        left = self.value()
        tok = self.peek()
        if tok.kind == "op" and tok.text in OPS:
            self.take()
            right = self.value()
            return ("cmp", "==" if tok.text == "=" else tok.text, left, right)
        return ("truthy", left)

    def value(self) -> tuple:
        tok = self.take()
        if tok.kind == "num":
            return ("lit", float(tok.text) if re.search(r"[.eE]", tok.text) else int(tok.text))
        if tok.kind == "str":
            body = tok.text[1:-1]
            return ("lit", re.sub(r"\\(.)", r"\1", body))
        if tok.kind == "word":
            low = tok.text.lower()
            if low in ("true", "false"):
                return ("lit", low == "true")
            if low in ("null", "none"):
                return ("lit", None)
            if low in ("and", "or", "not"):
                raise _error(self.text, tok.pos, f"expected a value before {tok.text!r}")
            root = tok.text.split(".", 1)[0]
            if root in ROOTS:
                return ("field", tok.text)
            return ("lit", tok.text)
        raise _error(
            self.text,
            tok.pos,
            "expected a field or a value" if tok.kind != "end" else "the filter ends too early",
        )


def parse(text: str) -> tuple:
    """Parse a filter; raise `UsageError` (exit 2) pointing at the problem."""
    return Parser(text).parse()


def lookup(data: Any, path: str) -> Any:
    """`params.train.C` in nested dicts; keys that contain dots (flattened metrics) match too."""
    parts = path.split(".")
    cur = data
    i = 0
    while i < len(parts):
        if not isinstance(cur, dict):
            return MISSING
        for j in range(len(parts), i, -1):  # longest key first: "f1.macro" before "f1"
            key = ".".join(parts[i:j])
            if key in cur:
                cur = cur[key]
                i = j
                break
        else:
            return MISSING
    return cur


def _compare(op: str, a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return False
    if op == "~":
        return str(b).lower() in str(a).lower()
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        if op in ("==", "!="):
            return (a == b) == (op == "==")
        return False
    nums = (int, float)
    if isinstance(a, nums) != isinstance(b, nums):
        if op in ("==", "!="):
            return (str(a) == str(b)) == (op == "==")
        return False
    try:
        return {
            "==": a == b,
            "!=": a != b,
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
        }[op]
    except TypeError:
        return False


def _value(node: tuple, row: dict[str, Any]) -> Any:
    return lookup(row, node[1]) if node[0] == "field" else node[1]


def evaluate(node: tuple, row: dict[str, Any]) -> bool:
    """True when the record (as a dict) matches the parsed filter."""
    kind = node[0]
    if kind == "or":
        return evaluate(node[1], row) or evaluate(node[2], row)
    if kind == "and":
        return evaluate(node[1], row) and evaluate(node[2], row)
    if kind == "not":
        return not evaluate(node[1], row)
    if kind == "truthy":
        v = _value(node[1], row)
        return v is not MISSING and bool(v)
    return _compare(node[1], _value(node[2], row), _value(node[3], row))


def sort_key(path: str):
    """A key function ordering rows by a field; rows without it sort last either way."""

    def key(row: dict[str, Any]) -> tuple:
        v = lookup(row, path)
        if v is MISSING or v is None:
            return (1, 0, "")
        if isinstance(v, int | float) and not isinstance(v, bool):
            return (0, 0, v)
        return (0, 1, str(v))

    return key


def check_sort(sort: str) -> str:
    """The sort field, or `UsageError` (exit 2) when it is not a field of a run record."""
    if sort.split(".", 1)[0] not in ROOTS:
        raise UsageError(
            f"cannot sort by {sort!r}: not a field of a run record",
            "Sort by metrics.NAME, params.SECTION.KEY, started, duration, ...",
        )
    return sort


def record_row(record: Any) -> dict[str, Any]:
    """A run record as the dict filters and sort keys read (with `duration`)."""
    row = record.to_dict()
    row["duration"] = record.duration
    return row


def select(
    records: list[Any],
    where: str | None = None,
    sort: str | None = None,
    descending: bool = False,
    limit: int | None = None,
) -> list[Any]:
    """Records matching `where`, ordered by `sort` (missing values last), at most `limit`."""
    node = parse(where) if where else None
    rows = [(r, record_row(r)) for r in records]
    if node is not None:
        rows = [(r, row) for r, row in rows if evaluate(node, row)]
    if sort:
        field = check_sort(sort)
        key = sort_key(field)
        present = [(r, row) for r, row in rows if key(row)[0] == 0]
        absent = [(r, row) for r, row in rows if key(row)[0] == 1]
        present.sort(key=lambda t: key(t[1]), reverse=descending)
        rows = present + absent
    out = [r for r, _ in rows]
    return out[:limit] if limit else out
