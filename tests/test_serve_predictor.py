"""The compiled prediction path gives exactly the Pipeline's output, or is not used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.bundle.inputs import InputSpec
from mlops.bundle.predictor import Predictor, compile_pipeline, sample_columns, verify
from mlops.stages.train import build_pipeline, input_schema
from tests.serve_helpers import penguins

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return penguins()


def fit(data: pd.DataFrame, estimator, target: str = "species", pre=None):
    numeric = [c for c in NUMERIC if c != target]
    pipe = pre if pre is not None else build_pipeline(numeric, CATEGORICAL, estimator)
    X = data[numeric + CATEGORICAL]
    pipe.fit(X, data[target])
    return pipe, InputSpec.from_schema(input_schema(data, numeric, CATEGORICAL)), X


def columns_of(X: pd.DataFrame) -> dict[str, list]:
    out = {}
    for c in X.columns:
        values = X[c].tolist()
        if c in NUMERIC:
            out[c] = [float(v) for v in values]
        else:
            out[c] = [None if (v is None or v != v) else v for v in values]
    return out


def assert_same(pred: Predictor, pipe, X: pd.DataFrame):
    """Real rows (with their missing values): the predictor equals the Pipeline."""
    labels, proba = pred.predict(columns_of(X), len(X))
    expected = pipe.predict(X)
    if np.asarray(expected).dtype.kind == "f":
        np.testing.assert_allclose(labels, expected, rtol=1e-12, atol=1e-12)
    else:
        assert labels == expected.tolist()
    if proba is not None:
        np.testing.assert_allclose(proba, pipe.predict_proba(X), rtol=1e-9, atol=1e-9)


def test_example_pipeline_is_compiled_to_numpy_and_matches(data):
    from sklearn.linear_model import LogisticRegression

    pipe, spec, X = fit(data, LogisticRegression(max_iter=1000))
    pred = Predictor.load(pipe, spec)
    assert pred.mode == "numpy", pred.note
    assert pred.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert X.isna().any().any()  # the real rows include missing values
    assert_same(pred, pipe, X)
    one = X.iloc[[5]]
    assert_same(pred, pipe, one)


def test_binary_logistic_regression(data):
    from sklearn.linear_model import LogisticRegression

    two = data[data.species != "Chinstrap"]
    pipe, spec, X = fit(two, LogisticRegression(max_iter=1000))
    pred = Predictor.load(pipe, spec)
    assert pred.mode == "numpy", pred.note
    assert_same(pred, pipe, X)


def test_linear_regression_is_compiled(data):
    from sklearn.linear_model import Ridge

    known = data[data.body_mass_g.notna()]
    pipe, spec, X = fit(known, Ridge(alpha=0.5), target="body_mass_g")
    pred = Predictor.load(pipe, spec)
    assert pred.mode == "numpy" and pred.classes is None
    assert_same(pred, pipe, X)


def test_other_estimators_get_the_compiled_features(data):
    from sklearn.ensemble import RandomForestClassifier

    pipe, spec, X = fit(data, RandomForestClassifier(n_estimators=5, random_state=0))
    pred = Predictor.load(pipe, spec)
    assert pred.mode == "numpy+estimator", pred.note
    assert_same(pred, pipe, X)


def test_minmax_scaler_is_replayed(data):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

    pre = ColumnTransformer(
        [
            ("n", Pipeline([("i", SimpleImputer()), ("s", MinMaxScaler(clip=True))]), NUMERIC),
            ("c", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["island"]),
        ]
    )
    pipe = Pipeline([("pre", pre), ("m", LogisticRegression(max_iter=1000))])
    pipe, spec, X = fit(data, None, pre=pipe)
    pred = Predictor.load(pipe, spec)
    assert pred.mode == "numpy", pred.note
    assert_same(pred, pipe, X)


def test_an_unsupported_step_falls_back_to_the_pipeline(data):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures

    pre = ColumnTransformer(
        [
            ("n", Pipeline([("i", SimpleImputer()), ("p", PolynomialFeatures(2))]), NUMERIC),
            ("c", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
        ]
    )
    pipe = Pipeline([("pre", pre), ("m", LogisticRegression(max_iter=3000))])
    pipe, spec, X = fit(data, None, pre=pipe)
    pred = Predictor.load(pipe, spec)
    assert pred.mode == "pipeline" and "PolynomialFeatures" in pred.note
    assert_same(pred, pipe, X)


def test_the_load_time_check_catches_a_compiled_form_that_disagrees(data):
    from sklearn.linear_model import LogisticRegression

    pipe, spec, _ = fit(data, LogisticRegression(max_iter=1000))
    compiled = compile_pipeline(pipe, proba=True)
    assert verify(compiled, pipe, spec) == ""
    op, stats, _ = compiled.blocks[0].steps[0]
    compiled.blocks[0].steps[0] = (op, stats + 1.0, None)  # a wrong imputation value
    assert "features differ" in verify(compiled, pipe, spec)
    compiled = compile_pipeline(pipe, proba=True)
    compiled.head.intercept = compiled.head.intercept + np.array([0.5, 0, 0])  # wrong
    assert "outputs differ" in verify(compiled, pipe, spec)


def test_sample_rows_cover_the_schema(data):
    spec = InputSpec.from_schema(input_schema(data, NUMERIC, CATEGORICAL))
    cols, n = sample_columns(spec)
    assert n == 64
    # every feature is nullable: the trained pipeline imputes missing values
    assert set(cols["island"]) == {"Biscoe", "Dream", "Torgersen", None}
    assert None in cols["sex"]
    assert min(cols["bill_length_mm"]) == spec.features[0].lo
    assert max(cols["bill_length_mm"]) == spec.features[0].hi


def test_a_classifier_without_probabilities(data):
    from sklearn.linear_model import RidgeClassifier

    pipe, spec, X = fit(data, RidgeClassifier())
    pred = Predictor.load(pipe, spec)
    assert pred.mode == "numpy+estimator", pred.note
    assert pred.classes == ["Adelie", "Chinstrap", "Gentoo"] and not pred.proba
    labels, proba = pred.predict(columns_of(X), len(X))
    assert proba is None and labels == pipe.predict(X).tolist()
