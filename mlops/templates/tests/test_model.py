"""Tests of this project's features and model, run by the CI `test` job (`python -m pytest`).

Scaffolded by `mlops init`; grow it with your code. `mlops.testing` builds what the train stage
builds from pipeline.yaml and params.yaml: sample rows of the data, the transformers listed under
`train.features`, and the whole training pipeline, without running DVC.
"""

from pathlib import Path

import numpy as np
import pytest

from mlops.testing import feature_steps, sample_rows, target, training_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rows():
    return sample_rows(ROOT, n=60)


def test_each_feature_transformer_keeps_the_rows_and_survives_missing_values(rows):
    X, y = rows.drop(columns=[target(ROOT)]), rows[target(ROOT)]
    for name, step in feature_steps(ROOT):
        out = step.fit(X, y).transform(X)
        assert len(out) == len(X), f"{name} changed the number of rows"
        holes = X.copy()
        holes.iloc[0] = np.nan  # a row with every value missing, as serving may receive
        assert len(step.transform(holes)) == len(X), f"{name} fails on missing values"
        X = out
    assert len(X) == len(rows)


def test_the_model_trains_on_a_few_rows_and_predicts_one_per_row(rows):
    pipe, X, y = training_pipeline(ROOT, rows)
    pipe.fit(X, y)
    predictions = pipe.predict(X.head(5))
    assert predictions.shape == (5,)
    assert set(predictions) <= set(y) or np.issubdtype(predictions.dtype, np.number)
