"""Metrics per slice of the test set (a column's values, or crosses of two), and slice gates.

A slice spec is a column name or a list of two (a cross). The sensitive columns of
`pipeline.yaml` (`data.sensitive`) are always sliced, whether or not the model uses them as
features: the test split keeps every column. Numeric columns with many values are cut into
quartiles; missing values form their own slice, `(missing)`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlops.config.models import SliceGateSpec
from mlops.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MISSING = "(missing)"
MAX_LEVELS = 10  # a numeric column with more distinct values is cut into quartiles
LOWER_IS_BETTER = {"rmse", "mae", "log_loss", "mse"}


def slice_specs(slices: list[str | list[str]], sensitive: list[str]) -> list[list[str]]:
    """The slices to compute: those configured, then each sensitive column not already there."""
    out: list[list[str]] = []
    for spec in [*slices, *sensitive]:
        cols = [spec] if isinstance(spec, str) else list(spec)
        if cols not in out:
            out.append(cols)
    return out


def spec_name(cols: list[str]) -> str:
    """`island` or `island x sex`."""
    return " x ".join(cols)


def _labels(col: pd.Series) -> tuple[pd.Series, dict[str, int]]:
    """String labels of a column's values for grouping (quartiles for numbers with many
    values), and each label's rank in the column's natural order (numbers by value)."""
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if numeric and col.nunique(dropna=True) > MAX_LEVELS:
        binned = pd.qcut(col, 4, duplicates="drop")
        names = [f"[{iv.left:.4g}, {iv.right:.4g}]" for iv in binned.cat.categories]
        labels = binned.cat.rename_categories(names).astype(object)
        return labels.where(col.notna(), MISSING), {n: i for i, n in enumerate(names)}
    values = sorted(col.dropna().unique(), key=lambda v: (not numeric, v if numeric else str(v)))
    order = {str(v): i for i, v in enumerate(values)}
    labels = col.astype(object).map(lambda v: str(v))  # categoricals too
    return labels.where(col.notna(), MISSING), order


def compute_slices(
    frame: pd.DataFrame,
    specs: list[list[str]],
    sensitive: list[str],
    y: pd.Series,
    pred: np.ndarray,
    proba: Any,
    metric_fn: Callable[[pd.Series, np.ndarray, Any], dict[str, float]],
) -> list[dict[str, Any]]:
    """One entry per slice: {spec, columns, values, name, rows, share, sensitive, metrics}."""
    import numpy as np

    missing = [c for cols in specs for c in cols if c not in frame.columns]
    if missing:
        raise UsageError(
            f"slice column{'s' if len(missing) > 1 else ''} not in the test data: "
            + ", ".join(dict.fromkeys(missing)),
            f"Columns: {', '.join(map(str, frame.columns))}. Fix `slices:` or `data.sensitive` "
            "in pipeline.yaml.",
        )
    with warnings.catch_warnings():  # small slices make scikit-learn warn (one class, ...)
        warnings.simplefilter("ignore")
        return _compute(frame, specs, sensitive, y, np.asarray(pred), proba, metric_fn)


def _compute(frame, specs, sensitive, y, pred, proba, metric_fn) -> list[dict[str, Any]]:
    import math

    import numpy as np

    total = len(frame)
    out: list[dict[str, Any]] = []
    for cols in specs:
        pairs = [_labels(frame[c]) for c in cols]
        labels = [lab.to_numpy() for lab, _ in pairs]
        orders = [order for _, order in pairs]
        keys = list(zip(*labels, strict=True)) if labels else []
        groups: dict[tuple, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)

        def rank(key: tuple, orders: list = orders) -> tuple:
            return tuple(o.get(v, len(o)) for v, o in zip(key, orders, strict=True))

        for key in sorted(groups, key=rank):
            idx = np.asarray(groups[key])
            sub_proba = proba[idx] if proba is not None else None
            metrics = {
                k: v
                for k, v in metric_fn(y.iloc[idx], pred[idx], sub_proba).items()
                if not (isinstance(v, float) and not math.isfinite(v))
            }
            out.append(
                {
                    "spec": spec_name(cols),
                    "columns": list(cols),
                    "values": list(key),
                    "name": ", ".join(f"{c}={v}" for c, v in zip(cols, key, strict=True)),
                    "rows": len(idx),
                    "share": round(len(idx) / total, 6) if total else 0.0,
                    "sensitive": any(c in sensitive for c in cols),
                    "metrics": metrics,
                }
            )
    return out


def _applies(gate: SliceGateSpec, entry: dict[str, Any]) -> bool:
    if not gate.slices:
        return True
    wanted = [[s] if isinstance(s, str) else list(s) for s in gate.slices]
    return entry["columns"] in wanted


def check_slice_gates(
    gates: dict[str, SliceGateSpec], slices: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One result per rule, in the same shape as the overall gates (plus `slice`)."""
    results: list[dict[str, Any]] = []
    for metric, gate in gates.items():
        lower = metric in LOWER_IS_BETTER
        considered = [
            s
            for s in slices
            if _applies(gate, s) and s["rows"] >= gate.min_rows and metric in s["metrics"]
        ]
        skipped = sum(1 for s in slices if _applies(gate, s) and s["rows"] < gate.min_rows)
        skip_note = f"; {skipped} slices under {gate.min_rows} rows not gated" if skipped else ""

        def base(rule: str, threshold: float | None, metric: str = metric) -> dict[str, Any]:
            return {
                "metric": metric,
                "rule": rule,
                "threshold": threshold,
                "value": None,
                "passed": False,
                "margin": None,
                "note": "",
                "slice": None,
            }

        rules: list[tuple[str, float]] = []
        if gate.min is not None:
            rules.append(("slice min", gate.min))
        if gate.max is not None:
            rules.append(("slice max", gate.max))
        if gate.max_gap is not None:
            rules.append(("slice max_gap", gate.max_gap))
        for rule, threshold in rules:
            res = base(rule, threshold)
            if not considered:
                res["passed"] = True
                res["note"] = f"no slice with {metric} and at least {gate.min_rows} rows" + (
                    skip_note
                )
                results.append(res)
                continue
            values = [(float(s["metrics"][metric]), s) for s in considered]
            if rule == "slice min":
                value, worst = min(values, key=lambda t: t[0])
                res["margin"] = round(value - threshold, 6)
            elif rule == "slice max":
                value, worst = max(values, key=lambda t: t[0])
                res["margin"] = round(threshold - value, 6)
            else:
                hi, best = max(values, key=lambda t: t[0])
                lo, low = min(values, key=lambda t: t[0])
                worst = best if lower else low
                value = round(hi - lo, 6)
                res["margin"] = round(threshold - value, 6)
                top, bottom = (lo, hi) if lower else (hi, lo)
                res["note"] = (
                    f"best {(low if lower else best)['name']} {top:.4g}, "
                    f"worst {worst['name']} {bottom:.4g}"
                )
            res["value"] = round(value, 6)
            res["passed"] = res["margin"] >= 0
            res["slice"] = worst["name"]
            if rule != "slice max_gap":
                res["note"] = f"worst slice {worst['name']} ({worst['rows']} rows)"
            res["note"] += skip_note
            results.append(res)
    return results
