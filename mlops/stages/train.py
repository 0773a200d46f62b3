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
from collections.abc import Iterator
from dataclasses import dataclass
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


DEFAULT_SEED = 0  # `random_state` of an estimator that has one when params.yaml gives none


def import_estimator(path: str, root: Any = None, trusted: Any = ()) -> type:
    """The estimator class `path` names (`module.Class` or `module:Class`); a class of the
    project's own code (under `root`) must be in `trusted` (`mlops.stages.custom`)."""
    if root is not None:
        from mlops.stages.custom import resolve_class

        return resolve_class(path, root, trusted)
    module_name, _, cls_name = path.replace(":", ".").rpartition(".")
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
    numeric: list[str] = []
    categorical: list[str] = []
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


def input_schema(
    df: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    contract: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the bundle accepts at prediction time: each feature's type, range and vocabulary.

    With a data contract (`data/schema.yaml`), a number's accepted range is the contract's
    (`in_range`; none if it gives none), and the training split's range is kept beside it as
    `train_min`/`train_max` (drift information, not a check); without one, the training range."""
    features = []
    ranges = _contract_ranges(contract)
    for col in numeric + categorical:
        s = df[col]
        # every feature may be missing at prediction time: the pipeline imputes it
        f: dict[str, Any] = {"name": col, "dtype": dtype_name(s), "nullable": True}
        values = s.dropna()
        if col in numeric and len(values):
            lo, hi = float(values.min()), float(values.max())
            if contract is None:
                f["min"], f["max"] = lo, hi
                f["range_source"] = "training data"
            else:
                if col in ranges:
                    f["min"], f["max"] = ranges[col]
                f["train_min"], f["train_max"] = lo, hi
                f["range_source"] = "data contract"
        elif col in categorical:
            f["categories"] = sorted(str(v) for v in values.unique())
        features.append(f)
    return {"features": features}


def _contract_ranges(contract: dict[str, Any] | None) -> dict[str, tuple[float, float]]:
    """`{column: (min, max)}` of the contract's `in_range` checks (both bounds numbers)."""
    out = {}
    for name, col in ((contract or {}).get("columns") or {}).items():
        check = ((col or {}).get("checks") or {}).get("in_range") if isinstance(col, dict) else None
        if isinstance(check, dict):
            lo, hi = check.get("min_value"), check.get("max_value")
            if isinstance(lo, int | float) and isinstance(hi, int | float):
                out[str(name)] = (float(lo), float(hi))
    return out


def read_contract(project: Project) -> dict[str, Any] | None:
    """The data contract of the pipeline's validate stage, or None without one (or its file)."""
    from mlops.config.resolve import contract_path
    from mlops.data.schema import read_schema

    path = contract_path(project.pipeline)
    if path is None or not project.path(path).is_file():
        return None
    return read_schema(project.path(path))


def _cast(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _estimator(params: Any, task: str, project: Project | None = None) -> Any:
    from sklearn.base import is_classifier, is_regressor

    if project is not None:
        cls = import_estimator(params.estimator, project.root, project.pipeline.model.trusted_types)
    else:
        cls = import_estimator(params.estimator)
    if task == "classification" and not is_classifier(cls()):
        raise UsageError(f"{params.estimator} is not a classifier, but the task is classification")
    if task == "regression" and not is_regressor(cls()):
        raise UsageError(f"{params.estimator} is not a regressor, but the task is regression")
    try:
        estimator = cls(**params.hyperparameters)
    except TypeError as exc:
        raise UsageError(f"bad hyper-parameter for {params.estimator}: {exc}") from None
    if "random_state" in estimator.get_params() and estimator.random_state is None:
        # an unseeded estimator gives different models from the same inputs: seed it, and the
        # seed is recorded with the hyper-parameters (set train.random_state to choose another)
        estimator.set_params(random_state=DEFAULT_SEED)
    from mlops.bundle.labels import EncodedLabels, needs_codes

    if task == "classification" and needs_codes(estimator):  # XGBoost: labels 0..k-1 only
        return EncodedLabels(estimator)
    return estimator


def seeded_hyperparameters(params: Any, estimator: Any) -> dict[str, Any]:
    """The hyper-parameters from params.yaml, plus the seed `_estimator` chose when none was
    given (so the bundle records every value that decides the fitted model)."""
    hyper = dict(params.hyperparameters)
    from mlops.bundle.labels import EncodedLabels

    if isinstance(estimator, EncodedLabels):  # XGBoost's label codes: its own parameters
        estimator = estimator.estimator
    if "random_state" not in hyper and "random_state" in estimator.get_params():
        hyper["random_state"] = estimator.get_params()["random_state"]
    return hyper


def run(project: Project, stage: ResolvedStage) -> Iterator[str]:
    """Fit, then write the fitted pipeline, its input schema, reference profile and fit record.

    With `engine: dask` the joblib work (a tuning search's fits, an estimator's `n_jobs`) runs
    on the cluster; with `incremental:` the estimator learns chunk by chunk (partition by
    partition on the cluster) and the data is never loaded whole."""
    from mlops.stages.engine import data_path, open_engine

    args: TrainWith = stage.args
    if project.params.train is None:
        raise UsageError(
            "params.yaml has no `train:` section",
            "Add `train: {estimator: sklearn.linear_model.LogisticRegression}` to params.yaml.",
        )
    if args.incremental is not None and project.params.tune is not None:
        raise UsageError(
            "`incremental:` training and a `tune:` search cannot be combined",
            "Remove `tune:` from params.yaml, or `incremental:` from the train stage.",
        )
    source = data_path(project, args.input)
    with open_engine(project, [source] if args.incremental else None) as engine:
        if engine.dask:
            yield f"train: {engine.info.line()}"
        if args.incremental is not None:
            yield from _run_incremental(project, args, engine, source, stage.name)
        else:
            yield from _run_in_memory(project, args, engine, stage.name)


def _run_in_memory(
    project: Project, args: TrainWith, engine: Any, stage_name: str
) -> Iterator[str]:
    import contextlib

    spec = project.pipeline.model
    params = project.params.train
    assert params is not None
    df = read_table(project.path(args.input))
    if spec.target not in df.columns:
        raise UsageError(f"target column {spec.target!r} is not in {args.input}")
    df = df[df[spec.target].notna()]
    y = df[spec.target]
    task = infer_task(y, spec.task)
    estimator = _estimator(params, task, project)
    roles = _roles(df, spec.target, args)
    for role in roles.values():
        yield f"train: {role.line()}"
    numeric, categorical = feature_columns(df, spec.target, [*args.exclude, *roles])
    if not numeric and not categorical:
        raise UsageError("no feature columns left after excluding the target and `exclude`")
    X = df[numeric + categorical]
    pipe = _custom_pipeline(project, params, X, y, estimator, numeric, categorical)
    t0 = time.perf_counter()
    tuning = None
    training: dict[str, Any] | None = None
    hyperparameters = seeded_hyperparameters(params, estimator)
    on_cluster: Any = contextlib.nullcontext()
    parallel = project.params.tune is not None or estimator.get_params().get("n_jobs") not in (
        None,
        1,
    )
    if engine.dask and parallel:  # only joblib work goes to the cluster; one plain fit stays here
        from mlops.engine.training import joblib_on_cluster

        on_cluster = joblib_on_cluster()
    with on_cluster:
        if project.params.tune is not None:
            from mlops.stages.tuning import tune_pipeline

            n_jobs = -1 if engine.dask else project.params.tune.n_jobs
            pipe, tuning = tune_pipeline(project.params.tune, pipe, X, y, task, n_jobs=n_jobs)
            hyperparameters = {
                **hyperparameters,
                **{k: v for k, v in tuning["best_params"].items() if "__" not in k},
            }
        else:
            from mlops.stages.custom import fit_reporting

            try:
                training = fit_reporting(pipe, X, y)
            except ValueError as exc:
                raise UsageError(f"fitting {params.estimator} failed: {exc}") from None
    fit_seconds = time.perf_counter() - t0
    schema = input_schema(df, numeric, categorical, read_contract(project))
    reference = profile_frame(df[numeric + categorical + [spec.target]])
    fitted = Fitted(
        pipe=pipe,
        task=task,
        numeric=numeric,
        categorical=categorical,
        schema=schema,
        reference=reference,
        rows=len(df),
        fit_seconds=fit_seconds,
        hyperparameters=hyperparameters,
        tuning=tuning,
        excluded={c: r.reason for c, r in roles.items()},
        training=training,
    )
    yield from _write(project, args, fitted, stage_name)


def _custom_pipeline(
    project: Project,
    params: Any,
    X: pd.DataFrame,
    y: Any,
    estimator: Any,
    numeric: list[str],
    categorical: list[str],
) -> Any:
    """The built-in pipeline, or the project's `features` before (or instead of) it."""
    if not params.features:
        if not params.preprocess:
            from sklearn.pipeline import Pipeline

            return Pipeline([("model", estimator)])
        return build_pipeline(numeric, categorical, estimator)
    from mlops.stages.custom import feature_steps, with_features

    steps = feature_steps(params.features, project.root, project.pipeline.model.trusted_types)
    return with_features(steps, X, y, estimator, params.preprocess, build_pipeline, feature_columns)


def _roles(df: pd.DataFrame, target: str, args: TrainWith) -> dict[str, Any]:
    """Identifier and time columns to leave out (not already excluded, not kept on purpose)."""
    from mlops.data.roles import infer_roles

    found = infer_roles(df, target=target)
    return {c: r for c, r in found.items() if c not in args.exclude and c not in args.keep}


def _run_incremental(
    project: Project, args: TrainWith, engine: Any, source: str, stage_name: str
) -> Iterator[str]:
    from mlops.stages.incremental import (
        LocalChunks,
        fit_incremental,
        roles_over_chunks,
        schema_from_profile,
        task_from_profile,
    )

    spec = project.pipeline.model
    params = project.params.train
    assert params is not None and args.incremental is not None
    if engine.dask:
        from mlops.engine.profiling import profile_state
        from mlops.engine.training import DaskPartitions

        state = profile_state(engine.client, source, None, partition_bytes=engine.partition_bytes)
        profile = state.profiler.result()
        chunks: Any = DaskPartitions(engine.client, source, partition_bytes=engine.partition_bytes)
    else:
        from mlops.data.validation import validate_table

        profile = validate_table(source, None).profile
        chunks = LocalChunks(source)
    columns = profile["columns"]
    if spec.target not in columns:
        raise UsageError(f"target column {spec.target!r} is not in {args.input}")
    task = task_from_profile(columns[spec.target], spec.task)
    estimator = _estimator(params, task)
    roles = {  # identifier / time columns, as the in-memory path (`_roles`) leaves them out
        c: r
        for c, r in roles_over_chunks(chunks, profile, spec.target).items()
        if c not in args.exclude and c not in args.keep
    }
    for role in roles.values():
        yield f"train: {role.line()}"
    left_out = {spec.target, *args.exclude, *roles}
    numeric = [c for c, p in columns.items() if c not in left_out and p["kind"] == "numeric"]
    categorical = [c for c, p in columns.items() if c not in left_out and p["kind"] != "numeric"]
    if not numeric and not categorical:
        raise UsageError("no feature columns left after excluding the target and `exclude`")
    pipe = build_pipeline(numeric, categorical, estimator)
    t0 = time.perf_counter()
    seed = int(params.hyperparameters.get("random_state") or 0)
    try:
        pipe, record, categories = fit_incremental(
            chunks, pipe, numeric, categorical, spec.target, task, args.incremental, seed
        )
    except ValueError as exc:
        raise UsageError(f"fitting {params.estimator} incrementally failed: {exc}") from None
    fit_seconds = time.perf_counter() - t0
    keep = [*numeric, *categorical, spec.target]
    reference = {**profile, "columns": {c: columns[c] for c in keep}}
    schema = schema_from_profile(profile, numeric, categorical, categories, read_contract(project))
    fitted = Fitted(
        pipe=pipe,
        task=task,
        numeric=numeric,
        categorical=categorical,
        schema=schema,
        reference=reference,
        rows=record["rows"],
        fit_seconds=fit_seconds,
        hyperparameters=seeded_hyperparameters(params, estimator),
        tuning=None,
        incremental=record,
        excluded={c: r.reason for c, r in roles.items()},
    )
    yield from _write(project, args, fitted, stage_name)


@dataclass
class Fitted:
    """What fitting produced, for `_write` to turn into the bundle and its record."""

    pipe: Any
    task: str
    numeric: list[str]
    categorical: list[str]
    schema: dict[str, Any]
    reference: dict[str, Any]
    rows: int
    fit_seconds: float
    hyperparameters: dict[str, Any]
    tuning: dict[str, Any] | None
    incremental: dict[str, Any] | None = None
    excluded: dict[str, str] | None = None
    training: dict[str, Any] | None = None


def _write(
    project: Project, args: TrainWith, fitted: Fitted, stage_name: str = "train"
) -> Iterator[str]:
    import numpy as np
    import sklearn

    from mlops.bundle.archive import dumps

    pipe, task, numeric, categorical = fitted.pipe, fitted.task, fitted.numeric, fitted.categorical
    schema, reference, rows, fit_seconds = (
        fitted.schema,
        fitted.reference,
        fitted.rows,
        fitted.fit_seconds,
    )
    hyperparameters, tuning, incremental = fitted.hyperparameters, fitted.tuning, fitted.incremental
    excluded, training = fitted.excluded, fitted.training
    from mlops.pipeline.facts import write_facts

    spec = project.pipeline.model
    params = project.params.train
    assert params is not None
    out = project.path(spec.fit_path)
    out.mkdir(parents=True, exist_ok=True)
    from mlops.stages.custom import CURVE_FILE, curve_csv

    model_bytes = dumps(pipe)
    atomic_write_bytes(out / "model.skops", model_bytes)
    found = (training or {}).pop("_curves", None)
    if found:
        atomic_write_text(out / CURVE_FILE, curve_csv(found))
    elif (out / CURVE_FILE).exists():
        (out / CURVE_FILE).unlink()
    atomic_write_text(out / "schema.json", json.dumps(schema, indent=2) + "\n")
    reference["target"] = spec.target
    atomic_write_text(out / "reference.json", json.dumps(reference, indent=2) + "\n")
    classes = [_cast(c) for c in getattr(pipe, "classes_", [])]
    # volatile facts (times, the commit and state of the work tree) go to the run record, never
    # into build/: the same commit, data and params must give the same bytes
    tuning, tuning_times = _split_tuning_times(tuning)
    write_facts(
        project.root,
        stage_name,
        {
            "fit_seconds": round(fit_seconds, 4),
            "tuning": tuning_times,
            "warnings": (training or {}).get("warnings", []),
            "git": {"commit": git.head(project.root), "dirty": git.is_dirty(project.root)},
        },
    )
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
        "train_rows": rows,
        "data": {args.input: _data_hash(project, args.input)},
        "versions": {
            "mlops": __version__,
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
        },
    }
    if incremental is not None:
        fit["incremental"] = incremental
    if training is not None:
        fit["training"] = training
    fit["code"] = _code_pin(project, model_bytes)
    if excluded:
        fit["excluded_columns"] = excluded  # identifier / time columns: no feature, no drift
    atomic_write_text(out / "fit.json", json.dumps(fit, indent=2, default=str) + "\n")
    how = ""
    if incremental is not None:
        how = f", partial_fit over {incremental['chunks']} chunks x {incremental['epochs']} epochs"
    yield (
        f"train: {params.estimator} on {rows} rows, {len(numeric)} numeric + "
        f"{len(categorical)} categorical features{how}, {fit_seconds:.2f}s -> {spec.fit_path}"
    )
    if tuning is not None:
        yield (
            f"tune: {tuning['method']} search over {tuning['candidates']} candidates, "
            f"best {tuning['best_params']} ({tuning['scoring']} {tuning['best_score']:.4g})"
        )


def _code_pin(project: Project, model_bytes: bytes) -> dict[str, Any]:
    """The project modules and package versions the fitted model's types come from."""
    import io
    import zipfile

    from mlops.bundle.codepin import pin
    from mlops.bundle.trust import type_names

    with zipfile.ZipFile(io.BytesIO(model_bytes)) as zf:
        names = type_names(json.loads(zf.read("schema.json")))
    return pin(names, project.root)


def _split_tuning_times(
    tuning: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the tuning record without its timings, the timings)."""
    if tuning is None:
        return None, None
    table = [dict(row) for row in tuning.get("table", [])]
    fit_times = [row.pop("fit_seconds", None) for row in table]
    kept = {k: v for k, v in tuning.items() if k != "seconds"}
    kept["table"] = table
    return kept, {"seconds": tuning.get("seconds"), "fit_seconds": fit_times}


def _data_hash(project: Project, path: str) -> str | None:
    """md5 of the input file (what dvc.lock records); None for a directory or a URL."""
    full = project.path(path)
    return md5_file(full) if "://" not in path and full.is_file() else None
