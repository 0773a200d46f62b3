"""Checks a partial read from disk (`mlops.monitor.partials`) has the shape `compute` gives:
its checksum guards against damage; this, against a file that is well-formed JSON with the right
checksum but not a partial of this setup."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.monitor.partials import unpack

if TYPE_CHECKING:
    from mlops.monitor.partials import Setup


def valid(part: Any, setup: Setup) -> bool:
    """Whether a partial read from disk has the shape `compute` gives for this setup (its
    checksum guards against damage; this, against a file that is well-formed JSON with the
    right checksum but not a partial of this setup): counts are non-negative integers, lists
    have the lengths the bucket count, classes, points and categories fix."""
    try:
        nb = part["nb"]
        ints = [part["rows"], part["requests"], part["live_rows"], part["b0"], nb]
        if not all(type(v) is int for v in ints) or min(ints[:3]) < 0 or nb < 0:
            return False
        if not all(_float_or_none(part[k]) for k in ("first", "last")):
            return False
        s = part["series"]
        if not (_counts_ok(s["rows"], nb) and _counts_ok(s["requests"], nb)):
            return False
        if len(s["latency"]) != nb:
            return False
        for v, c in s["latency"]:
            values, counts = unpack(v, "<f8"), unpack(c, "<i8")
            if len(values) != len(counts) or (len(counts) and int(counts.min()) < 0):
                return False
        if not _table_ok(s["classes"], nb, len(setup.classes)):
            return False
        for num in setup.numeric:
            d = part["drift"][num.name]
            if not _counts_ok(d["le"], len(num.points)) or not all(
                type(d[k]) is int and d[k] >= 0 for k in ("n", "missing", "infinite", "nulls")
            ):
                return False
            int(d["total"], 16), int(d["total_sq"], 16)
            if not (_float_or_none(d["low"]) and _float_or_none(d["high"])):
                return False
            if num.name != "confidence" and not _table_ok(
                s["js"][num.name], nb, int(num.edge_cum[-1]) + 1
            ):
                return False
        for name, _, top in setup.text:
            d = part["drift"][name]
            if not _table_ok(s["js"][name], nb, len(top) + 1) or not _pairs_ok(d["counts"]):
                return False
        if setup.prediction and not _pairs_ok(part["drift"]["prediction"]["counts"]):
            return False
        perf = part["perf"]
        if perf is not None and not (
            _counts_ok(perf["labelled"], nb)
            and _counts_ok(perf["hits"], nb)
            and all(_triples_ok(rows) for _, rows in perf["versions"])
            and _triples_ok(perf["live"])
        ):
            return False
        return all(isinstance(v, str) for v in part["pvalues"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return False


def _float_or_none(v: Any) -> bool:
    return v is None or type(v) is float


def _array(values: Any, shape: tuple[int, ...], kind: str) -> bool:
    """A list (of lists) of numbers of this shape: integers >= 0 (kind "i") or floats ("f")."""
    import numpy as np

    if not isinstance(values, list):
        return False
    a = np.asarray(values)  # a ragged list raises ValueError: not valid
    if a.shape != shape:
        return values == [] and 0 in shape
    if not a.size:
        return True
    if kind == "f":
        return a.dtype.kind in "fi"
    return a.dtype.kind == "i" and int(a.min()) >= 0


def _counts_ok(values: Any, n: int) -> bool:
    return _array(values, (n,), "i")


def _table_ok(rows: Any, n: int, width: int) -> bool:
    return _array(rows, (n, width), "i")


def _pairs_ok(pairs: Any) -> bool:
    return all(isinstance(v, str) and type(c) is int and c >= 0 for v, c in pairs)


def _triples_ok(rows: Any) -> bool:
    return all(
        isinstance(a, str) and isinstance(b, str) and type(c) is int and c >= 0 for a, b, c in rows
    )
