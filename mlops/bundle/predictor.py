"""Predicting from validated columns: the fitted Pipeline compiled to NumPy, checked at load.

scikit-learn's `Pipeline.predict(DataFrame)` spends most of a one-row prediction on pandas and
input validation, not on arithmetic. `compile_pipeline` reads the fitted attributes of the
preprocessing (imputer statistics, scaler mean and scale, one-hot categories) and of linear
estimators (coefficients, intercept) and replays the same floating-point operations on NumPy
arrays. `Predictor.load` then predicts a set of sample rows drawn from the input schema both ways
and uses the compiled form only if it gives exactly the Pipeline's transformed features and
predicted labels (probabilities within 1e-9); otherwise it falls back to the estimator on the
compiled features, or to the whole Pipeline on a DataFrame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from mlops.bundle.inputs import InputSpec

PROBA_TOLERANCE = 1e-9


class NotCompilable(Exception):
    """A step of the pipeline has no NumPy replay here; the generic path is used instead."""


# ---- preprocessing blocks ------------------------------------------------------------------


@dataclass
class NumericBlock:
    """Numeric columns through imputers and scalers, in the fitted order."""

    columns: list[str]
    steps: list[tuple[str, Any, Any]] = field(default_factory=list)  # (op, a, b)

    def transform(self, cols: dict[str, list], n: int) -> np.ndarray:
        """This block's output columns for `n` rows."""
        import numpy as np

        if len(self.columns) == 1:
            X = np.array(cols[self.columns[0]], dtype=np.float64).reshape(n, 1)
        else:
            X = np.array([cols[c] for c in self.columns], dtype=np.float64).T.copy()
        for op, a, b in self.steps:
            if op == "impute":
                mask = np.isnan(X)
                if mask.any():
                    X[mask] = np.broadcast_to(a, X.shape)[mask]
            elif op == "center":
                X -= a
            elif op == "scale":
                X /= a
            elif op == "minmax":
                X *= a
                X += b
            elif op == "clip":
                np.clip(X, a, b, out=X)
        return X


@dataclass
class CategoricalBlock:
    """String/bool columns through an imputer (optional) and a one-hot encoder."""

    columns: list[str]
    fill: list[Any] | None  # per column: the value a missing one is replaced with
    lookups: list[dict[Any, int]]  # per column: category -> output index
    width: int
    unknown_ok: bool

    def transform(self, cols: dict[str, list], n: int) -> np.ndarray:
        """This block's output columns for `n` rows."""
        import numpy as np

        out = np.zeros((n, self.width), dtype=np.float64)
        for j, name in enumerate(self.columns):
            lookup = self.lookups[j]
            fill = self.fill[j] if self.fill is not None else None
            for i, v in enumerate(cols[name]):
                if v is None or (type(v) is float and math.isnan(v)):
                    v = fill
                k = lookup.get(v)
                if k is not None:
                    out[i, k] = 1.0
                elif not self.unknown_ok:
                    raise NotCompilable(f"unknown category {v!r} for {name}")
        return out


# ---- estimator heads ---------------------------------------------------------------------


@dataclass
class LinearHead:
    """X @ coef.T + intercept, then the estimator's own link (sigmoid, softmax or none)."""

    coef_t: np.ndarray
    intercept: np.ndarray
    kind: str  # "binary", "multinomial" or "regression"
    classes: np.ndarray | None

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(labels or values, probabilities or None) for the feature matrix."""
        import numpy as np

        scores = X @ self.coef_t + self.intercept
        if self.kind == "regression":
            return scores.reshape(-1) if scores.ndim > 1 and scores.shape[1] == 1 else scores, None
        if self.kind == "binary":
            from scipy.special import expit

            s = scores.reshape(-1)
            labels = self.classes[(s > 0).astype(np.intp)]
            p = expit(s)
            return labels, np.stack([1 - p, p], axis=1)
        labels = self.classes[scores.argmax(axis=1)]
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return labels, scores


@dataclass
class EstimatorHead:
    """The fitted estimator itself, fed the compiled features as an ndarray."""

    estimator: Any
    proba: bool

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(labels or values, probabilities or None) for the feature matrix.

        A LightGBM or XGBoost classifier's `predict` is the arg-max of its `predict_proba`:
        one pass over the trees gives both (the self-check on sample rows confirms it). A
        request's rows are few: LightGBM predicts them on one thread (its OpenMP pool costs
        25 ms per call on a busy 2-core host against 0.4 ms single-threaded; concurrent
        requests are the parallelism)."""
        module = type(self.estimator).__module__
        kwargs = {"num_threads": 1} if module.startswith("lightgbm") and len(X) <= 1000 else {}
        if self.proba and module.startswith(("lightgbm", "xgboost", "mlops.bundle.labels")):
            import numpy as np

            proba = self.estimator.predict_proba(X, **kwargs)
            return np.asarray(self.estimator.classes_)[proba.argmax(axis=1)], proba
        if kwargs:
            return self.estimator.predict(X, **kwargs), None
        labels = self.estimator.predict(X)
        return labels, self.estimator.predict_proba(X) if self.proba else None


@dataclass
class Compiled:
    blocks: list[NumericBlock | CategoricalBlock]
    head: LinearHead | EstimatorHead

    def transform(self, cols: dict[str, list], n: int) -> np.ndarray:
        """The whole feature matrix, blocks side by side as the ColumnTransformer does."""
        import numpy as np

        parts = [b.transform(cols, n) for b in self.blocks]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def predict(self, cols: dict[str, list], n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Transform, then predict with the head."""
        return self.head.predict(self.transform(cols, n))


def _names(ct: Any, columns: Any) -> list[str]:
    names = list(getattr(ct, "feature_names_in_", []))
    if isinstance(columns, str):
        return [columns]
    out = []
    for c in list(columns):
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, int | bool) or hasattr(c, "__index__"):
            if isinstance(c, bool) or not names:
                raise NotCompilable("boolean masks or positions without feature names")
            out.append(str(names[int(c)]))
        else:
            raise NotCompilable(f"column selector {c!r}")
    return out


def _block(trans: Any, columns: list[str]) -> NumericBlock | CategoricalBlock:
    import numpy as np

    steps = list(trans.steps) if hasattr(trans, "steps") else [(None, trans)]
    steps = [(n, s) for n, s in steps if s not in (None, "passthrough")]
    encoder = steps[-1][1] if steps else None
    if type(encoder).__name__ == "OneHotEncoder":
        fill = None
        for _, s in steps[:-1]:
            if type(s).__name__ != "SimpleImputer" or fill is not None:
                raise NotCompilable(f"{type(s).__name__} before a OneHotEncoder")
            _imputer_ok(s)
            fill = [v.item() if hasattr(v, "item") else v for v in s.statistics_]
        if encoder.drop_idx_ is not None or getattr(encoder, "sparse_output", False):
            raise NotCompilable("OneHotEncoder with drop or sparse output")
        if getattr(encoder, "_infrequent_enabled", False):
            raise NotCompilable("OneHotEncoder with infrequent categories")
        if encoder.handle_unknown not in ("ignore", "infrequent_if_exist", "warn"):
            raise NotCompilable(f"OneHotEncoder(handle_unknown={encoder.handle_unknown!r})")
        lookups, offset = [], 0
        for cats in encoder.categories_:
            values = [c.item() if hasattr(c, "item") else c for c in cats]
            if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
                raise NotCompilable("a missing value is one of the one-hot categories")
            lookups.append({v: offset + k for k, v in enumerate(values)})
            offset += len(values)
        return CategoricalBlock(columns, fill, lookups, offset, unknown_ok=True)
    block = NumericBlock(columns)
    for _, s in steps:
        name = type(s).__name__
        if name == "SimpleImputer":
            _imputer_ok(s)
            stats = np.asarray(s.statistics_, dtype=np.float64)
            if np.isnan(stats).any():
                raise NotCompilable("an imputer with an all-missing column (dropped by sklearn)")
            block.steps.append(("impute", stats, None))
        elif name == "StandardScaler":
            if s.with_mean:
                block.steps.append(("center", np.asarray(s.mean_, dtype=np.float64), None))
            if s.with_std:
                block.steps.append(("scale", np.asarray(s.scale_, dtype=np.float64), None))
        elif name == "FunctionTransformer" and s.func is None:
            continue  # `"passthrough"` columns of a ColumnTransformer, once fitted: identity
        elif name == "MinMaxScaler":
            block.steps.append(("minmax", np.asarray(s.scale_), np.asarray(s.min_)))
            if s.clip:
                block.steps.append(("clip", *s.feature_range))
        else:
            raise NotCompilable(f"{name} is not replayed in NumPy")
    return block


def _imputer_ok(s: Any) -> None:
    import numpy as np

    mv = s.missing_values
    if s.add_indicator or not (mv is None or (isinstance(mv, float) and np.isnan(mv))):
        raise NotCompilable("SimpleImputer with add_indicator or non-NaN missing_values")


def _head(est: Any, proba: bool) -> LinearHead | EstimatorHead:
    import numpy as np

    module = type(est).__module__
    name = type(est).__name__
    if module.startswith("sklearn.linear_model") and hasattr(est, "coef_"):
        coef = np.asarray(est.coef_, dtype=np.float64)
        coef_t = coef.T if coef.ndim == 2 else coef
        intercept = np.asarray(est.intercept_, dtype=np.float64)
        if name == "LogisticRegression":
            classes = np.asarray(est.classes_)
            kind = "binary" if len(classes) <= 2 else "multinomial"
            return LinearHead(coef_t, intercept, kind, classes)
        if not hasattr(est, "classes_"):
            return LinearHead(coef_t, intercept, "regression", None)
    return EstimatorHead(est, proba)


def compile_pipeline(pipe: Any, proba: bool) -> Compiled:
    """The fitted `Pipeline([ColumnTransformer, estimator])` as NumPy operations."""
    steps = getattr(pipe, "steps", None)
    if not steps or len(steps) != 2:
        raise NotCompilable("not a two-step Pipeline (preprocessing, estimator)")
    ct, est = steps[0][1], steps[1][1]
    if type(ct).__name__ != "ColumnTransformer":
        raise NotCompilable("the first step is not a ColumnTransformer")
    if getattr(ct, "sparse_output_", False) or ct.transformer_weights:
        raise NotCompilable("sparse output or transformer weights")
    blocks = []
    for name, trans, columns in ct.transformers_:
        if trans == "drop":
            continue
        cols = _names(ct, columns)
        if not cols:
            continue
        if trans == "passthrough":
            if name == "remainder":
                raise NotCompilable("remainder='passthrough'")
            blocks.append(NumericBlock(cols))
            continue
        blocks.append(_block(trans, cols))
    if not blocks:
        raise NotCompilable("no columns are used")
    return Compiled(blocks, _head(est, proba))


# ---- the predictor the service uses --------------------------------------------------------


@dataclass
class Predictor:
    """Predicts labels (or values) and class probabilities from a validated `Batch`'s columns."""

    pipeline: Any
    features: list[str]
    classes: list[Any] | None  # None for a regressor
    compiled: Compiled | None
    mode: str  # "numpy", "numpy+estimator" or "pipeline"
    note: str = ""
    proba: bool = False  # whether class probabilities are given

    @classmethod
    def load(cls, pipeline: Any, spec: InputSpec, seed: int = 0) -> Predictor:
        """Compile `pipeline` and prove it equal to the Pipeline on sample rows, or fall back."""
        classes = _classes(pipeline)
        proba = classes is not None and hasattr(pipeline, "predict_proba")
        plain = cls(pipeline, spec.names, classes, None, "pipeline", proba=proba)
        try:
            compiled = compile_pipeline(pipeline, proba)
        except (NotCompilable, AttributeError, TypeError, ValueError) as exc:
            plain.note = f"not compiled: {exc}"
            return plain
        candidates = [compiled]
        if isinstance(compiled.head, LinearHead):
            candidates.append(Compiled(compiled.blocks, EstimatorHead(pipeline[-1], proba)))
        for cand in candidates:
            reason = verify(cand, pipeline, spec, seed)
            if not reason:
                mode = "numpy" if isinstance(cand.head, LinearHead) else "numpy+estimator"
                note = "checked on sample rows"
                return cls(pipeline, spec.names, classes, cand, mode, note, proba=proba)
            if "features" in reason:
                break  # another head cannot help
        plain.note = reason
        return plain

    def frame(self, cols: dict[str, list]) -> Any:
        """The columns as a DataFrame in the Pipeline's feature order."""
        import pandas as pd

        return pd.DataFrame({name: cols[name] for name in self.features})

    def _pipeline_outputs(self, cols: dict[str, list], n: int) -> tuple[Any, Any]:
        df = self.frame(cols)
        labels = self.pipeline.predict(df)
        return labels, self.pipeline.predict_proba(df) if self.proba else None

    def predict(self, cols: dict[str, list], n: int) -> tuple[list[Any], Any]:
        """(predictions as a list, probabilities as an (n, classes) array or None)."""
        if self.compiled is not None:
            labels, proba = self.compiled.predict(cols, n)
        else:
            labels, proba = self._pipeline_outputs(cols, n)
        return labels.tolist(), proba


def verify(compiled: Compiled, pipeline: Any, spec: InputSpec, seed: int = 0) -> str:
    """Why `compiled` differs from `pipeline` on sample rows of the schema ("" if it does not).

    The transformed features must be equal bit for bit and the labels (or values) exactly;
    class probabilities within `PROBA_TOLERANCE`.
    """
    cols, n = sample_columns(spec, seed)
    df = Predictor(pipeline, spec.names, None, None, "pipeline").frame(cols)
    proba = _classes(pipeline) is not None and hasattr(pipeline, "predict_proba")
    expected = (pipeline.predict(df), pipeline.predict_proba(df) if proba else None)
    try:
        X = compiled.transform(cols, n)
        if not _same_features(X, pipeline[:-1].transform(df)):
            return "the compiled features differ from the Pipeline's"
        if not _same_outputs(compiled.head.predict(X), expected):
            return "the compiled estimator's outputs differ from the Pipeline's"
    except (NotCompilable, ValueError, TypeError, IndexError) as exc:
        return f"the compiled form failed on sample rows: {exc}"
    return ""


def _classes(pipeline: Any) -> list[Any] | None:
    try:
        classes = pipeline.classes_
    except AttributeError:
        return None
    return [c.item() if hasattr(c, "item") else c for c in classes]


def _same_features(X: Any, expected: Any) -> bool:
    import numpy as np

    expected = np.asarray(expected, dtype=np.float64)
    return X.shape == expected.shape and bool(np.array_equal(X, expected, equal_nan=True))


def _same_outputs(got: tuple[Any, Any], expected: tuple[Any, Any]) -> bool:
    import numpy as np

    labels, proba = got
    exp_labels, exp_proba = expected
    if np.asarray(labels).dtype.kind == "f":
        if not np.allclose(labels, exp_labels, rtol=1e-12, atol=1e-12):
            return False
    elif list(np.asarray(labels).tolist()) != list(np.asarray(exp_labels).tolist()):
        return False
    if exp_proba is None:
        return proba is None
    return proba is not None and bool(
        np.allclose(proba, exp_proba, rtol=PROBA_TOLERANCE, atol=PROBA_TOLERANCE)
    )


def sample_columns(spec: InputSpec, seed: int = 0, n: int = 64) -> tuple[dict[str, list], int]:
    """Rows spanning the schema: ranges end to end, every category, and missing values."""
    import random

    rng = random.Random(seed)
    cols: dict[str, list] = {}
    for f in spec.features:
        if f.kind in ("float", "int"):
            lo = f.lo if math.isfinite(f.lo) else -1.0
            hi = f.hi if math.isfinite(f.hi) else 1.0
            values = [lo, hi, (lo + hi) / 2] + [rng.uniform(lo, hi) for _ in range(n - 3)]
            if f.kind == "int":
                values = [float(round(v)) for v in values]
            if f.nullable:
                values[3::7] = [math.nan] * len(values[3::7])
            rng.shuffle(values)
            cols[f.name] = values
        else:
            cats = sorted(f.categories, key=str) if f.categories else ["a", "b"]
            if f.kind == "bool" and not f.categories:
                cats = [False, True]
            values = [cats[i % len(cats)] for i in range(n)]
            if f.nullable:
                values[5::9] = [None] * len(values[5::9])
            rng.shuffle(values)
            cols[f.name] = values
    return cols, n
