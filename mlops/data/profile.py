"""Statistics profiles: per-feature summaries, histograms on bin edges fixed by the reference.

The profile of the training data is stored in the model bundle (`reference.json`) as the reference;
later comparisons bin new data on the reference's edges, so they read only the new data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.data.schema import dtype_name

if TYPE_CHECKING:
    import pandas as pd

N_BINS = 20
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
TOP_VALUES = 100


def _f(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else round(f, 12)  # NaN -> None


def profile_column(s: pd.Series, edges: list[float] | None = None) -> dict[str, Any]:
    """Summary of one column; numeric histograms use `edges` when given (reference edges)."""
    import numpy as np

    dtype = dtype_name(s)
    n = len(s)
    missing = int(s.isna().sum())
    out: dict[str, Any] = {"dtype": dtype, "count": n, "missing": missing}
    values = s.dropna()
    if dtype in ("int64", "float64"):
        arr = values.to_numpy(dtype="float64")
        finite = arr[np.isfinite(arr)]
        out["infinite"] = int(len(arr) - len(finite))
        out["zeros"] = int((finite == 0).sum())
        out["distinct"] = len(np.unique(finite))
        if len(finite):
            qs = np.quantile(finite, QUANTILES)
            out.update(
                mean=_f(finite.mean()),
                std=_f(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
                min=_f(finite.min()),
                max=_f(finite.max()),
                quantiles={
                    f"p{int(q * 100):02d}": _f(v) for q, v in zip(QUANTILES, qs, strict=True)
                },
            )
            if edges is None:
                edges = [
                    float(e) for e in np.unique(np.quantile(finite, np.linspace(0, 1, N_BINS + 1)))
                ]
            inner = np.asarray(edges[1:-1], dtype="float64")
            counts = np.bincount(
                np.searchsorted(inner, finite, side="right"), minlength=len(edges) - 1
            )
            out["histogram"] = {"edges": [_f(e) for e in edges], "counts": [int(c) for c in counts]}
    else:
        counts = values.astype(str).value_counts()
        out["distinct"] = len(counts)
        out["top"] = {str(k): int(v) for k, v in counts.head(TOP_VALUES).items()}
    return out


def profile_frame(df: pd.DataFrame, reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Profile every column; with `reference`, numeric histograms use the reference's edges."""
    ref_cols = (reference or {}).get("columns", {})
    columns = {}
    for name in df.columns:
        edges = ref_cols.get(str(name), {}).get("histogram", {}).get("edges")
        columns[str(name)] = profile_column(df[name], edges)
    return {"rows": len(df), "columns": columns}
