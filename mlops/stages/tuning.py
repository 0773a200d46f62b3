"""Hyper-parameter search for the train stage: `tune:` in params.yaml.

Grid, random, or successive halving (scikit-learn's search classes) with cross-validation over
the whole Pipeline (preprocessing is refitted inside each fold, so no fold sees another's data).
The best candidate is refitted on the whole training set; the search table goes into `fit.json`,
then into the bundle, the run record and the evaluation report.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlops.config.models import TuneParams
from mlops.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

MAX_TABLE_ROWS = 100
DEFAULT_SCORING = {"classification": "accuracy", "regression": "r2"}


def _key(name: str) -> str:
    """`C` -> `model__C` (the estimator's step); `preprocess__...` stays as given."""
    return name if "__" in name else f"model__{name}"


def _distribution(name: str, spec: dict[str, list]) -> Any:
    from scipy import stats

    kind, (lo, hi) = next(iter(spec.items()))
    try:
        if kind == "loguniform":
            return stats.loguniform(float(lo), float(hi))
        if kind == "uniform":
            return stats.uniform(float(lo), float(hi) - float(lo))
        return stats.randint(int(lo), int(hi) + 1)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"tune.space.{name}: bad bounds {lo!r}, {hi!r}: {exc}") from None


def search_space(tune: TuneParams) -> dict[str, Any]:
    """The space in scikit-learn's terms (step-prefixed names, scipy distributions)."""
    space: dict[str, Any] = {}
    for name, values in tune.space.items():
        if isinstance(values, dict):
            if tune.method == "grid":
                raise UsageError(
                    f"tune.space.{name}: a grid search needs a list of values, not a distribution",
                    "Use `method: random` or `method: halving`, or list the values.",
                )
            space[_key(name)] = _distribution(name, values)
        else:
            space[_key(name)] = list(values)
    return space


def _searcher(
    tune: TuneParams, pipe: Any, space: dict[str, Any], scoring: str, cv: Any, n_jobs: int = 1
) -> Any:
    from sklearn import model_selection as ms

    common = {"scoring": scoring, "cv": cv, "refit": True, "n_jobs": n_jobs, "error_score": "raise"}
    grid_only = all(isinstance(v, list) for v in space.values())
    if tune.method == "grid":
        return ms.GridSearchCV(pipe, space, **common)
    if tune.method == "random":
        return ms.RandomizedSearchCV(
            pipe, space, n_iter=tune.n_iter, random_state=tune.seed, **common
        )
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401

    if grid_only:
        return ms.HalvingGridSearchCV(
            pipe, space, factor=tune.factor, random_state=tune.seed, **common
        )
    return ms.HalvingRandomSearchCV(
        pipe,
        space,
        factor=tune.factor,
        n_candidates=tune.n_iter,
        random_state=tune.seed,
        **common,
    )


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    return v


def _table(results: dict[str, Any]) -> list[dict[str, Any]]:
    n = len(results["params"])
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "rank": int(results["rank_test_score"][i]),
            "params": {k.split("__", 1)[-1]: _plain(v) for k, v in results["params"][i].items()},
            "mean_score": round(float(results["mean_test_score"][i]), 6),
            "std_score": round(float(results["std_test_score"][i]), 6),
            "fit_seconds": round(float(results["mean_fit_time"][i]), 4),
        }
        if "n_resources" in results:
            row["iteration"] = int(results["iter"][i])
            row["n_resources"] = int(results["n_resources"][i])
        rows.append(row)
    # halving: a candidate appears once per round it reached; rank the last rounds first
    rows.sort(key=lambda r: (-r.get("iteration", 0), r["rank"], -r["mean_score"]))
    return rows


def _sequential_inner(pipe: Any) -> dict[str, int]:
    """`n_jobs=1` for every step whose own fit would run in parallel (n_jobs unset or not 1)."""
    params = pipe.get_params()
    inner = {}
    for key, value in params.items():
        if not key.endswith("__n_jobs") or value == 1:
            continue
        owner = params.get(key[: -len("__n_jobs")])
        if value is None and type(owner).__name__ == "LogisticRegression":
            continue  # n_jobs has no effect there since scikit-learn 1.8 (and warns when set)
        inner[key] = 1
    return inner


def tune_pipeline(
    tune: TuneParams, pipe: Any, X: pd.DataFrame, y: pd.Series, task: str, n_jobs: int = 1
) -> tuple[Any, dict[str, Any]]:
    """Run the search; return the refitted best pipeline and the record of the search.

    `n_jobs` fits candidates and folds in parallel through joblib (inside
    `mlops.engine.training.joblib_on_cluster`, -1 means every worker thread of the cluster)."""
    from sklearn.metrics import get_scorer_names
    from sklearn.model_selection import KFold, StratifiedKFold

    scoring = tune.scoring or DEFAULT_SCORING[task]
    if scoring not in get_scorer_names():
        raise UsageError(
            f"tune.scoring {scoring!r} is not a scikit-learn scorer",
            "Use e.g. accuracy, f1_macro, roc_auc_ovr, r2, neg_root_mean_squared_error.",
        )
    space = search_space(tune)
    from mlops.bundle.labels import EncodedLabels

    wrapped = isinstance(pipe.steps[-1][1], EncodedLabels)  # XGBoost: its own parameters inside
    if wrapped:
        space = {k.replace("model__", "model__estimator__", 1): v for k, v in space.items()}
    if task == "classification":
        smallest = int(y.value_counts().min())
        if smallest < tune.cv:
            raise UsageError(
                f"tune.cv={tune.cv} folds, but a class has only {smallest} training rows",
                "Lower tune.cv (at least 2).",
            )
        cv: Any = StratifiedKFold(tune.cv, shuffle=True, random_state=tune.seed)
    else:
        cv = KFold(tune.cv, shuffle=True, random_state=tune.seed)
    if n_jobs != 1:
        # the search runs candidates x folds in parallel; an estimator that would parallelise
        # its own fit (n_jobs unset or -1) fits sequentially inside each, or on a Dask cluster
        # every tree of a forest would become a task of its own
        pipe.set_params(**_sequential_inner(pipe))
    search = _searcher(tune, pipe, space, scoring, cv, n_jobs)
    t0 = time.perf_counter()
    try:
        search.fit(X, y)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"the tuning search failed: {exc}") from None
    table = _table(search.cv_results_)
    best = {k.split("__", 1)[-1]: _plain(v) for k, v in search.best_params_.items()}
    if wrapped:
        best = {k.removeprefix("estimator__"): v for k, v in best.items()}
    record = {
        "method": tune.method,
        "cv": tune.cv,
        "scoring": scoring,
        "candidates": len({repr(sorted(r["params"].items())) for r in table}),
        "iterations": int(getattr(search, "n_iterations_", 0)) or None,
        "best_params": best,
        "best_score": round(float(search.best_score_), 6),
        "seconds": round(time.perf_counter() - t0, 3),
        "table": table[:MAX_TABLE_ROWS],
        "table_rows": len(table),
    }
    return search.best_estimator_, record
