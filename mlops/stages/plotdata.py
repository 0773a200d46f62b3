"""Plot data of an evaluation: the files `dvc plots show` renders, and the series the HTML draws.

Classification: the confusion matrix (one row per test row, as DVC's `confusion` template wants),
ROC and precision-recall curves one class against the rest (one file per class). Regression:
predicted against actual and residuals. Both: a bar per slice. Large test sets are sampled
(seeded) in the per-row files; the curves and counts always use every row.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config.resolve import (
    CONFUSION_FILE,
    PR_DIR,
    PREDICTED_FILE,
    RESIDUALS_FILE,
    ROC_DIR,
    SLICE_BAR_METRIC,
    SLICES_FILE,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MAX_ROWS = 10_000  # per-row plot files keep at most this many (seeded sample)
MAX_CURVE_POINTS = 400


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _safe(name: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "class"


def _thin(xs: list[float], ys: list[float], limit: int = MAX_CURVE_POINTS) -> tuple[list, list]:
    if len(xs) <= limit:
        return xs, ys
    step = len(xs) / limit
    keep = sorted({int(i * step) for i in range(limit)} | {len(xs) - 1})
    return [xs[i] for i in keep], [ys[i] for i in keep]


def _sample(n: int, seed: int = 0) -> np.ndarray:
    import numpy as np

    if n <= MAX_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_ROWS, replace=False))


def classification_plots(
    y: pd.Series, pred: np.ndarray, proba: Any, classes: list
) -> dict[str, Any]:
    """Confusion counts and per-class ROC / PR curves (only classes present in the test set)."""
    import numpy as np
    from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

    labels = [c for c in classes] or sorted(set(y) | set(pred))
    matrix = confusion_matrix(y, pred, labels=labels).tolist()
    out: dict[str, Any] = {
        "labels": [str(c) for c in labels],
        "confusion": matrix,
        "roc": {},
        "pr": {},
        "rows": [{"actual": str(a), "predicted": str(p)} for a, p in zip(y, pred, strict=True)],
    }
    if proba is None:
        return out
    y_arr = np.asarray(y)
    for i, cls in enumerate(classes):
        positive = y_arr == cls
        if positive.all() or not positive.any():
            continue  # a curve needs both outcomes
        fpr, tpr, _ = roc_curve(positive, proba[:, i])
        prec, rec, _ = precision_recall_curve(positive, proba[:, i])
        out["roc"][str(cls)] = _thin([float(v) for v in fpr], [float(v) for v in tpr])
        # recall decreases along sklearn's arrays; draw it increasing
        out["pr"][str(cls)] = _thin([float(v) for v in rec[::-1]], [float(v) for v in prec[::-1]])
        if len(classes) == 2:
            break  # binary: the positive class's curve says it all
    return out


def regression_plots(y: pd.Series, pred: np.ndarray) -> dict[str, Any]:
    import numpy as np

    actual = np.asarray(y, dtype=float)
    predicted = np.asarray(pred, dtype=float)
    keep = _sample(len(actual))
    return {
        "actual": [round(float(v), 6) for v in actual[keep]],
        "predicted": [round(float(v), 6) for v in predicted[keep]],
        "residual": [round(float(v), 6) for v in (actual - predicted)[keep]],
        "sampled": len(keep) < len(actual),
    }


def slice_rows(slices: list[dict[str, Any]], task: str) -> tuple[list[dict], list[str]]:
    """Rows of the per-slice table (slice, rows, metrics...) and its columns."""
    metrics: list[str] = []
    for s in slices:
        metrics += [m for m in s["metrics"] if m not in metrics]
    first = SLICE_BAR_METRIC.get(task)
    if first in metrics:
        metrics.remove(first)
        metrics.insert(0, first)
    rows = [
        {"slice": s["name"], "rows": s["rows"], **{m: s["metrics"].get(m, "") for m in metrics}}
        for s in slices
    ]
    return rows, ["slice", "rows", *metrics]


def write_plot_files(dest: Path, task: str, data: dict[str, Any], slices: list[dict]) -> list[str]:
    """Replace the directory `dest` with the plot files; return their paths relative to it."""
    files: dict[str, str] = {}
    if task == "classification":
        rows = data["rows"]
        keep = _sample(len(rows))
        files[CONFUSION_FILE] = _csv([rows[i] for i in keep], ["actual", "predicted"])
        for kind, folder, (xk, yk) in (
            ("roc", ROC_DIR, ("fpr", "tpr")),
            ("pr", PR_DIR, ("recall", "precision")),
        ):
            for cls, (xs, ys) in data[kind].items():
                points = [{xk: round(x, 6), yk: round(v, 6)} for x, v in zip(xs, ys, strict=True)]
                files[f"{folder}/{_safe(cls)}.json"] = json.dumps(points) + "\n"
    else:
        pairs = zip(data["actual"], data["predicted"], data["residual"], strict=True)
        rows = [{"actual": a, "predicted": p, "residual": r} for a, p, r in pairs]
        files[PREDICTED_FILE] = _csv(rows, ["actual", "predicted"])
        files[RESIDUALS_FILE] = _csv(rows, ["predicted", "residual"])
    if slices:
        table, columns = slice_rows(slices, task)
        files[SLICES_FILE] = _csv(table, columns)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{secrets.token_hex(4)}"
    try:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text, encoding="utf-8")
        tmp.mkdir(exist_ok=True)
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{secrets.token_hex(4)}"
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(files)
