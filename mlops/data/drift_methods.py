"""The statistics behind `mlops.data.drift`: distances and tests of a current sample against a
reference profile (its stored sketch of a numeric column, or its counts of a categorical one).

Numeric columns: Wasserstein (W1) and the two-sample Kolmogorov-Smirnov test, computed between
the reference's sketch (`mlops.data.profile.Sketch`) and the sorted current values (`_Numeric`).
Counts: Jensen-Shannon (SciPy's), PSI, the chi-squared contingency test (SciPy's) and the
two-proportion z-test.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlops.data import calibration
from mlops.data.profile import Sketch, sorted_quantile

if TYPE_CHECKING:
    import numpy as np

OTHER = "<other>"


class _Numeric:
    """A numeric column of the current data: exact from a sorted array, or from a sketch."""

    def __init__(
        self,
        x: np.ndarray | None = None,
        sketch: Sketch | None = None,
        m2: float | None = None,
        mean: float | None = None,
    ) -> None:
        import numpy as np

        self.x = x
        if x is not None:
            self.sketch = None
            self.n = len(x)
            if self.n:
                self.min, self.max = float(x[0]), float(x[-1])
                self.mean = float(x.mean()) if mean is None else mean
                if m2 is None:
                    m2 = float(((x - self.mean) ** 2).sum())
                self.std = math.sqrt(m2 / (self.n - 1)) if self.n > 1 else 0.0
            if self.n > 5_000:
                self.points = np.unique(sorted_quantile(x, np.linspace(0, 1, 2001)))
            else:
                self.points = np.unique(x)
        else:
            assert sketch is not None
            self.sketch = sketch
            self.n = round(sketch.n)
            self.points = sketch.points
            if self.n:
                self.min, self.max = float(sketch.points[0]), float(sketch.points[-1])

    def cdf(self, at: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.x is not None:
            return np.searchsorted(self.x, at, side="right").astype("float64")
        assert self.sketch is not None
        return self.sketch.cdf(at)

    def value_counts(self) -> dict[float, float]:
        import numpy as np

        if self.x is not None:
            vals, counts = np.unique(self.x, return_counts=True)
            return {float(v): float(c) for v, c in zip(vals, counts, strict=True)}
        assert self.sketch is not None
        counts = np.diff(np.concatenate(([0.0], self.sketch.cum)))
        return {float(v): float(c) for v, c in zip(self.sketch.points, counts, strict=True)}

    @property
    def exact_values(self) -> bool:
        return self.x is not None or bool(self.sketch and self.sketch.exact)


def _ref_value_counts(sketch: Sketch) -> dict[float, float]:
    import numpy as np

    counts = np.diff(np.concatenate(([0.0], sketch.cum)))
    return {float(v): float(c) for v, c in zip(sketch.points, counts, strict=True)}


def _categorical_counts(col: dict[str, Any]) -> dict[str, float]:
    counts = {str(k): float(v) for k, v in (col.get("top") or {}).items()}
    if col.get("other"):
        counts[OTHER] = float(col["other"])
    return counts


def _align(ref: dict[Any, float], cur: dict[Any, float], lump: bool) -> tuple[list, list, list]:
    """Keys (reference first) and both count vectors; with `lump`, keys unknown to a truncated
    reference go to its `<other>` bucket."""
    if lump:
        merged: dict[Any, float] = {}
        for k, v in cur.items():
            key = k if k in ref else OTHER
            merged[key] = merged.get(key, 0.0) + v
        cur = merged
    keys = list(ref) + [k for k in cur if k not in ref]
    return keys, [ref.get(k, 0.0) for k in keys], [cur.get(k, 0.0) for k in keys]


def _shares(counts: list[float], fill_zeroes: bool) -> np.ndarray:
    import numpy as np

    a = np.asarray(counts, dtype="float64")
    total = a.sum()
    p = a / total if total else a
    if fill_zeroes and (p == 0).any() and (p > 0).any():
        smallest = p[p > 0].min()
        p = np.where(p == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001, p)
    return p


def jensenshannon(ref_counts: list[float], cur_counts: list[float]) -> float:
    """Jensen-Shannon distance (natural log, as Evidently and scipy default)."""
    from scipy.spatial import distance

    return float(distance.jensenshannon(_shares(ref_counts, False), _shares(cur_counts, False)))


def psi(ref_counts: list[float], cur_counts: list[float]) -> float:
    """Population stability index, zero shares replaced by a small value (as Evidently)."""
    import numpy as np

    r, c = _shares(ref_counts, True), _shares(cur_counts, True)
    return float(np.sum((c - r) * np.log(c / r)))


def chisquare_p(ref_counts: list[float], cur_counts: list[float]) -> float:
    """Two-sample chi-squared test of both samples' counts (a 2 x k contingency table): a
    category the reference never had is one more column, not a p-value of 0."""
    return calibration.contingency_p(ref_counts, cur_counts)


def ztest_p(keys: list, ref_counts: list[float], cur_counts: list[float]) -> float:
    """Two-proportion z-test on the share of the first key (in sorted order), as Evidently."""
    import numpy as np
    from scipy.stats import norm

    present_ref = [k for k, c in zip(keys, ref_counts, strict=True) if c > 0]
    present_cur = [k for k, c in zip(keys, cur_counts, strict=True) if c > 0]
    if len(present_ref) == 1 and len(present_cur) == 1 and present_ref == present_cur:
        return 1.0
    order = sorted(range(len(keys)), key=lambda i: str(keys[i]))
    first = order[0]
    n1, n2 = sum(ref_counts), sum(cur_counts)
    if not n1 or not n2:
        return 1.0
    p1 = (n1 - ref_counts[first]) / n1
    p2 = (n2 - cur_counts[first]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    denom = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if denom == 0:
        return 1.0
    return float(2 * (1 - norm.cdf(np.abs((p1 - p2) / denom))))


def _grid(ref: Sketch, cur: _Numeric) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation points covering both supports: midpoints of the merged grid, and widths."""
    import numpy as np

    grid = np.union1d(ref.points, cur.points)
    mids = (grid[:-1] + grid[1:]) / 2
    return grid, mids, np.diff(grid)


def wasserstein(ref: Sketch, cur: _Numeric) -> float:
    """W1 = integral of |F_ref - F_cur| over the merged support of both."""
    import numpy as np

    if ref.n == 0 or cur.n == 0:
        return 0.0
    _, mids, widths = _grid(ref, cur)
    diff = np.abs(ref.cdf(mids) / ref.n - cur.cdf(mids) / cur.n)
    return float(np.sum(widths * diff))


KS_EXACT_N = 10_000  # scipy's ks_2samp 'auto': exact p-values up to this many values


def _ks_statistic(ref: Sketch, x: np.ndarray) -> float:
    """sup |F_ref - F_cur| between an exact reference (every value, cumulative counts) and a
    sorted sample: scipy's statistic, evaluated at the reference's values only. Between two
    reference values F_ref is flat and F_cur rises, so the gap is widest at the value itself
    or just before the next one."""
    import numpy as np

    n = len(x)
    f_ref = ref.cum / ref.n
    at = np.searchsorted(x, ref.points, side="right") / n
    before = np.searchsorted(x, ref.points, side="left") / n
    f_ref_before = np.concatenate(([0.0], f_ref[:-1]))
    return float(max(np.max(np.abs(f_ref - at)), np.max(np.abs(f_ref_before - before))))


def _ks_counted(ref: Sketch, cur: _Numeric) -> float:
    """`_ks_statistic` from the live counts at each reference value and at the float just
    below it (`x < v` is `x <= nextafter(v, -inf)`): the same numbers, no values needed."""
    import numpy as np

    f_ref = ref.cum / ref.n
    at = cur.cdf(ref.points) / cur.n
    before = cur.cdf(np.nextafter(ref.points, -np.inf)) / cur.n
    f_ref_before = np.concatenate(([0.0], f_ref[:-1]))
    return float(max(np.max(np.abs(f_ref - at)), np.max(np.abs(f_ref_before - before))))


def ks(ref: Sketch, cur: _Numeric) -> tuple[float, float]:
    """(statistic, p-value): exact like scipy's ks_2samp when the reference is exact and the
    current data is a frame; otherwise on the merged grid with the asymptotic p-value."""
    import numpy as np
    from scipy import stats

    counted = getattr(cur, "counted", False)  # counts at the reference's values (monitoring)
    if ref.exact and (cur.x is not None or counted) and ref.n <= 100_000:
        if max(ref.n, cur.n) > KS_EXACT_N or counted:
            # scipy's 'auto' is asymptotic here: the same statistic and p-value, from look-ups
            # of the reference's values in the sorted data instead of re-sorting both samples
            d = _ks_statistic(ref, cur.x) if cur.x is not None else _ks_counted(ref, cur)
            en = ref.n * cur.n / (ref.n + cur.n)
            return d, float(np.clip(stats.kstwo.sf(d, np.round(en)), 0, 1))
        sample = np.repeat(ref.points, np.diff(np.concatenate(([0.0], ref.cum))).astype(int))
        res = stats.ks_2samp(sample, cur.x)
        return float(res.statistic), float(res.pvalue)
    grid, mids, _ = _grid(ref, cur)
    pts = np.concatenate((grid, mids))
    d = float(np.max(np.abs(ref.cdf(pts) / ref.n - cur.cdf(pts) / cur.n)))
    en = ref.n * cur.n / (ref.n + cur.n)
    return d, float(stats.kstwo.sf(d, max(1, round(en))))
