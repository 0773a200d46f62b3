"""The project's own model code in the train stage: estimator and `features:` resolution, a fit
that reports itself (per-iteration curves, convergence warnings).

- `train.estimator` is any scikit-learn-compatible class: `sklearn.linear_model.Ridge`,
  `lightgbm.LGBMClassifier` (the `boost` extra), or the project's own as `module:Class`.
- `train.features` lists the project's transformers, applied in order to the raw input columns
  before the built-in preprocessing (or instead of it with `preprocess: false`).
- A class from the project's code (a module in the repository root, `mlops.bundle.codepin`) must
  be listed by its exact name in `model.trusted_types`: the bundle will contain it, and nothing
  else of the project is loaded. The check happens here, before the fit, not at evaluate.
- The fit records per-iteration figures where the estimator exposes them (LightGBM/XGBoost eval
  results on the training rows, `loss_curve_`, `train_score_`, `validation_score_`), its
  `n_iter_`, and every `ConvergenceWarning` (the `converged: true` gate reads it).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.bundle.codepin import import_class, is_project_module, split_class_path
from mlops.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

CURVE_FILE = "training_curve.csv"  # in build/<name>/, copied to the evaluate stage's plots


def check_trusted(path: str, root: Path, trusted: Collection[str]) -> None:
    """Refuse a project class that `model.trusted_types` does not list (exit 2, before fitting)."""
    module, cls = split_class_path(path)
    if is_project_module(module, root) and f"{module}.{cls}" not in set(trusted):
        raise UsageError(
            f"{path} is your project's own class, but pipeline.yaml does not trust it",
            f"Add `{module}.{cls}` under `model.trusted_types:` in pipeline.yaml (mlops loads "
            "no type of yours that is not listed there).",
        )


def resolve_class(path: str, root: Path, trusted: Collection[str]) -> type:
    """The class `path` names (`module:Class` or dotted), checked against the trust list."""
    check_trusted(path, root, trusted)
    return import_class(path, root)


def feature_steps(
    entries: list[Any], root: Path, trusted: Collection[str]
) -> list[tuple[str, Any]]:
    """`(name, transformer)` for each entry of `train.features`."""
    steps = []
    for i, entry in enumerate(entries):
        path = entry if isinstance(entry, str) else entry.class_
        kwargs = {} if isinstance(entry, str) else dict(entry.params)
        cls = resolve_class(path, root, trusted)
        if not (hasattr(cls, "fit") and hasattr(cls, "transform")):
            raise UsageError(
                f"train.features[{i}] {path} is not a transformer (no fit/transform)",
                "List scikit-learn-compatible transformers (BaseEstimator, TransformerMixin).",
            )
        try:
            step = cls(**kwargs)
        except TypeError as exc:
            raise UsageError(f"bad parameter for train.features[{i}] {path}: {exc}") from None
        steps.append((f"feature{i}_{cls.__name__.lower()}", step))
    return steps


def with_features(
    steps: list[tuple[str, Any]],
    X: pd.DataFrame,
    y: Any,
    estimator: Any,
    preprocess: bool,
    build_pipeline: Any,
    feature_columns: Any,
) -> Any:
    """Pipeline(feature steps..., [preprocess,] model): the features' output columns decide
    the preprocessing, learnt from one fit of the features on the training rows. The steps are
    not nested (a stateless transformer would fail a nested pipeline's fitted check)."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    feats = Pipeline(steps)
    if not preprocess:
        return Pipeline([*steps, ("model", estimator)])
    try:
        sample = clone(feats).fit_transform(X, y)
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"train.features failed on the training rows: {exc}") from None
    if not hasattr(sample, "columns"):
        raise UsageError(
            "train.features returns an array, but the built-in preprocessing picks columns by "
            "name and type",
            "Return a pandas DataFrame from the last transformer's transform(), or set "
            "`preprocess: false` under `train:` in params.yaml.",
        )
    numeric, categorical = feature_columns(sample, "", [])
    base = build_pipeline(numeric, categorical, estimator)
    return Pipeline([*steps, *base.steps])


def fit_reporting(pipe: Any, X: Any, y: Any) -> dict[str, Any]:
    """Fit `pipe` (its last step the estimator), recording curves and ConvergenceWarnings.

    LightGBM and XGBoost wrappers are given the transformed training rows as their eval set so
    their per-round training loss is recorded; the result equals `pipe.fit(X, y)`."""
    from mlops.bundle.labels import EncodedLabels

    est = pipe.steps[-1][1]
    inner = est.estimator if isinstance(est, EncodedLabels) else est  # XGBoost's label codes
    with record_warnings() as seen:
        if _takes_eval_set(inner):
            Xt = pipe[:-1].fit_transform(X, y) if len(pipe.steps) > 1 else X
            kwargs: dict[str, Any] = {"eval_set": [(Xt, y)]}
            if type(inner).__module__.startswith("xgboost"):
                kwargs["verbose"] = False
            est.fit(Xt, y, **kwargs)
        else:
            pipe.fit(X, y)
    return training_record(est.estimator_ if isinstance(est, EncodedLabels) else est, seen)


class record_warnings:
    """Context manager: collects ConvergenceWarning messages (others are shown as usual)."""

    def __enter__(self) -> list[str]:
        self._cm = warnings.catch_warnings(record=True)
        self._log = self._cm.__enter__()
        warnings.simplefilter("always")
        self.messages: list[str] = []
        return self.messages

    def __exit__(self, *exc: Any) -> None:
        from sklearn.exceptions import ConvergenceWarning

        self._cm.__exit__(*exc)
        for w in self._log:
            if issubclass(w.category, ConvergenceWarning):
                text = " ".join(str(w.message).split())
                if text not in self.messages:
                    self.messages.append(text)
            elif "'eval_set' is deprecated" not in str(w.message):
                # LightGBM >= 4.6 prefers eval_X/eval_y, which do not encode string labels:
                # eval_set on the training rows themselves stays the working form
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _takes_eval_set(est: Any) -> bool:
    return type(est).__module__.startswith(("lightgbm", "xgboost")) and _accepts(est, "eval_set")


def _accepts(est: Any, name: str) -> bool:
    try:
        return name in inspect.signature(est.fit).parameters
    except (TypeError, ValueError):
        return False


def curves(est: Any) -> dict[str, list[float]]:
    """Per-iteration figures the fitted estimator exposes, by name."""
    out: dict[str, list[float]] = {}
    evals = getattr(est, "evals_result_", None)
    if evals is None and hasattr(est, "evals_result") and type(est).__module__.startswith("xgb"):
        try:
            evals = est.evals_result()
        except Exception:  # an XGBoost model fitted without an eval set
            evals = None
    if isinstance(evals, dict):
        for data_name, metrics in evals.items():
            for metric, values in (metrics or {}).items():
                name = f"train {metric}" if data_name in ("training", "validation_0") else metric
                out[name] = [float(v) for v in values]
    for attr, name in (
        ("loss_curve_", "loss"),
        ("train_score_", "train score"),
        ("validation_score_", "validation score"),
        ("validation_scores_", "validation score"),
    ):
        values = getattr(est, attr, None)
        if values is not None and len(values) > 1:
            out[name] = [float(v) for v in values]
    return out


def training_record(est: Any, warned: list[str]) -> dict[str, Any]:
    """`fit.json` → `training`: iterations, curve names, converged, the warnings."""
    import numpy as np

    found = curves(est)
    n_iter = getattr(est, "n_iter_", None)
    if n_iter is None and found:
        n_iter = max(len(v) for v in found.values())
    if n_iter is not None:
        n_iter = int(np.max(n_iter))
    return {
        "iterations": n_iter,
        "curves": {k: round(v[-1], 6) for k, v in found.items()},
        "converged": not warned,
        "warnings": warned,
        "_curves": found,  # written as the curve file, then dropped
    }


def curve_csv(found: dict[str, list[float]]) -> str:
    """The curve file: `step` and one column per figure (empty cells past a short curve)."""
    names = sorted(found)
    lines = [",".join(["step", *(n.replace(",", " ") for n in names)])]
    steps = max((len(v) for v in found.values()), default=0)
    for i in range(steps):
        row = [str(i + 1)]
        for n in names:
            row.append(repr(round(found[n][i], 8)) if i < len(found[n]) else "")
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"
