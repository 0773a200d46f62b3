"""`train`: fit a scikit-learn Pipeline (preprocessing chosen by column type + the estimator).

The estimator is a class path in `params.yaml` (`train.estimator`); every other key of `train:` is
passed to it as a hyper-parameter. Numbers are imputed (median) and scaled; strings and booleans
are imputed (most frequent) and one-hot encoded (unknown categories ignored at prediction time).
The fitted pipeline, the input schema and the training-data profile go to `build/<name>/`; the
evaluate stage turns them into the model bundle.
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from typing import TYPE_CHECKING, Any

from mlops import __version__
from mlops.adapters import git
from mlops.config.models import TrainWith
from mlops.config.yamlfile import atomic_write_bytes, atomic_write_text
from mlops.data.columns import dtype_name
from mlops.data.io import md5_file, read_table
from mlops.data.profile import profile_frame
from mlops.errors import UsageError
from mlops.stages.task import infer_task

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config import Project, ResolvedStage


def import_estimator(path: str) -> type:
    module_name, _, cls_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, cls_name)
    except (ImportError, AttributeError):
        raise UsageError(
            f"train.estimator {path!r} cannot be imported",
            "Give a class path such as sklearn.ensemble.RandomForestClassifier in params.yaml.",
        ) from None


def feature_columns(df: pd.DataFrame, target: str, exclude: list[str]) -> tuple[list, list]:
    """(numeric, categorical) feature names, in column order."""
    numeric, categorical = [], []
    for col in df.columns:
        if col == target or col in exclude:
            continue
        (numeric if dtype_name(df[col]) in ("int64", "float64") else categorical).append(col)
    return numeric, categorical


def build_pipeline(numeric: list[str], categorical: list[str], estimator: Any):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers = []
    if numeric:
        num = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        transformers.append(("numeric", num, numeric))
    if categorical:
        cat = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", cat, categorical))
    pre = ColumnTransformer(transformers, remainder="drop")
    return Pipeline([("preprocess", pre), ("model", estimator)])


def input_schema(df: pd.DataFrame, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """What the bundle accepts at prediction time: each feature's type, range and vocabulary."""
    features = []
    for col in numeric + categorical:
        s = df[col]
        # every feature may be missing at prediction time: the pipeline imputes it
        f: dict[str, Any] = {"name": col, "dtype": dtype_name(s), "nullable": True}
        values = s.dropna()
        if col in numeric and len(values):
            f["min"], f["max"] = float(values.min()), float(values.max())
        elif col in categorical:
            f["categories"] = sorted(str(v) for v in values.unique())
        features.append(f)
    return {"features": features}


def _cast(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def run(project: Project, stage: ResolvedStage) -> list[str]:
    import numpy as np
    import sklearn
    import skops.io as sio
    from sklearn.base import is_classifier, is_regressor

    args: TrainWith = stage.args
    spec = project.pipeline.model
    params = project.params.train
    if params is None:
        raise UsageError(
            "params.yaml has no `train:` section",
            "Add `train: {estimator: sklearn.linear_model.LogisticRegression}` to params.yaml.",
        )
    df = read_table(project.path(args.input))
    if spec.target not in df.columns:
        raise UsageError(f"target column {spec.target!r} is not in {args.input}")
    df = df[df[spec.target].notna()]
    y = df[spec.target]
    task = infer_task(y, spec.task)
    cls = import_estimator(params.estimator)
    if task == "classification" and not is_classifier(cls()):
        raise UsageError(f"{params.estimator} is not a classifier, but the task is classification")
    if task == "regression" and not is_regressor(cls()):
        raise UsageError(f"{params.estimator} is not a regressor, but the task is regression")
    try:
        estimator = cls(**params.hyperparameters)
    except TypeError as exc:
        raise UsageError(f"bad hyper-parameter for {params.estimator}: {exc}") from None
    numeric, categorical = feature_columns(df, spec.target, args.exclude)
    if not numeric and not categorical:
        raise UsageError("no feature columns left after excluding the target and `exclude`")
    pipe = build_pipeline(numeric, categorical, estimator)
    X = df[numeric + categorical]
    t0 = time.perf_counter()
    tuning = None
    hyperparameters = params.hyperparameters
    if project.params.tune is not None:
        from mlops.stages.tuning import tune_pipeline

        pipe, tuning = tune_pipeline(project.params.tune, pipe, X, y, task)
        hyperparameters = {
            **hyperparameters,
            **{k: v for k, v in tuning["best_params"].items() if "__" not in k},
        }
    else:
        try:
            pipe.fit(X, y)
        except ValueError as exc:
            raise UsageError(f"fitting {params.estimator} failed: {exc}") from None
    fit_seconds = time.perf_counter() - t0

    out = project.path(spec.fit_path)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "model.skops", sio.dumps(pipe))
    schema = input_schema(df, numeric, categorical)
    atomic_write_text(out / "schema.json", json.dumps(schema, indent=2) + "\n")
    reference = profile_frame(df[numeric + categorical + [spec.target]])
    reference["target"] = spec.target
    atomic_write_text(out / "reference.json", json.dumps(reference, indent=2) + "\n")
    classes = [_cast(c) for c in getattr(pipe, "classes_", [])]
    fit = {
        "name": spec.name,
        "task": task,
        "target": spec.target,
        "features": numeric + categorical,
        "numeric": numeric,
        "categorical": categorical,
        "classes": classes,
        "estimator": params.estimator,
        "hyperparameters": hyperparameters,
        "tuning": tuning,
        "train_rows": len(df),
        "fit_seconds": round(fit_seconds, 4),
        "data": {args.input: md5_file(project.path(args.input))},
        "git": {"commit": git.head(project.root), "dirty": git.is_dirty(project.root)},
        "versions": {
            "mlops": __version__,
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
        },
    }
    atomic_write_text(out / "fit.json", json.dumps(fit, indent=2, default=str) + "\n")
    lines = [
        f"train: {params.estimator} on {len(df)} rows, {len(numeric)} numeric + "
        f"{len(categorical)} categorical features, {fit_seconds:.2f}s -> {spec.fit_path}"
    ]
    if tuning is not None:
        lines.append(
            f"tune: {tuning['method']} search over {tuning['candidates']} candidates, "
            f"best {tuning['best_params']} ({tuning['scoring']} {tuning['best_score']:.4g})"
        )
    return lines
