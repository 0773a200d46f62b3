"""Statistics profiles: per-feature summaries that later comparisons read instead of the data.

A profile (format 2) is a JSON-able dict::

    {"format": 2, "rows": 344, "chunks": 1, "columns": {
        "bill_length_mm": {"kind": "numeric", "dtype": "float64", "count": 344, "missing": 2,
            "infinite": 0, "invalid": 0, "zeros": 0, "distinct": 164, "mean": 43.9, "std": 5.46,
            "min": 32.1, "max": 59.6, "quantiles": {"p01": ..., "p50": ..., "p99": ...},
            "histogram": {"edges": [21 reference-quantile edges], "counts": [20 counts]},
            "sketch": {"exact": true, "values": [...], "counts": [...]}},
        "island": {"kind": "categorical", "dtype": "str", "count": 344, "missing": 0,
            "distinct": 3, "top": {"Biscoe": 168, "Dream": 124, "Torgersen": 52}, "other": 0}}}

`sketch` is the distribution drift tests read: with at most 1,000 distinct values it is exact
(every value and its count); otherwise `values` are 1,001 quantiles of the data (minimum to
maximum) and `counts[i]` is the number of values in (values[i-1], values[i]], so the cumulative
distribution is known at every point. The training data's profile is stored in the model bundle as
`reference.json`; the validate stage writes each run's profile as a DVC output.

Profiles are built in one pass over chunks (`Profiler.add`), so a file larger than memory works;
with one chunk every figure is exact, with several the quantile sketch is merged (error about 0.1%
of the rows per value).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlops.data.columns import ColumnChunk, kind_of, summarize_frame

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

FORMAT = 2
N_BINS = 20
SKETCH_POINTS = 1001
MAX_EXACT = 1000
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
TOP_VALUES = 1000
MAX_TRACKED_CATEGORIES = 100_000


def sorted_quantile(x: np.ndarray, probs: Any) -> np.ndarray:
    """`np.quantile(x, probs)` (linear) for an already sorted array, without re-partitioning."""
    import numpy as np

    pos = np.asarray(probs, dtype="float64") * (len(x) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(x) - 1)
    frac = pos - lo
    return x[lo] + (x[hi] - x[lo]) * frac


def _f(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class Sketch:
    """A cumulative distribution known at `points`: exact (step) or a quantile sketch (linear)."""

    def __init__(self, points: np.ndarray, cum: np.ndarray, exact: bool) -> None:
        self.points = points
        self.cum = cum  # count of values <= points[i]
        self.exact = exact

    @property
    def n(self) -> float:
        return float(self.cum[-1]) if len(self.cum) else 0.0

    @classmethod
    def from_sorted(cls, x: np.ndarray, distinct: int | None = None) -> Sketch:
        """Exact sketch of a sorted array: its distinct values, or its 1,001 quantiles."""
        import numpy as np

        n = len(x)
        if n == 0:
            return cls(np.empty(0), np.empty(0), True)
        if distinct is None:
            distinct = int(np.count_nonzero(x[1:] != x[:-1])) + 1
        if distinct <= MAX_EXACT:
            starts = np.flatnonzero(x[1:] != x[:-1]) + 1
            values = x[np.concatenate(([0], starts))]
            cum = np.concatenate((starts, [n])).astype("float64")
            return cls(values, cum, True)
        points = np.unique(sorted_quantile(x, np.linspace(0, 1, SKETCH_POINTS)))
        cum = np.searchsorted(x, points, side="right").astype("float64")
        return cls(points, cum, False)

    @classmethod
    def from_profile(cls, sketch: dict[str, Any]) -> Sketch:
        import numpy as np

        points = np.asarray(sketch.get("values", []), dtype="float64")
        cum = np.cumsum(np.asarray(sketch.get("counts", []), dtype="float64"))
        return cls(points, cum, bool(sketch.get("exact", False)))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """Count of values <= x (right-continuous)."""
        import numpy as np

        if not len(self.points):
            return np.zeros(len(x))
        if self.exact:
            idx = np.searchsorted(self.points, x, side="right")
            return np.concatenate(([0.0], self.cum))[idx]
        return np.interp(x, self.points, self.cum, left=0.0, right=self.n)

    def quantile(self, probs: np.ndarray) -> np.ndarray:
        """Inverse of the distribution (first point whose cumulative share reaches each prob)."""
        import numpy as np

        if not len(self.points):
            return np.full(len(probs), np.nan)
        idx = np.searchsorted(self.cum, np.asarray(probs) * self.n - 1e-9, side="left")
        return self.points[np.clip(idx, 0, len(self.points) - 1)]

    def interpolated_quantile(self, probs: np.ndarray) -> np.ndarray:
        import numpy as np

        if not len(self.points):
            return np.full(len(probs), np.nan)
        if self.exact:
            return self.quantile(probs)
        return np.interp(np.asarray(probs) * self.n, self.cum, self.points)

    @staticmethod
    def merge(a: Sketch | None, b: Sketch) -> Sketch:
        """The sketch of two chunks together (exact while at most 1,000 distinct values)."""
        import numpy as np

        if a is None or not len(a.points):
            return b
        if not len(b.points):
            return a
        grid = np.union1d(a.points, b.points)
        cum = a.cdf(grid) + b.cdf(grid)
        if a.exact and b.exact and len(grid) <= MAX_EXACT:
            return Sketch(grid, cum, True)
        total = cum[-1]
        probs = np.linspace(0, 1, SKETCH_POINTS)
        idx = np.clip(np.searchsorted(cum, probs * total - 1e-9, side="left"), 0, len(grid) - 1)
        idx[0], idx[-1] = 0, len(grid) - 1
        keep = np.unique(idx)
        return Sketch(grid[keep], cum[keep], False)

    def to_dict(self) -> dict[str, Any]:
        import numpy as np

        counts = np.diff(np.concatenate(([0.0], np.round(self.cum))))
        return {
            "exact": self.exact,
            "values": [float(v) for v in self.points],
            "counts": [int(c) for c in counts],
        }


def histogram_edges(sketch: Sketch, bins: int = N_BINS) -> list[float]:
    """Bin edges at the data's quantiles (0, 1/bins, ..., 1), duplicates removed."""
    import numpy as np

    if not len(sketch.points):
        return []
    edges = sketch.quantile(np.linspace(0, 1, bins + 1))
    edges[0], edges[-1] = sketch.points[0], sketch.points[-1]
    return [float(e) for e in np.unique(edges)]


def histogram_counts(sketch: Any, edges: list[float]) -> dict[str, Any]:
    """Counts on `edges`: first bin [e0, e1], then (e[i-1], e[i]]; values outside go to
    `below` / `above` (and are added to the first / last bin of `counts`)."""
    import numpy as np

    e = np.asarray(edges, dtype="float64")
    if len(e) < 2:
        n = round(sketch.n)
        return {
            "edges": [float(v) for v in e],
            "counts": [n] if len(e) else [],
            "below": 0,
            "above": 0,
        }
    below = float(sketch.cdf(np.array([np.nextafter(e[0], -np.inf)]))[0])
    at = sketch.cdf(e)
    counts = np.diff(at)
    counts[0] += at[0]  # the first bin is closed on the left
    above = sketch.n - at[-1]
    counts[-1] += above
    return {
        "edges": [float(v) for v in e],
        "counts": [round(c) for c in counts],
        "below": round(below),
        "above": round(above),
    }


class NumericAccumulator:
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype
        self.rows = self.missing = self.infinite = self.invalid = self.zeros = 0
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.sketch: Sketch | None = None
        self.chunks = 0
        self.distinct = 0
        self.quantiles: list[float] | None = None  # exact, while there is one chunk

    def add(self, c: ColumnChunk) -> None:
        import numpy as np

        x = c.sorted if c.sorted is not None else np.empty(0)
        self.rows += c.rows
        self.missing += c.missing
        self.infinite += c.infinite
        self.invalid += c.unparsed_count
        self.chunks += 1
        m = len(x)
        if m:
            lo, hi = np.searchsorted(x, 0.0, "left"), np.searchsorted(x, 0.0, "right")
            self.zeros += int(hi - lo)
            mean, m2 = c.mean, c.m2
            total = self.n + m
            delta = mean - self.mean
            self.mean += delta * m / total
            self.m2 += m2 + delta * delta * self.n * m / total
            self.n = total
            self.min = min(self.min, float(x[0]))
            self.max = max(self.max, float(x[-1]))
            distinct = c.distinct
            chunk_sketch = Sketch.from_sorted(x, distinct)
            self.distinct = distinct if self.chunks == 1 else max(self.distinct, distinct)
            self.quantiles = (
                [float(q) for q in sorted_quantile(x, QUANTILES)] if self.chunks == 1 else None
            )
            self.sketch = Sketch.merge(self.sketch, chunk_sketch)
        elif self.chunks > 1:
            self.quantiles = None

    def merge(self, other: NumericAccumulator) -> None:
        """Fold in the accumulator of the rows that follow (another partition of the table)."""
        self.rows += other.rows
        self.missing += other.missing
        self.infinite += other.infinite
        self.invalid += other.invalid
        self.zeros += other.zeros
        chunks = self.chunks + other.chunks
        if other.n:
            total = self.n + other.n
            delta = other.mean - self.mean
            self.mean += delta * other.n / total
            self.m2 += other.m2 + delta * delta * self.n * other.n / total
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
            self.distinct = other.distinct if not self.n else max(self.distinct, other.distinct)
            if not self.n:
                self.quantiles = other.quantiles
            self.n = total
            if other.sketch is not None:
                self.sketch = Sketch.merge(self.sketch, other.sketch)
        if chunks > 1:
            self.quantiles = None  # exact quantiles only while one chunk was seen
        self.chunks = chunks

    def result(self) -> dict[str, Any]:
        import numpy as np

        out: dict[str, Any] = {
            "kind": "numeric",
            "dtype": self.dtype,
            "count": self.rows,
            "missing": self.missing,
            "infinite": self.infinite,
            "invalid": self.invalid,
            "zeros": self.zeros,
        }
        sketch = self.sketch
        if sketch is None or self.n == 0:
            out["distinct"] = 0
            return out
        exact_distinct = sketch.exact or self.chunks == 1
        out["distinct"] = len(sketch.points) if sketch.exact else self.distinct
        if not exact_distinct:
            out["distinct_is_lower_bound"] = True
        qs = self.quantiles
        if qs is None:
            qs = [float(q) for q in sketch.interpolated_quantile(np.asarray(QUANTILES))]
        out.update(
            mean=_f(self.mean),
            std=_f(math.sqrt(self.m2 / (self.n - 1))) if self.n > 1 else 0.0,
            min=_f(self.min),
            max=_f(self.max),
            quantiles={f"p{int(q * 100):02d}": _f(v) for q, v in zip(QUANTILES, qs, strict=True)},
        )
        edges = histogram_edges(sketch)
        hist = histogram_counts(sketch, edges)
        out["histogram"] = {"edges": hist["edges"], "counts": hist["counts"]}
        out["sketch"] = sketch.to_dict()
        return out


class CategoricalAccumulator:
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype
        self.rows = self.missing = 0
        self.counts: pd.Series | None = None
        self.dropped = 0  # count of values pruned when more than 100,000 categories were seen

    def add(self, c: ColumnChunk) -> None:
        self.rows += c.rows
        self.missing += c.missing
        counts = c.counts
        if counts is None:
            return
        if self.counts is None:
            self.counts = counts.copy()
        else:
            self.counts = self.counts.add(counts, fill_value=0)
        if len(self.counts) > MAX_TRACKED_CATEGORIES:
            self.counts = self.counts.sort_values(ascending=False)
            self.dropped += int(self.counts.iloc[TOP_VALUES * 10 :].sum())
            self.counts = self.counts.iloc[: TOP_VALUES * 10]

    def merge(self, other: CategoricalAccumulator) -> None:
        """Fold in the accumulator of another partition of the table."""
        self.rows += other.rows
        self.missing += other.missing
        self.dropped += other.dropped
        if other.counts is None:
            return
        if self.counts is None:
            self.counts = other.counts.copy()
        else:
            self.counts = self.counts.add(other.counts, fill_value=0)
        if len(self.counts) > MAX_TRACKED_CATEGORIES:
            self.counts = self.counts.sort_values(ascending=False)
            self.dropped += int(self.counts.iloc[TOP_VALUES * 10 :].sum())
            self.counts = self.counts.iloc[: TOP_VALUES * 10]

    def result(self) -> dict[str, Any]:
        counts = self.counts
        out: dict[str, Any] = {
            "kind": "categorical",
            "dtype": self.dtype,
            "count": self.rows,
            "missing": self.missing,
        }
        if counts is None or not len(counts):
            out.update(distinct=0, top={}, other=0)
            return out
        counts = counts.sort_values(ascending=False, kind="stable")
        top = counts.iloc[:TOP_VALUES]
        out["distinct"] = len(counts)
        if self.dropped:
            out["distinct_is_lower_bound"] = True
        out["top"] = {str(k): int(v) for k, v in top.items()}
        out["other"] = int(counts.iloc[TOP_VALUES:].sum()) + self.dropped
        return out


class Profiler:
    """Builds a profile from chunks: `add(summaries)` for each chunk, then `result()`."""

    def __init__(self) -> None:
        self.columns: dict[str, NumericAccumulator | CategoricalAccumulator] = {}
        self.rows = 0
        self.chunks = 0

    def add(self, summaries: list[ColumnChunk]) -> None:
        self.chunks += 1
        if summaries:
            self.rows += summaries[0].rows
        for c in summaries:
            acc = self.columns.get(c.name)
            if acc is None:
                kind = kind_of(c.dtype)
                acc = (NumericAccumulator if kind == "numeric" else CategoricalAccumulator)(c.dtype)
                self.columns[c.name] = acc
            acc.add(c)

    def merge(self, other: Profiler) -> Profiler:
        """Fold in the profiler of the rows that follow (another partition); returns self.

        Profilers built on different machines merge into the profile of the whole table: counts
        and moments exactly, the quantile sketches as `Sketch.merge` does for chunks."""
        self.rows += other.rows
        self.chunks += other.chunks
        for name, acc in other.columns.items():
            mine = self.columns.get(name)
            if mine is None:
                self.columns[name] = acc
            elif type(mine) is type(acc):
                mine.merge(acc)  # type: ignore[arg-type]
            else:  # cannot happen when every partition is summarised with the same dtypes
                mine.rows += acc.rows
                mine.missing += acc.missing
        return self

    def result(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "rows": self.rows,
            "chunks": self.chunks,
            "columns": {name: acc.result() for name, acc in self.columns.items()},
        }


def profile_frame(df: pd.DataFrame, reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Profile every column of an in-memory frame (exact: one chunk).

    `reference` is accepted for compatibility and ignored: comparisons bin the new data on the
    reference's points themselves (`mlops.data.drift.compare`).
    """
    del reference
    profiler = Profiler()
    profiler.add(summarize_frame(df))
    return profiler.result()


def column_sketch(col: dict[str, Any]) -> Sketch | None:
    """The distribution sketch of a profile's numeric column (None if it has none)."""
    sketch = col.get("sketch")
    if sketch is None:
        return None
    return Sketch.from_profile(sketch)


def check_format(profile: dict[str, Any], source: str) -> dict[str, Any]:
    """Refuse profiles this version cannot compare against (format 1 had no sketch)."""
    from mlops.errors import UsageError

    if not isinstance(profile, dict) or "columns" not in profile:
        raise UsageError(f"{source} is not a statistics profile (no `columns`)")
    if profile.get("format") != FORMAT:
        raise UsageError(
            f"{source} is a profile of format {profile.get('format', 1)}; this mlops reads "
            f"format {FORMAT}",
            "Rebuild it: rerun the pipeline (`mlops run --force`) so train writes a new reference.",
        )
    return profile
