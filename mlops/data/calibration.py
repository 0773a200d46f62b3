"""Significance for every drift test: two-sample p-values, calibrated distances, one family.

Each drift verdict is a test with a false-alarm rate, and the tests of one comparison (every
feature, and in monitoring the predictions too) form one family whose chance of *any* false
alarm is held at `alpha` (5% by default) by Holm's step-down correction.

- Counts (categories, few-valued numbers, predicted classes) are compared as a 2 x k contingency
  table of both samples (`scipy.stats.chi2_contingency`): the reference is a sample too, so its
  own sampling error counts, and a category the reference never had is one more column of the
  table, not a p-value of 0. Categories expected fewer than 5 times are pooled first (those the
  reference had apart from those it never had, so all-new values still count); a 2 x 2
  table with small counts is tested exactly (`scipy.stats.fisher_exact`).
- Distances (Wasserstein / std, Jensen-Shannon, PSI) have no significance level of their own.
  Their null distribution is simulated: multinomial draws of `n_eff = n m / (n + m)` values
  from the reference's own distribution (its exact values or its 1,001-point sketch; its bins
  or categories), each compared with the reference exactly as the live data is. The p-value is
  the share of draws at least as far as the live data (seeded: the same inputs give the same
  verdict). A distance column drifts when that p-value survives the correction *and* the
  distance reaches its threshold (an effect-size floor: with huge samples a significant but
  negligible shift is not called drift).
"""

from __future__ import annotations

import math
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

MIN_EXPECTED = 5.0  # contingency cells expected fewer times than this are pooled
RESAMPLES = 999  # Monte-Carlo draws of a distance's null distribution (at least)
MAX_RESAMPLES = 20_000
BLOCK = 1000  # draws simulated at once (memory: BLOCK x points floats)
CORRECTIONS = ("holm", "bonferroni", "bh", "none")


def contingency_p(ref_counts: Sequence[float], cur_counts: Sequence[float]) -> float:
    """p-value that two samples of counts over the same categories come from one distribution.

    Categories seen in neither sample are dropped; categories whose expected count (under the
    pooled distribution) is below 5 in either row are pooled into two (seen in the reference,
    and new); a resulting 2 x 2 table
    with a cell expected below 5 uses Fisher's exact test, otherwise Pearson's chi-squared
    (without Yates' correction for tables larger than 2 x 2, as SciPy)."""
    import numpy as np
    from scipy.stats import chi2_contingency, fisher_exact

    table = np.array([ref_counts, cur_counts], dtype="float64")
    table = table[:, table.sum(axis=0) > 0]
    n_ref, n_cur = table.sum(axis=1)
    if table.shape[1] < 2 or not n_ref or not n_cur:
        return 1.0
    col = table.sum(axis=0)
    small = col * min(n_ref, n_cur) / (n_ref + n_cur) < MIN_EXPECTED
    if small.any():  # rare categories pooled: those the reference had, and those it never had
        seen = table[0] > 0
        pools = [table[:, small & seen].sum(axis=1), table[:, small & ~seen].sum(axis=1)]
        table = np.column_stack([table[:, ~small], *pools])
        table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    if table.shape[1] == 2 and (expected < MIN_EXPECTED).any():
        return float(fisher_exact(np.rint(table).astype(int))[1])
    p = chi2_contingency(table, correction=False)[1]
    return float(p) if p == p else 1.0


def effective_size(n_ref: float, n_cur: float) -> int:
    """The one-sample size whose sampling noise equals that of two samples of these sizes."""
    if n_ref <= 0 or n_cur <= 0:
        return 0
    return max(1, round(n_ref * n_cur / (n_ref + n_cur)))


def resamples_for(tests: int, alpha: float) -> int:
    """Draws enough for the smallest p-value (1 / (B + 1)) to pass Holm's first step."""
    need = math.ceil(2 * max(tests, 1) / max(alpha, 1e-6))
    return int(min(MAX_RESAMPLES, max(RESAMPLES, need)))


def _rng(column: str, n: int) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng([zlib.crc32(column.encode()), n])


def _draws(shares: np.ndarray, n: int, resamples: int, rng: Any) -> Any:
    """Blocks of multinomial counts (rows) of `n` draws from `shares`."""
    done = 0
    while done < resamples:
        size = min(BLOCK, resamples - done)
        yield rng.multinomial(n, shares, size=size).astype("float64")
        done += size


def _p_from_null(observed: float, null: list[np.ndarray]) -> float:
    import numpy as np

    values = np.concatenate(null)
    exceed = int(np.count_nonzero(values >= observed - 1e-12 * max(abs(observed), 1.0)))
    return (1 + exceed) / (len(values) + 1)


def js_rows(counts: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (natural log) of each row of `counts` against `ref` counts."""
    import numpy as np
    from scipy.special import rel_entr

    p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-300)
    q = ref / ref.sum()
    m = (p + q) / 2
    d = (rel_entr(p, m) + rel_entr(q, m)).sum(axis=1) / 2
    return np.sqrt(np.maximum(d, 0.0))


def psi_rows(counts: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Population stability index of each row of `counts` against `ref` (zeros as 0.0001)."""
    import numpy as np

    p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-300)
    q = ref / ref.sum()
    p = np.where(p == 0, 0.0001, p)
    q = np.where(q == 0, 0.0001, q)
    return ((p - q) * np.log(p / q)).sum(axis=1)


def counts_null_p(
    method: str,
    ref_counts: list[float],
    cur_counts: list[float],
    column: str,
    resamples: int = RESAMPLES,
    sampling: list[float] | None = None,
) -> float:
    """Monte-Carlo p-value of a Jensen-Shannon distance or PSI between counts (categories or
    bins): how often a sample of the reference's own distribution lands as far away.

    `sampling` (default: the reference counts) is the distribution the null samples come from;
    binned numbers give their below-range and above-range bins the chance a new value falls
    outside the range of the reference's values, which the reference itself never shows."""
    import numpy as np

    ref = np.asarray(ref_counts, dtype="float64")
    cur = np.asarray(cur_counts, dtype="float64")
    n = effective_size(ref.sum(), cur.sum())
    if not n or ref.sum() <= 0:
        return 1.0
    fn = js_rows if method == "jensenshannon" else psi_rows
    observed = float(fn(cur[None, :], ref)[0])
    draw_from = np.asarray(sampling if sampling is not None else ref_counts, dtype="float64")
    rng = _rng(column, n)
    null = [fn(block, ref) for block in _draws(draw_from / draw_from.sum(), n, resamples, rng)]
    return _p_from_null(observed, null)


def wasserstein_null_p(
    observed: float,
    points: np.ndarray,
    cum: np.ndarray,
    scale: float,
    n_cur: float,
    column: str,
    resamples: int = RESAMPLES,
) -> float:
    """Monte-Carlo p-value of W1 / `scale` against a reference known by its cumulative counts
    `cum` at `points`: samples drawn on those points, W1 = sum of widths x |F_ref - F_sample|."""
    import numpy as np

    m = float(cum[-1]) if len(cum) else 0.0
    n = effective_size(m, n_cur)
    if not n or len(points) < 2:
        return 1.0
    shares = np.diff(np.concatenate(([0.0], cum))) / m
    shares = np.clip(shares, 0.0, None)
    shares = shares / shares.sum()
    f_ref = (cum / m)[:-1]
    widths = np.diff(points)
    rng = _rng(column, n)
    null = []
    for block in _draws(shares, n, resamples, rng):
        f = np.cumsum(block, axis=1)[:, :-1] / n
        null.append(np.abs(f - f_ref) @ widths / scale)
    return _p_from_null(observed, null)


def adjust(pvalues: list[float], correction: str) -> list[float]:
    """Adjusted p-values (same order): Holm's step-down or Bonferroni (family-wise error),
    Benjamini-Hochberg (`scipy.stats.false_discovery_control`, false discovery rate), or none."""
    import numpy as np

    if not pvalues or correction == "none":
        return list(pvalues)
    p = np.clip(np.asarray(pvalues, dtype="float64"), 0.0, 1.0)
    m = len(p)
    if correction == "bonferroni":
        return [float(v) for v in np.minimum(1.0, p * m)]
    if correction == "bh":
        from scipy.stats import false_discovery_control

        return [float(v) for v in false_discovery_control(p, method="bh")]
    if correction != "holm":
        raise ValueError(f"unknown correction {correction!r}")
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = stepped
    return [float(v) for v in out]
