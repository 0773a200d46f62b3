"""A live numeric column summarised by counts, for drift without sorting a million values.

`mlops.data.drift` compares a numeric column of live traffic with the bundle's reference
profile. For the methods below, everything it reads of the live column is the count of values
at or below a few points the reference fixes in advance, plus the count, mean and standard
deviation:

- `ks` against an exact reference (every training value kept; at most 100,000 of them) with
  more than `KS_EXACT_N` live values: the statistic sup|F_ref - F_live| is attained at the
  reference's values or just before them (F_ref is flat in between), so it needs F_live at each
  reference value `v` and at the float just below it (`x < v` is `x <= nextafter(v, -inf)`);
- `jensenshannon` / `psi` of a column with more than five values: counts in the reference's
  quantile bins (its histogram edges, and the values below and above them);
- the statistics every numeric column reports: the share out of the reference's range, the
  histogram of live values on the reference's edges, the mean and standard deviation.

`summarise(x, points)` counts one chunk of values; `merge` adds summaries: counts add up
exactly, and the mean and the sum of squared deviations come from exact (integer) sums of the
values and their squares, so the figures do not depend on how the rows were split into chunks
or in which order they were added. `Counted` is what `compare` reads (a `_Numeric` whose `cdf`
answers at the prepared points only). Methods that need the live values themselves (`wasserstein`
on the merged quantile grid, `ks` against a sketched reference or on few live values, columns
with at most five distinct reference values) are not prepared here: `plan` returns None and the
caller sorts the values as before.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.data.columns import ColumnChunk
from mlops.data.drift_methods import KS_EXACT_N, _Numeric

if TYPE_CHECKING:
    import numpy as np

# exact sums are integers in units of 2**-SUM_SCALE (values) and 2**-(2 * SUM_SCALE) (squares):
# below every float64's last bit (subnormals included: 2**-1074)
SUM_SCALE = 1074 + 64
_PIECE = 18  # mantissa pieces: their products (< 2**36) sum without overflow in int64


def points_for(ref_col: dict[str, Any]) -> np.ndarray:
    """Every point `compare` may ask the live distribution's count at, sorted: the reference's
    values (sketch points) and the float just below each, its histogram edges and the float
    just below the first."""
    import numpy as np

    sketch = np.asarray((ref_col.get("sketch") or {}).get("values") or [], dtype="float64")
    edges = np.asarray((ref_col.get("histogram") or {}).get("edges") or [], dtype="float64")
    pts = [sketch, np.nextafter(sketch, -np.inf), edges, np.nextafter(edges[:1], -np.inf)]
    return np.unique(np.concatenate(pts))


def plan(ref_col: dict[str, Any], method: str, live_n: int | None = None) -> bool:
    """Whether the drift of this numeric column is computed exactly from counts (see the module
    docstring); `live_n` is the number of live values when known (`ks` needs more than
    `KS_EXACT_N`: below that SciPy's exact p-value reads every value)."""
    from mlops.data.drift import FEW_VALUES, _choose
    from mlops.data.profile import column_sketch

    ref = column_sketch(ref_col)
    if ref is None or not len(ref.points):
        return False
    if ref.exact and len(ref.points) <= FEW_VALUES:  # needs the live distinct values
        return False
    n_ref = round(ref.n)
    chosen = _choose(method, "numeric", n_ref, max(len(ref.points), FEW_VALUES + 1))
    if chosen == "ks":
        if not (ref.exact and n_ref <= 100_000):
            return False
        return live_n is None or live_n > KS_EXACT_N
    return chosen in ("jensenshannon", "psi")


@dataclass
class Summary:
    """Mergeable counts of one chunk of a numeric column (finite values only)."""

    points: np.ndarray  # the prepared points, sorted
    le: np.ndarray  # int64: count of finite values <= each point
    n: int  # finite values
    missing: int  # NaN (missing) values
    infinite: int
    total: int  # exact sum of the values, in units of 2**-SUM_SCALE
    total_sq: int  # exact sum of their squares, in units of 2**-(2 * SUM_SCALE)
    low: float = math.inf
    high: float = -math.inf

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (counts as lists, the exact sums as hex strings)."""
        return {
            "le": [int(v) for v in self.le],
            "n": self.n,
            "missing": self.missing,
            "infinite": self.infinite,
            "total": hex(self.total),
            "total_sq": hex(self.total_sq),
            "low": self.low,
            "high": self.high,
        }


def _exact_sums(x: np.ndarray) -> tuple[int, int]:
    """Exact sums of `x` and of `x**2` (finite float64) as integers in units of 2**-SUM_SCALE
    and 2**-(2 * SUM_SCALE). Every value is an integer mantissa m (|m| < 2**53) times 2**e;
    per exponent, m is cut into three 18-bit pieces whose sums and pairwise products' sums fit
    in int64 for up to 2**27 values, and Python's integers add the rest exactly."""
    import numpy as np

    if not len(x):
        return 0, 0
    mant, exp = np.frexp(x)  # x = mant * 2**exp, 0.5 <= |mant| < 1
    m = (mant * 2.0**53).astype(np.int64)  # exact
    e = exp.astype(np.int64)
    lo_e, hi_e = int(e.min()), int(e.max())
    if hi_e - lo_e <= 12:
        groups = [(ev, e == ev) for ev in range(lo_e, hi_e + 1)]
    else:  # values over many orders of magnitude: one pass over the exponents in order
        order = np.argsort(e, kind="stable")
        e, m = e[order], m[order]
        starts = [0, *(np.flatnonzero(np.diff(e)) + 1).tolist(), len(e)]
        groups = [(int(e[a]), slice(a, b)) for a, b in itertools.pairwise(starts)]
    total = total_sq = 0
    mask18 = (1 << _PIECE) - 1
    for ev, where in groups:
        g = m[where]
        if not len(g):
            continue
        a, b, c = g >> (2 * _PIECE), (g >> _PIECE) & mask18, g & mask18  # m = a·2^36 + b·2^18 + c
        sa, sb, sc = int(a.sum()), int(b.sum()), int(c.sum())
        aa, ab, ac = int((a * a).sum()), int((a * b).sum()), int((a * c).sum())
        bb, bc, cc = int((b * b).sum()), int((b * c).sum()), int((c * c).sum())
        s = (sa << (2 * _PIECE)) + (sb << _PIECE) + sc
        sq = (
            (aa << (4 * _PIECE))
            + (ab << (3 * _PIECE + 1))
            + ((bb + 2 * ac) << (2 * _PIECE))
            + (bc << (_PIECE + 1))
            + cc
        )
        shift = ev - 53 + SUM_SCALE  # value = m * 2**(ev - 53)
        total += s << shift
        total_sq += sq << (2 * shift)
    return total, total_sq


def summarise(x: np.ndarray, points: np.ndarray) -> Summary:
    """Counts of one chunk of float64 values (NaN = missing) at `points` (see `points_for`)."""
    import numpy as np

    finite_mask = np.isfinite(x)
    finite = x if finite_mask.all() else x[finite_mask]
    nan = int(np.count_nonzero(np.isnan(x))) if len(finite) < len(x) else 0
    bins = np.searchsorted(points, finite, side="left")  # first point >= value
    le = np.cumsum(np.bincount(bins, minlength=len(points) + 1)[: len(points)])
    total, total_sq = _exact_sums(finite)
    return Summary(
        points,
        le.astype(np.int64),
        len(finite),
        nan,
        len(x) - len(finite) - nan,
        total,
        total_sq,
        float(finite.min()) if len(finite) else math.inf,
        float(finite.max()) if len(finite) else -math.inf,
    )


def merge(parts: list[Summary], points: np.ndarray) -> Summary:
    """The summary of all chunks together (exact: counts and integer sums add up)."""
    import numpy as np

    le = np.zeros(len(points), dtype=np.int64)
    out = Summary(points, le, 0, 0, 0, 0, 0)
    for p in parts:
        out.le = out.le + p.le
        out.n += p.n
        out.missing += p.missing
        out.infinite += p.infinite
        out.total += p.total
        out.total_sq += p.total_sq
        out.low = min(out.low, p.low)
        out.high = max(out.high, p.high)
    return out


class Counted(_Numeric):
    """A live numeric column known by its counts at prepared points (see the module docstring);
    `cdf` at any other point raises `KeyError` (a method that needs the values was planned)."""

    counted = True

    def __init__(self, s: Summary) -> None:
        from fractions import Fraction

        self.x = None
        self.sketch = None
        self.summary = s
        self.n = s.n
        self._at = {float(p): int(c) for p, c in zip(s.points.tolist(), s.le.tolist(), strict=True)}
        if s.n:
            self.min, self.max = s.low, s.high
            mean = Fraction(s.total, 1 << SUM_SCALE) / s.n
            self.mean = float(mean)
            m2 = Fraction(s.total_sq, 1 << (2 * SUM_SCALE)) - mean * mean * s.n
            self.std = math.sqrt(m2 / (s.n - 1)) if s.n > 1 else 0.0

    def cdf(self, at: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.array([float(self._at[float(v)]) for v in np.asarray(at).tolist()])

    def value_counts(self) -> dict[float, float]:
        raise KeyError("value counts of a counted column")

    @property
    def exact_values(self) -> bool:
        return False


@dataclass
class CountedChunk(ColumnChunk):
    """A `ColumnChunk` whose live distribution is a `Counted` (what `compare` reads of it)."""

    counted: Counted | None = None
