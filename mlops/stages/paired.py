"""Champion against challenger on the same rows: the baseline bundle scored on this test split.

A `not_worse_than:` gate used to compare the challenger's figure on its test split with the figure
the baseline recorded on *its own* test split: different rows, so noise decided. Here the
baseline's bundle, as committed at the baseline's commit (fetched from the DVC cache or remote by
the hash `reports/baseline.json` records), predicts the challenger's test rows, and the gate
judges the paired difference with a seeded paired bootstrap: both models are scored on the same
resampled rows, so their shared noise cancels.

The gate fails only when the whole confidence interval of the difference lies below
`-tolerance` (the challenger is worse by more than the tolerance, with that confidence). When
the baseline cannot score the split (no bundle, it cannot be fetched or verified, or its
features are not in the split), the gate falls back to the stored figures and says so.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.errors import MlopsError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops.config import Project

RESAMPLES = 1000
SEED = 0
CONFIDENCE = 0.95
CLASSIFICATION = ("accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro")
PROBABILITY = ("roc_auc", "log_loss")  # from predict_proba: both models' probabilities, same rows
REGRESSION = ("rmse", "mae", "mse", "r2")
LOWER_IS_BETTER = {"rmse", "mae", "mse", "log_loss"}
BLOCK_CELLS = 4_000_000  # resampled row indices held at once


def fetch_baseline_bundle(project: Project, entry: dict[str, Any], dest: Path) -> dict[str, Any]:
    """Download the baseline's bundle as committed at its commit into `dest`, check every file's
    md5 against DVC's record at that commit and the directory hash against the one the baseline
    file recorded, then the sha256 in its metadata; returns the metadata."""
    from mlops.adapters import dvc
    from mlops.bundle import verify_bundle

    bundle = entry.get("bundle") or {}
    commit = entry.get("commit")
    if not commit or not bundle.get("md5"):
        raise MlopsError(f"no model bundle recorded at {entry.get('name')}")
    fetched = dvc.fetch_dir(project.root, bundle["path"], commit, dest)
    if fetched.md5 and fetched.md5 != bundle["md5"]:
        raise MlopsError(f"bundle hash {fetched.md5} != {bundle['md5']} in the baseline file")
    for rel, md5 in fetched.files.items():
        h = hashlib.md5((dest / rel).read_bytes(), usedforsecurity=False).hexdigest()
        if md5 and h != md5:
            raise MlopsError(f"{rel} of the baseline bundle does not match its DVC record")
    return verify_bundle(dest)


def score_baseline(
    project: Project,
    entry: dict[str, Any],
    test: pd.DataFrame,
) -> tuple[Any, Any, dict[str, Any]]:
    """The baseline bundle's predictions (and probabilities) on `test`, and its metadata.
    Raises `MlopsError` saying why it cannot (the caller falls back to stored figures)."""
    from mlops.bundle import MODEL_FILE, load_model_file

    scratch = project.path(".mlops")
    scratch.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".baseline-", dir=scratch))
    try:
        shutil.rmtree(tmp)
        meta = fetch_baseline_bundle(project, entry, tmp)
        features = list(meta.get("features") or [])
        missing = [f for f in features if f not in test.columns]
        if not features or missing:
            raise MlopsError(
                "its features are not in this test split (schema changed): "
                + ", ".join(missing[:5] or ["none recorded"])
            )
        model = load_model_file(tmp / MODEL_FILE)
        if hasattr(model, "classes_"):  # the order of predict_proba's columns
            meta = {
                **meta,
                "classes": [c.item() if hasattr(c, "item") else c for c in model.classes_],
            }
        X = test[features]
        try:
            pred = model.predict(X)
            proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
        except (ValueError, TypeError, KeyError) as exc:
            raise MlopsError(f"it cannot score this test split: {exc}") from None
        return pred, proba, meta
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _codes(y: Any, *preds: Any) -> tuple[np.ndarray, list[np.ndarray], int]:
    import numpy as np
    import pandas as pd

    values = pd.Series(
        np.concatenate(
            [np.asarray(y, dtype=object)] + [np.asarray(p, dtype=object) for p in preds]
        ).astype(str)
    )
    codes, uniques = pd.factorize(values)
    n = len(y)
    return codes[:n], [codes[n * (i + 1) : n * (i + 2)] for i in range(len(preds))], len(uniques)


def _blocks(n: int, resamples: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    per = max(1, BLOCK_CELLS // max(n, 1))
    done = 0
    while done < resamples:
        size = min(per, resamples - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def _classification(
    metric: str, y: Any, new: Any, base: Any, resamples: int, seed: int
) -> tuple[float, float, np.ndarray]:
    import numpy as np

    from mlops.stats import cm_metric, confusion

    yc, (pn, pb), k = _codes(y, new, base)
    v_new = float(cm_metric(confusion(yc, pn, k), metric)[0])
    v_base = float(cm_metric(confusion(yc, pb, k), metric)[0])
    diffs = []
    for idx in _blocks(len(yc), resamples, seed):
        b = idx.shape[0]
        offset = (np.arange(b) * k * k)[:, None]
        cells = []
        for p in (pn, pb):
            flat = (yc[idx] * k + p[idx] + offset).ravel()
            cells.append(np.bincount(flat, minlength=b * k * k).reshape(b, k, k).astype("float64"))
        diffs.append(cm_metric(cells[0], metric) - cm_metric(cells[1], metric))
    return v_new, v_base, np.concatenate(diffs)


def _regression_value(metric: str, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """rmse, mae, mse or r2 of each row of resampled labels `y` and predictions `p`."""
    import numpy as np

    err = y - p
    if metric == "mae":
        return np.abs(err).mean(axis=-1)
    mse = (err * err).mean(axis=-1)
    if metric == "mse":
        return mse
    if metric == "rmse":
        return np.sqrt(mse)
    var = y.var(axis=-1)
    return 1 - mse / np.where(var > 0, var, np.nan)


def _regression(
    metric: str, y: Any, new: Any, base: Any, resamples: int, seed: int
) -> tuple[float, float, np.ndarray]:
    import numpy as np

    yv = np.asarray(y, dtype="float64")
    pn, pb = np.asarray(new, dtype="float64"), np.asarray(base, dtype="float64")
    v_new = float(_regression_value(metric, yv, pn))
    v_base = float(_regression_value(metric, yv, pb))
    diffs = []
    for idx in _blocks(len(yv), resamples, seed):
        diffs.append(
            _regression_value(metric, yv[idx], pn[idx])
            - _regression_value(metric, yv[idx], pb[idx])
        )
    return v_new, v_base, np.concatenate(diffs)


def align_proba(proba: Any, model_classes: list, classes: list) -> np.ndarray:
    """`proba`'s columns (in `model_classes`' order) put in `classes`' order; a class the model
    never learnt gets probability 0 (the baseline cannot predict it)."""
    import numpy as np

    proba = np.asarray(proba, dtype="float64")
    where = {str(c): i for i, c in enumerate(model_classes)}
    out = np.zeros((proba.shape[0], len(classes)))
    for j, c in enumerate(classes):
        if str(c) in where:
            out[:, j] = proba[:, where[str(c)]]
    return out


def _class_index(y: Any, classes: list) -> np.ndarray:
    """Each label's column in `classes` (-1 for a label none of the models knows)."""
    import numpy as np

    where = {str(c): i for i, c in enumerate(classes)}
    return np.array([where.get(str(v), -1) for v in np.asarray(y, dtype=object)], dtype="int64")


def _auc(yi: np.ndarray, proba: np.ndarray, classes: int) -> np.ndarray:
    """ROC AUC of each row of resampled class indices `yi` (b, n) and their probabilities
    (b, n, k), as scikit-learn's `roc_auc_score` (binary: the second class's probability;
    more classes: one-vs-rest, macro average); NaN where a class is absent or alone."""
    import numpy as np
    from scipy.stats import rankdata

    n = yi.shape[1]
    wanted = [1] if classes == 2 else range(classes)
    aucs = []
    for c in wanted:
        ranks = rankdata(proba[:, :, c], axis=1)  # ties share the average rank, as sklearn
        pos = yi == c
        n_pos = pos.sum(axis=1).astype("float64")
        n_neg = n - n_pos
        with np.errstate(divide="ignore", invalid="ignore"):
            aucs.append(((ranks * pos).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return np.mean(aucs, axis=0)


def _row_log_loss(yi: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Each row's log loss (scikit-learn's clipping at the float's epsilon)."""
    import numpy as np

    eps = np.finfo(proba.dtype).eps
    return -np.log(np.clip(proba[np.arange(len(yi)), yi], eps, 1 - eps))


def _probability(
    metric: str,
    y: Any,
    new: Any,
    base: Any,
    classes: list,
    resamples: int,
    seed: int,
) -> tuple[float, float, np.ndarray]:
    import numpy as np

    yi = _class_index(y, classes)
    if (yi < 0).any():
        raise MlopsError(f"{metric}: the test labels hold a class neither model was trained on")
    probas = [np.asarray(new, dtype="float64"), np.asarray(base, dtype="float64")]
    if metric == "log_loss":
        losses = [_row_log_loss(yi, p) for p in probas]
        values = [float(loss.mean()) for loss in losses]
        diffs = [
            losses[0][idx].mean(axis=1) - losses[1][idx].mean(axis=1)
            for idx in _blocks(len(yi), resamples, seed)
        ]
    else:
        k = len(classes)
        values = [float(_auc(yi[None, :], p[None, :, :], k)[0]) for p in probas]
        per = max(1, BLOCK_CELLS // max(len(yi) * k, 1))  # (b, n, k) probabilities at once
        diffs = []
        for idx in _blocks(len(yi), resamples, seed):
            for start in range(0, idx.shape[0], per):
                part = idx[start : start + per]
                diffs.append(
                    _auc(yi[part], probas[0][part], k) - _auc(yi[part], probas[1][part], k)
                )
    return values[0], values[1], np.concatenate(diffs)


def pairable(metric: str, task: str, probabilities: bool = False) -> bool:
    """Whether `paired_difference` knows the metric (`roc_auc`, `log_loss`: only with both
    models' probabilities)."""
    if task != "classification":
        return metric in REGRESSION
    return metric in CLASSIFICATION or (probabilities and metric in PROBABILITY)


def paired_difference(
    metric: str,
    task: str,
    y: Any,
    challenger: Any,
    baseline: Any,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    lower_is_better: bool | None = None,
    classes: list | None = None,
) -> dict[str, Any]:
    """Both models' `metric` on the same rows and the paired bootstrap interval of the
    difference, signed so that positive means the challenger is better.

    For `roc_auc` and `log_loss`, `challenger` and `baseline` are the two models' class
    probabilities (columns in `classes`' order, `align_proba`), resampled on the same rows with
    the same seed as the label metrics."""
    import numpy as np

    if task == "classification" and metric in PROBABILITY:
        if classes is None:
            raise MlopsError(f"{metric} is paired on probabilities: pass the classes")
        v_new, v_base, diffs = _probability(
            metric, y, challenger, baseline, classes, resamples, seed
        )
    else:
        fn = _classification if task == "classification" else _regression
        v_new, v_base, diffs = fn(metric, y, challenger, baseline, resamples, seed)
    lower = metric in LOWER_IS_BETTER if lower_is_better is None else lower_is_better
    sign = -1.0 if lower else 1.0
    diffs = sign * diffs[np.isfinite(diffs)]
    alpha = (1 - confidence) / 2
    low, high = (
        (float(q) for q in np.quantile(diffs, [alpha, 1 - alpha])) if len(diffs) else (0.0, 0.0)
    )
    return {
        "challenger": round(v_new, 6),
        "baseline": round(v_base, 6),
        "difference": round(sign * (v_new - v_base), 6),
        "low": round(low, 6),
        "high": round(high, 6),
        "rows": len(y),
        "confidence": confidence,
        "method": f"paired bootstrap, {resamples} resamples, seed {seed}",
    }
