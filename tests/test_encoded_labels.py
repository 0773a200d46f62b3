"""XGBoost's classifier with string labels (issue 19): `EncodedLabels` trains it on the codes
and answers with the labels; the saved model passes the allow-list and loads back equal; a
`tune:` space names XGBoost's own parameters; labels unseen at training are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlops.bundle.labels import EncodedLabels
from mlops.config.models import TuneParams
from mlops.stages.train import build_pipeline, feature_columns
from mlops.stages.tuning import tune_pipeline
from tests.serve_helpers import penguins


def _pipe(n_estimators: int = 5):
    from xgboost import XGBClassifier

    df = penguins()
    numeric, categorical = feature_columns(df, "species", ["year"])
    pipe = build_pipeline(
        numeric, categorical, EncodedLabels(XGBClassifier(n_estimators=n_estimators))
    )
    return pipe, df[numeric + categorical], df["species"]


def test_labels_in_and_out_and_a_round_trip_through_the_allow_list(tmp_path: Path):
    import skops.io as sio

    from mlops.bundle.trust import audit

    pipe, X, y = _pipe()
    pipe.fit(X, y)
    assert list(pipe.classes_) == ["Adelie", "Chinstrap", "Gentoo"]
    predicted = pipe.predict(X)
    assert set(predicted) <= set(pipe.classes_) and (predicted == y).mean() > 0.9
    assert np.array_equal(predicted, pipe.classes_[pipe.predict_proba(X).argmax(axis=1)])
    path = tmp_path / "model.skops"
    path.write_bytes(sio.dumps(pipe))
    refused, names = audit(path)
    assert refused == [] and "mlops.bundle.labels.EncodedLabels" in names
    loaded = sio.load(path, trusted=names)
    assert np.array_equal(loaded.predict(X), predicted)
    with pytest.raises(ValueError, match="outside the training labels"):
        pipe.steps[-1][1]._codes(["Emperor"])


def test_a_tuning_space_names_xgboosts_own_parameters():
    pipe, X, y = _pipe()
    tune = TuneParams(method="grid", cv=2, space={"n_estimators": [2, 4]})
    best, record = tune_pipeline(tune, pipe, X, y, "classification")
    assert set(record["best_params"]) == {"n_estimators"}
    assert best.steps[-1][1].estimator_.n_estimators == record["best_params"]["n_estimators"]


def test_an_allow_listed_wrapper_does_not_carry_an_untrusted_estimator_in(tmp_path: Path):
    """A hostile model file: the allow-listed `EncodedLabels` holding a function that runs a
    command. The audit reads every type inside the wrapper: refused with exit 6, and no
    object of the file is built."""
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from mlops.bundle.core import BundleError, check_model_file
    from mlops.errors import ExitCode

    hostile = EncodedLabels(FunctionTransformer(func=os.system))
    hostile.classes_ = np.array(["a", "b"])
    hostile.estimator_ = FunctionTransformer(func=os.system)
    path = tmp_path / "model.skops"
    path.write_bytes(sio.dumps(hostile))
    with pytest.raises(BundleError) as info:
        check_model_file(path)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED
    assert "system" in info.value.message and "EncodedLabels" not in info.value.message
