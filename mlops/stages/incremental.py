"""Incremental training for the train stage (`with: {incremental: {epochs, sample_rows}}`).

For training data that does not fit in one process: the estimator learns with `partial_fit`,
one chunk (engine `local`: the file's chunks) or one partition (engine `dask`: on the worker that
holds it) at a time. Passes over the data:

1. scan: rows, and every category of each categorical feature and of the target (so one-hot
   encoding and the classifier know every value, however rare);
2. sample: about `sample_rows` rows drawn from every chunk (seeded), on which the preprocessing
   (imputation, scaling, one-hot encoding) is fitted;
3. `epochs` passes of `partial_fit` over the preprocessed chunks, in order.

The statistics profile (the bundle's reference) and the input schema come from a streamed profile
of the same data, so nothing ever holds the whole table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from mlops.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from mlops.config.models import IncrementalSpec


class ChunkSource(Protocol):
    def map(self, fn: Callable[..., Any], *args: Any) -> list[Any]: ...

    def fold(self, fn: Callable[..., Any], value: Any, *args: Any) -> Any: ...


class LocalChunks:
    """The chunks of a local file (`mlops.data.stream.iter_chunks`), read again for each pass."""

    def __init__(self, path: Any, chunk_bytes: int | None = None) -> None:
        self.path = path
        self.chunk_bytes = chunk_bytes

    def _chunks(self) -> Iterable[pd.DataFrame]:
        from mlops.data.stream import CHUNK_BYTES, iter_chunks

        return iter_chunks(self.path, chunk_bytes=self.chunk_bytes or CHUNK_BYTES)

    def map(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        return [fn(df, i, *args) for i, df in enumerate(self._chunks())]

    def fold(self, fn: Callable[..., Any], value: Any, *args: Any) -> Any:
        for df in self._chunks():
            value = fn(value, df, *args)
        return value


def _scan(
    df: pd.DataFrame, index: int, categorical: list[str], target: str, classify: bool
) -> tuple[int, dict[str, set], set]:
    df = df[df[target].notna()]
    cats = {c: set(df[c].dropna().unique().tolist()) for c in categorical if c in df.columns}
    classes = set(df[target].unique().tolist()) if classify else set()
    return len(df), cats, classes


def _sample(df: pd.DataFrame, index: int, target: str, share: float, seed: int) -> pd.DataFrame:
    import numpy as np

    df = df[df[target].notna()]
    if share >= 1:
        return df
    rng = np.random.default_rng([seed, index])
    return df[rng.random(len(df)) < share]


def _learn(
    model: Any, df: pd.DataFrame, pre: Any, features: list[str], target: str, classes: Any
) -> Any:
    df = df[df[target].notna()]
    if not len(df):
        return model
    X = pre.transform(df[features])
    if classes is not None:
        model.partial_fit(X, df[target].to_numpy(), classes=classes)
    else:
        model.partial_fit(X, df[target].to_numpy())
    return model


def _sortable(values: set) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def fit_incremental(
    source: ChunkSource,
    pipe: Any,
    numeric: list[str],
    categorical: list[str],
    target: str,
    task: str,
    spec: IncrementalSpec,
    seed: int = 0,
) -> tuple[Any, dict[str, Any], dict[str, list]]:
    """Fit `pipe` (preprocess + an estimator with `partial_fit`) over `source`'s chunks.

    Returns the fitted pipeline, a record (rows, chunks, epochs, sample rows, classes) and every
    category of each categorical feature."""
    import numpy as np
    import pandas as pd

    model = pipe.named_steps["model"]
    if not hasattr(model, "partial_fit"):
        raise UsageError(
            f"{type(model).__name__} cannot learn incrementally (no partial_fit)",
            "Use an estimator with partial_fit (SGDClassifier, SGDRegressor, Perceptron, "
            "MultinomialNB, PassiveAggressiveClassifier, MLPClassifier) or remove "
            "`incremental:` from the train stage.",
        )
    classify = task == "classification"
    scans = source.map(_scan, categorical, target, classify)
    rows = sum(s[0] for s in scans)
    if not rows:
        raise UsageError("no training rows with a target value")
    categories: dict[str, set[Any]] = {c: set() for c in categorical}
    classes: set = set()
    for _, cats, cls in scans:
        for c, values in cats.items():
            categories[c] |= values
        classes |= cls
    share = min(1.0, spec.sample_rows / rows)
    sample = pd.concat(source.map(_sample, target, share, seed), ignore_index=True)
    features = numeric + categorical
    pre = pipe.named_steps["preprocess"]
    if categorical:
        pre.set_params(
            categorical__onehot__categories=[_sortable(categories[c]) for c in categorical]
        )
    pre.fit(sample[features], sample[target])
    class_array = np.asarray(_sortable(classes)) if classify else None
    for _ in range(spec.epochs):
        model = source.fold(_learn, model, pre, features, target, class_array)
    pipe.steps[-1] = ("model", model)
    record = {
        "rows": rows,
        "chunks": len(scans),
        "epochs": spec.epochs,
        "sample_rows": len(sample),
        "classes": len(classes) if classify else None,
    }
    return pipe, record, {c: _sortable(v) for c, v in categories.items()}


def task_from_profile(column: dict[str, Any], declared: str) -> str:
    """`mlops.config.task.infer_task` from the target's profile instead of its values."""
    from mlops.config.task import MAX_CLASSES_FOR_INT

    if declared != "auto":
        return declared
    if column.get("dtype") == "float64":
        return "regression"
    if column.get("dtype") == "int64" and column.get("distinct", 0) > MAX_CLASSES_FOR_INT:
        return "regression"
    return "classification"


def _chunk_roles(df: pd.DataFrame, index: int, target: str) -> dict[str, Any] | None:
    """`mlops.data.roles.infer_roles` of one chunk; None (no say) for a chunk too small to judge."""
    from mlops.data.roles import MIN_ROWS, infer_roles

    df = df[df[target].notna()] if target in df.columns else df
    if len(df) < MIN_ROWS:
        return None
    return infer_roles(df, target=target)


def roles_over_chunks(source: ChunkSource, profile: dict[str, Any], target: str) -> dict[str, Any]:
    """Identifier and time columns of the whole data, judged chunk by chunk (one pass).

    A column is flagged when every chunk large enough to judge flags it (with the first such
    chunk's reason), as `train`'s in-memory path flags it on the whole frame; a column flagged
    for being unique must moreover be unique over the whole data where the streamed profile
    counts exactly (a per-chunk row number repeats from chunk to chunk: no identifier)."""
    verdicts = [v for v in source.map(_chunk_roles, target) if v is not None]
    if not verdicts:
        return {}
    columns = profile.get("columns", {})
    roles = {}
    for name, role in verdicts[0].items():
        if not all(name in v and v[name].role == role.role for v in verdicts[1:]):
            continue
        p = columns.get(name, {})
        exact = not p.get("distinct_is_lower_bound")
        present = p.get("count", 0) - p.get("missing", 0)
        by_uniqueness = role.role == "identifier" or "unique" in role.reason
        if by_uniqueness and exact and p.get("distinct", present) < present:
            continue
        roles[name] = role
    return roles


def schema_from_profile(
    profile: dict[str, Any],
    numeric: list[str],
    categorical: list[str],
    categories: dict[str, list] | None = None,
    contract: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The input schema (`schema.json`) from a profile, as `train.input_schema` makes it from
    a frame: each feature's dtype, range and vocabulary (every feature nullable).

    With a data contract, a number's accepted range is the contract's (`in_range`; none if it
    gives none) and the profile's range is kept as `train_min`/`train_max`; without one, the
    profile's range (`range_source` says which)."""
    from mlops.stages.train import _contract_ranges

    ranges = _contract_ranges(contract)
    features = []
    for col in numeric + categorical:
        p = profile["columns"].get(col, {})
        f: dict[str, Any] = {
            "name": col,
            "dtype": p.get("dtype", "float64" if col in numeric else "str"),
            "nullable": True,  # as train.input_schema: the pipeline imputes every feature
        }
        if col in numeric and p.get("min") is not None:
            lo, hi = float(p["min"]), float(p["max"])
            if contract is None:
                f["min"], f["max"] = lo, hi
                f["range_source"] = "training data"
            else:
                if col in ranges:
                    f["min"], f["max"] = ranges[col]
                f["train_min"], f["train_max"] = lo, hi
                f["range_source"] = "data contract"
        elif col in categorical:
            values = (categories or {}).get(col)
            if values is None:
                values = list(p.get("top", {}))
            f["categories"] = sorted(str(v) for v in values)
        features.append(f)
    return {"features": features}
