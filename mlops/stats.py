"""Online metrics with confidence intervals, and the test that one version does worse.

Classification metrics are functions of the confusion matrix, so a bootstrap over rows is a
multinomial draw over its cells: the interval costs O(resamples x classes²) whatever the number
of labelled rows. Accuracy uses the Wilson score interval. Regression metrics use normal
approximations (mean absolute error; mean squared error, then its square root for rmse; r2
through the interval of the mean squared error).

Imports nothing of mlops (like `mlops.rendering`): the monitor, canary analysis and the paired
gate of the stages (`mlops.stages.paired`) score with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

CLASSIFICATION = ("accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro")
REGRESSION = ("rmse", "mae", "mse", "r2")
LOWER_IS_BETTER = {"rmse", "mae", "mse", "log_loss"}
RESAMPLES = 400


@dataclass
class Estimate:
    """A metric on labelled rows: value, interval, how many rows, and its standard error."""

    metric: str
    value: float | None
    low: float | None
    high: float | None
    labelled: int
    confidence: float
    se: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of a confidence level (1.96 for 0.95)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion (SciPy's `binomtest(...).proportion_ci`)."""
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def confusion(y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """k x k confusion matrix (rows: actual codes, columns: predicted codes)."""
    import numpy as np

    return np.bincount(y * k + p, minlength=k * k).reshape(k, k).astype(np.float64)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def cm_metric(cm: np.ndarray, name: str, present: np.ndarray | None = None) -> np.ndarray:
    """A classification metric of one confusion matrix (k, k) or a stack (B, k, k).

    Macro averages run over the classes present (in the labels or the predictions, as
    scikit-learn does; balanced accuracy over the classes in the labels), taken from `present`
    when given (so resamples average over the same classes as the sample)."""
    import numpy as np

    stack = cm if cm.ndim == 3 else cm[None]
    n = stack.sum(axis=(1, 2))
    tp = np.diagonal(stack, axis1=1, axis2=2)
    actual = stack.sum(axis=2)
    predicted = stack.sum(axis=1)
    if present is None:
        present = (actual.sum(axis=0) + predicted.sum(axis=0)) > 0
    in_labels = actual.sum(axis=0) > 0
    if name == "accuracy":
        out = _safe_div(tp.sum(axis=1), n)
    elif name == "recall_macro":
        out = _safe_div(tp, actual)[:, present].mean(axis=1)
    elif name == "balanced_accuracy":
        out = _safe_div(tp, actual)[:, in_labels].mean(axis=1)
    elif name == "precision_macro":
        out = _safe_div(tp, predicted)[:, present].mean(axis=1)
    elif name == "f1_macro":
        out = _safe_div(2 * tp, actual + predicted)[:, present].mean(axis=1)
    else:
        raise KeyError(name)
    return out if cm.ndim == 3 else out[:1]


def classification_estimate(
    y: np.ndarray, p: np.ndarray, k: int, metric: str, confidence: float, seed: int = 0
) -> Estimate:
    """`metric` of labels `y` against predictions `p` (integer codes < k), with its interval."""
    import numpy as np

    n = len(y)
    if n == 0:
        return Estimate(metric, None, None, None, 0, confidence, note="no labelled rows")
    cm = confusion(y, p, k)
    value = float(cm_metric(cm, metric)[0])
    z = z_value(confidence)
    if metric == "accuracy":
        lo, hi = wilson(int(np.trace(cm)), n, confidence)
        se = math.sqrt(max(value * (1 - value), 1e-12) / n)
    else:
        rng = np.random.default_rng(seed)
        present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
        draws = rng.multinomial(n, (cm / n).ravel(), size=RESAMPLES).reshape(-1, k, k)
        values = cm_metric(draws.astype(np.float64), metric, present)
        alpha = (1 - confidence) / 2
        lo, hi = (float(x) for x in np.quantile(values, [alpha, 1 - alpha]))
        se = float(values.std(ddof=1)) or (hi - lo) / (2 * z)
    return Estimate(metric, value, lo, hi, n, confidence, se)


def regression_estimate(y: np.ndarray, p: np.ndarray, metric: str, confidence: float) -> Estimate:
    """rmse, mae, mse or r2 of predictions `p` against labels `y`, with a normal interval."""
    import numpy as np

    n = len(y)
    if n == 0:
        return Estimate(metric, None, None, None, 0, confidence, note="no labelled rows")
    z = z_value(confidence)
    err = y - p
    if metric == "mae":
        a = np.abs(err)
        value, se = float(a.mean()), float(a.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
        return Estimate(metric, value, max(0.0, value - z * se), value + z * se, n, confidence, se)
    sq = err * err
    mse = float(sq.mean())
    se_mse = float(sq.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    lo_mse, hi_mse = max(0.0, mse - z * se_mse), mse + z * se_mse
    if metric == "mse":
        return Estimate(metric, mse, lo_mse, hi_mse, n, confidence, se_mse)
    if metric == "rmse":
        value = math.sqrt(mse)
        se = se_mse / (2 * value) if value > 0 else 0.0
        return Estimate(metric, value, math.sqrt(lo_mse), math.sqrt(hi_mse), n, confidence, se)
    if metric == "r2":
        var = float(y.var())
        if var == 0:
            return Estimate(metric, None, None, None, n, confidence, note="labels do not vary")
        value = 1 - mse / var
        se = se_mse / var
        return Estimate(metric, value, 1 - hi_mse / var, 1 - lo_mse / var, n, confidence, se)
    raise KeyError(metric)


@dataclass
class Comparison:
    """Whether the live version does worse online than another version (a z-test)."""

    metric: str
    live: Estimate
    other: Estimate
    other_version: str
    difference: float | None  # how much worse the live version is (positive: worse)
    z: float | None
    worse: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "other_version": self.other_version,
            "live": self.live.to_dict(),
            "other": self.other.to_dict(),
            "difference": None if self.difference is None else round(self.difference, 6),
            "z": None if self.z is None else round(self.z, 3),
            "worse": self.worse,
            "note": self.note,
        }


def compare_estimates(
    live: Estimate, other: Estimate, other_version: str, min_labels: int, confidence: float
) -> Comparison:
    """The live version is worse when its shortfall exceeds z x the standard error of the
    difference, both sides having at least `min_labels` labelled rows."""
    metric = live.metric
    if live.value is None or other.value is None or live.se is None or other.se is None:
        return Comparison(metric, live, other, other_version, None, None, False, "no figures")
    if live.labelled < min_labels or other.labelled < min_labels:
        return Comparison(
            metric,
            live,
            other,
            other_version,
            None,
            None,
            False,
            f"too few labelled rows to compare ({live.labelled} live, {other.labelled} "
            f"{other_version}; need {min_labels} each)",
        )
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    shortfall = sign * (other.value - live.value)
    se = math.sqrt(live.se**2 + other.se**2)
    z = shortfall / se if se > 0 else (math.inf if shortfall > 0 else 0.0)
    worse = shortfall > 0 and z > z_value(confidence)
    return Comparison(metric, live, other, other_version, shortfall, z, worse)
