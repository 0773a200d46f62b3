"""Drift and training-serving skew: new data (a frame or a profile) against a stored reference.

`compare(current, reference, settings)` is the one function the validate stage, `mlops validate`,
serving (skew) and monitoring call. The reference is a statistics profile (`mlops.data.profile`),
so a comparison reads only the new data: each numeric column is sorted once and looked up at the
reference's stored points; each categorical column is counted once.

Methods (per column; `auto` chooses like Evidently's DataDriftPreset):

| method | on | drift when | default threshold |
|---|---|---|---|
| `wasserstein` | numeric | W1 distance / reference std >= threshold | 0.1 |
| `jensenshannon` | both | Jensen-Shannon distance (natural log) >= threshold | 0.1 |
| `psi` | both | population stability index >= threshold | 0.1 |
| `ks` | numeric | two-sample Kolmogorov-Smirnov p-value < threshold | 0.05 |
| `chisquare` | both | chi-squared p-value < threshold | 0.05 |
| `ztest` | two values | two-proportion z-test p-value < threshold | 0.05 |

`auto`: with at most 1,000 reference rows, `ks` for numeric columns with more than 5 values,
`chisquare` for 3-5 values or categories, `ztest` for two; with more rows, `wasserstein` for
numeric columns with more than 5 values and `jensenshannon` otherwise. Numeric distances are
computed on the reference's sketch (1,001 quantile points, or every value when there are at most
1,000), not on 20 bins, so a 0.2-standard-deviation shift of a normal column is seen. Dataset drift:
the share of drifted columns reaches `share`.

Every column gets a p-value (`mlops.data.calibration`): the tests are two-sample (the reference
is a sample too; `chisquare` is the 2 x k contingency test of both samples' counts), and the
distances get one by simulating their null distribution at the sizes compared. The p-values of
all columns are adjusted together (`correction: holm` by default, family-wise) so the chance of
any false alarm is at most `alpha` (0.05). A p-value method drifts when its adjusted p-value is
below its threshold (default `alpha`); a distance drifts when its adjusted p-value is below
`alpha` and the distance reaches its threshold (an effect-size floor). `correction: none` gives
the old per-column verdicts (false alarms up to `alpha` per column); `bh` controls the false
discovery rate instead.

The distances and tests themselves are in `mlops.data.drift_methods`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.data import calibration
from mlops.data.columns import THREADS, ColumnChunk, kind_of, summarize
from mlops.data.drift_methods import (  # noqa: F401 - kept importable from here
    KS_EXACT_N,
    OTHER,
    _align,
    _categorical_counts,
    _Numeric,
    _ref_value_counts,
    chisquare_p,
    jensenshannon,
    ks,
    psi,
    wasserstein,
    ztest_p,
)
from mlops.data.profile import (
    Sketch,
    check_format,
    column_sketch,
    histogram_counts,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops.config.models import DriftSpec

DEFAULT_THRESHOLDS = {
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
    "ks": 0.05,
    "chisquare": 0.05,
    "ztest": 0.05,
}
P_VALUE_METHODS = ("ks", "chisquare", "ztest")
SMALL_REFERENCE = 1000
FEW_VALUES = 5


@dataclass
class ColumnDrift:
    """The verdict on one column."""

    column: str
    kind: str
    method: str
    score: float | None  # the distance, or the p-value for p-value methods
    threshold: float
    drifted: bool
    p_adjusted: float | None = None
    p_value: float | None = None  # raw: the test's, or a distance's simulated one
    severity: float = 0.0  # score relative to its threshold: > 1 means drifted
    reference_rows: int = 0
    current_rows: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DriftReport:
    """Per-column results and the dataset verdict."""

    columns: list[ColumnDrift]
    share_threshold: float
    correction: str = "holm"
    alpha: float = 0.05
    reference_rows: int = 0
    current_rows: int = 0
    missing_columns: list[str] = field(default_factory=list)  # in the reference only
    new_columns: list[str] = field(default_factory=list)  # in the current data only
    label: str = ""  # what was compared, e.g. "data/raw.csv vs models/x/reference.json"

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.share >= self.share_threshold

    def ranked(self) -> list[ColumnDrift]:
        """Columns ordered by how far they moved (relative to their thresholds), most first."""
        return sorted(self.columns, key=lambda c: -c.severity)

    def column(self, name: str) -> ColumnDrift:
        return next(c for c in self.columns if c.column == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "share": round(self.share, 6),
            "share_threshold": self.share_threshold,
            "drifted": self.drifted,
            "most_moved": [c.column for c in self.ranked()[:5] if c.severity > 0],
            "correction": self.correction,
            "alpha": self.alpha,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "missing_columns": self.missing_columns,
            "new_columns": self.new_columns,
            "label": self.label,
            "columns": [c.to_dict() for c in self.columns],
        }


# ---- per-column comparison ----------------------------------------------------------------


def _choose(method: str, kind: str, n_ref: int, n_values: int) -> str:
    if method != "auto":
        if kind == "categorical" and method in ("wasserstein", "ks"):
            return "chisquare" if n_ref <= SMALL_REFERENCE else "jensenshannon"
        return method
    few = kind == "categorical" or n_values <= FEW_VALUES
    if n_ref <= SMALL_REFERENCE:
        if not few:
            return "ks"
        return "chisquare" if n_values > 2 else "ztest"
    return "jensenshannon" if few else "wasserstein"


def _severity(method: str, score: float | None, threshold: float) -> float:
    if score is None:
        return 0.0
    if method in P_VALUE_METHODS:
        return -math.log10(max(score, 1e-300)) / -math.log10(threshold)
    return score / threshold if threshold else 0.0


def _limit(chosen: str, threshold: float | None, alpha: float) -> float:
    """A column's threshold: the p-value level of a test (default `alpha`), or a distance's
    effect-size floor (default: the method's, e.g. 0.1)."""
    if threshold is not None:
        return threshold
    return alpha if chosen in P_VALUE_METHODS else DEFAULT_THRESHOLDS[chosen]


def _numeric_column(
    name: str,
    ref_col: dict[str, Any],
    cur: _Numeric,
    method: str,
    threshold: float | None,
    alpha: float = 0.05,
    resamples: int = calibration.RESAMPLES,
) -> ColumnDrift:
    import numpy as np

    ref = column_sketch(ref_col)
    n_ref = round(ref.n) if ref is not None else 0
    stats: dict[str, Any] = {
        "reference_mean": ref_col.get("mean"),
        "current_mean": getattr(cur, "mean", None),
        "reference_std": ref_col.get("std"),
        "current_std": getattr(cur, "std", None),
    }
    if ref is None or n_ref == 0 or cur.n == 0:
        return ColumnDrift(
            name,
            "numeric",
            method,
            None,
            threshold or 0.0,
            False,
            reference_rows=n_ref,
            current_rows=cur.n,
            stats=stats,
            note="no values to compare",
        )
    if ref.exact and len(ref.points) <= FEW_VALUES:
        n_values = len(set(_ref_value_counts(ref)) | set(cur.value_counts()))
    else:
        n_values = max(len(ref.points), FEW_VALUES + 1)
    chosen = _choose(method, "numeric", n_ref, n_values)
    limit = _limit(chosen, threshold, alpha)
    lo, hi = float(ref.points[0]), float(ref.points[-1])
    outside = cur.cdf(np.array([np.nextafter(lo, -np.inf)]))[0] + (
        cur.n - cur.cdf(np.array([hi]))[0]
    )
    stats["out_of_range_share"] = round(float(outside) / cur.n, 6)
    edges = (ref_col.get("histogram") or {}).get("edges") or []
    ref_hist = histogram_counts(ref, edges)
    cur_hist = histogram_counts(cur, edges)
    stats["histogram"] = {
        "edges": edges,
        "reference": ref_hist["counts"],
        "current": [
            int(c) for c in _inner(cur_hist["counts"], cur_hist["below"], cur_hist["above"])
        ],
        "current_below": cur_hist["below"],
        "current_above": cur_hist["above"],
    }
    p_value: float | None = None
    if chosen == "wasserstein":
        std0 = (ref_col.get("std") or 0.0) * math.sqrt(max(n_ref - 1, 0) / n_ref)
        score = wasserstein(ref, cur) / max(std0, 0.001)
        p_value = calibration.wasserstein_null_p(
            score, ref.points, ref.cum, max(std0, 0.001), cur.n, name, resamples
        )
    elif chosen == "ks":
        stats["ks_statistic"], score = ks(ref, cur)
    elif chosen in ("chisquare", "ztest") or (
        chosen in ("jensenshannon", "psi") and ref.exact and len(ref.points) <= FEW_VALUES
    ):
        keys, r, c = _align(_ref_value_counts(ref), cur.value_counts(), lump=False)
        if chosen == "chisquare":
            score = chisquare_p(r, c)
        elif chosen == "ztest":
            score = ztest_p(keys, r, c)
        else:
            score = psi(r, c) if chosen == "psi" else jensenshannon(r, c)
            p_value = calibration.counts_null_p(chosen, r, c, name, resamples)
    else:  # jensenshannon / psi on the reference's quantile bins (+ below and above)
        r = [0, *ref_hist["counts"], 0]
        c = [
            cur_hist["below"],
            *_inner(cur_hist["counts"], cur_hist["below"], cur_hist["above"]),
            cur_hist["above"],
        ]
        score = psi(r, c) if chosen == "psi" else jensenshannon(r, c)
        sampling = [1, *ref_hist["counts"], 1]  # a new value is outside the range: ~1/(m+1)
        p_value = calibration.counts_null_p(chosen, r, c, name, resamples, sampling)
    if chosen in P_VALUE_METHODS:
        p_value = score
    return _verdict(name, "numeric", chosen, score, limit, n_ref, cur.n, stats, p_value, alpha)


def _inner(counts: list[int], below: int, above: int) -> list[int]:
    """Histogram counts without the out-of-range values `histogram_counts` folded in."""
    out = list(counts)
    if out:
        out[0] -= below
        out[-1] -= above
    return out


def _categorical_column(
    name: str,
    ref_col: dict[str, Any],
    cur: dict[str, float],
    method: str,
    threshold: float | None,
    alpha: float = 0.05,
    resamples: int = calibration.RESAMPLES,
) -> ColumnDrift:
    ref = _categorical_counts(ref_col)
    n_ref = int(sum(ref.values()))
    n_cur = int(sum(cur.values()))
    keys, r, c = _align(ref, cur, lump=OTHER in ref)
    unseen = sum(v for k, v in cur.items() if k not in ref)
    stats: dict[str, Any] = {
        "unseen_share": round(unseen / n_cur, 6) if n_cur else 0.0,
        "unseen": [k for k in cur if k not in ref][:10],
        "categories": {
            "keys": [str(k) for k in keys[:30]],
            "reference": [int(v) for v in r[:30]],
            "current": [int(v) for v in c[:30]],
        },
    }
    if n_ref == 0 or n_cur == 0:
        return ColumnDrift(
            name,
            "categorical",
            method,
            None,
            threshold or 0.0,
            False,
            reference_rows=n_ref,
            current_rows=n_cur,
            stats=stats,
            note="no values to compare",
        )
    n_values = len([k for k, a, b in zip(keys, r, c, strict=True) if a or b])
    chosen = _choose(method, "categorical", n_ref, n_values)
    limit = _limit(chosen, threshold, alpha)
    if chosen == "chisquare":
        score = p_value = chisquare_p(r, c)
    elif chosen == "ztest":
        score = p_value = ztest_p(keys, r, c)
    else:
        score = psi(r, c) if chosen == "psi" else jensenshannon(r, c)
        p_value = calibration.counts_null_p(chosen, r, c, name, resamples)
    return _verdict(name, "categorical", chosen, score, limit, n_ref, n_cur, stats, p_value, alpha)


def _verdict(
    name: str,
    kind: str,
    method: str,
    score: float,
    limit: float,
    n_ref: int,
    n_cur: int,
    stats: dict[str, Any],
    p_value: float | None = None,
    alpha: float = 0.05,
) -> ColumnDrift:
    col = ColumnDrift(
        name,
        kind,
        method,
        float(f"{float(score):.8g}"),
        limit,
        False,
        p_value=None if p_value is None else float(f"{float(p_value):.8g}"),
        reference_rows=n_ref,
        current_rows=n_cur,
        stats=stats,
    )
    decide(col, col.p_value, alpha)
    return col


def decide(col: ColumnDrift, p: float | None, alpha: float) -> None:
    """Set a column's verdict and severity from its (adjusted) p-value `p`: a test drifts when
    `p` is below its threshold; a distance when `p` is below `alpha` and the distance reaches
    its threshold (severity: the smaller of the two ratios, so > 1 means drifted)."""
    if col.score is None:
        return
    if col.method in P_VALUE_METHODS:
        level = col.threshold
        value = col.score if p is None else p
        col.drifted = bool(value < level)
        col.severity = round(_severity(col.method, value, level), 6)
        return
    effect = _severity(col.method, col.score, col.threshold)
    if p is None:
        col.drifted = bool(col.score >= col.threshold)
        col.severity = round(effect, 6)
        return
    significant = _severity("ks", p, alpha)
    col.drifted = bool(col.score >= col.threshold and p < alpha)
    col.severity = round(min(effect, significant), 6)


# ---- the public functions -----------------------------------------------------------------


def _empty() -> np.ndarray:
    import numpy as np

    return np.empty(0)


def _from_chunk(ch: ColumnChunk) -> _Numeric | dict[str, float]:
    if ch.kind == "numeric":
        counted = getattr(ch, "counted", None)  # counts instead of values (mlops.monitor.counted)
        return counted or _Numeric(x=ch.sorted, m2=ch.m2, mean=ch.mean)
    assert ch.counts is not None
    return {str(k): float(v) for k, v in ch.counts.items()}


def _current_column(
    current: pd.DataFrame | dict[str, Any] | dict[str, ColumnChunk],
    name: str,
    ref_dtype: str,
    from_chunks: bool = False,
) -> _Numeric | dict[str, float] | None:
    """One column of the current data in the form its reference kind needs (parsed on demand,
    so a frame's columns are sorted one at a time and not all kept in memory)."""
    import pandas as pd

    if isinstance(current, pd.DataFrame):
        col = next(c for c in current.columns if str(c) == name)
        return _from_chunk(summarize(name, current[col], ref_dtype, keep_values=False))
    if from_chunks:
        chunk = current.get(name)
        return _from_chunk(chunk) if isinstance(chunk, ColumnChunk) else None
    col = current["columns"][name]
    if kind_of(ref_dtype) == "numeric":
        sketch = column_sketch(col)
        if sketch is None:  # no numeric values at all (all missing), or not a numeric column
            return (
                _Numeric(sketch=Sketch.from_sorted(_empty()))
                if col.get("kind") == "numeric"
                else None
            )
        num = _Numeric(sketch=sketch)
        num.mean, num.std = col.get("mean"), col.get("std")
        return num
    return {str(k): float(v) for k, v in _categorical_counts(col).items()}


def _compare_column(
    current: pd.DataFrame | dict[str, Any] | dict[str, ColumnChunk],
    ref_col: dict[str, Any],
    name: str,
    settings: DriftSpec,
    from_chunks: bool = False,
    resamples: int = calibration.RESAMPLES,
) -> ColumnDrift:
    threshold = settings.columns.get(name, settings.threshold)
    dtype = ref_col.get("dtype", "str")
    cur = _current_column(current, name, dtype, from_chunks)
    if kind_of(dtype) == "numeric":
        if not isinstance(cur, _Numeric):
            return ColumnDrift(
                name,
                "numeric",
                settings.method,
                None,
                threshold or 0.0,
                True,
                severity=float("inf"),
                note="type changed: not numeric",
            )
        return _numeric_column(
            name, ref_col, cur, settings.method, threshold, settings.alpha, resamples
        )
    counts = cur if isinstance(cur, dict) else {}
    return _categorical_column(
        name, ref_col, counts, settings.method, threshold, settings.alpha, resamples
    )


def compare(
    current: pd.DataFrame | dict[str, Any] | list[ColumnChunk],
    reference: dict[str, Any],
    settings: DriftSpec | None = None,
    *,
    columns: list[str] | None = None,
    label: str = "",
    family: int = 0,
    defer_correction: bool = False,
) -> DriftReport:
    """Compare new data (a DataFrame or a profile) with a reference profile, column by column.

    (A list of `ColumnChunk` summaries of a whole table, as the validate stage already has them,
    is accepted too: it saves parsing and sorting the columns a second time.)
    `settings` (pipeline.yaml's `DriftSpec`) picks the method (`auto` by default), the default
    and per-column thresholds, the dataset-drift share and the p-value correction. `columns`
    limits the comparison (default: every column in both). Never raises on drift; the caller
    decides what drift means (continue, retrain, stop).

    `family` counts tests made elsewhere in the same family (they set how many Monte-Carlo
    draws a distance needs); with `defer_correction` the caller adjusts the p-values of several
    reports together with `correct`.
    """
    import pandas as pd

    from mlops.config.models import DriftSpec

    settings = settings or DriftSpec()
    reference = check_format(reference, "the reference profile")
    if isinstance(current, dict):
        current = check_format(current, "the current profile")
        cur_names = [str(c) for c in current["columns"]]
        cur_rows = int(current.get("rows", 0))
    elif isinstance(current, pd.DataFrame):
        cur_names = [str(c) for c in current.columns]
        cur_rows = len(current)
    elif isinstance(current, list):
        cur_names = [c.name for c in current]
        cur_rows = current[0].rows if current else 0
    else:
        raise TypeError("current must be a pandas DataFrame or a profile dict")
    ref_names = list(reference["columns"])
    wanted = columns if columns is not None else ref_names
    names = [n for n in wanted if n in ref_names and n in cur_names]
    report = DriftReport(
        [],
        settings.share,
        settings.correction,
        settings.alpha,
        int(reference.get("rows", 0)),
        cur_rows,
        missing_columns=[n for n in wanted if n in ref_names and n not in cur_names],
        new_columns=[n for n in cur_names if n not in ref_names] if columns is None else [],
        label=label,
    )
    source: pd.DataFrame | dict[str, Any] | dict[str, ColumnChunk]
    source = {c.name: c for c in current} if isinstance(current, list) else current

    resamples = calibration.resamples_for(len(names) + family, settings.alpha)

    def one(name: str) -> ColumnDrift:
        return _compare_column(
            source,
            reference["columns"][name],
            name,
            settings,
            isinstance(current, list),
            resamples,
        )

    if isinstance(current, pd.DataFrame) and len(current) >= 50_000 and len(names) > 1:
        with ThreadPoolExecutor(THREADS) as pool:  # numpy sorts release the GIL
            report.columns.extend(pool.map(one, names))
    else:
        report.columns.extend(one(n) for n in names)
    report.alpha = settings.alpha
    if not defer_correction:
        correct([report], settings.correction, settings.alpha)
    return report


def correct(reports: list[DriftReport], correction: str, alpha: float) -> None:
    """Adjust the p-values of every column of `reports` together, as one family, and set each
    column's verdict (monitoring adjusts input and prediction drift jointly this way)."""
    columns = [c for r in reports for c in r.columns]
    tested = [c for c in columns if c.p_value is not None and c.score is not None]
    adjusted = calibration.adjust([float(c.p_value or 0.0) for c in tested], correction)
    for c, adj in zip(tested, adjusted, strict=True):
        c.p_adjusted = float(f"{adj:.8g}")
        decide(c, c.p_adjusted, alpha)
    for r in reports:
        r.correction = correction
        r.alpha = alpha
    for c in columns:
        if c.severity == float("inf"):
            c.severity = 1e9


def skew(
    batch: pd.DataFrame | list[dict[str, Any]],
    reference: dict[str, Any],
    settings: DriftSpec | None = None,
) -> DriftReport:
    """Training-serving skew: a batch of serving inputs against a bundle's reference profile.

    Compares the features present in the reference (the target is skipped when the batch lacks
    it); features missing from the batch are listed in `missing_columns`, and each column's
    `stats` carries `unseen_share` (categories the model never saw) or `out_of_range_share`
    (numbers outside the training range). Used by serving and monitoring.
    """
    import pandas as pd

    frame = batch if isinstance(batch, pd.DataFrame) else pd.DataFrame.from_records(batch)
    names = [str(c) for c in reference.get("columns", {})]
    target = reference.get("target")
    feature_names = [n for n in names if n != target or n in frame.columns]
    return compare(frame, reference, settings, columns=feature_names, label="serving vs training")
