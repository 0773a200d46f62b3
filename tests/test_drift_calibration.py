"""The drift alarms keep their false-alarm rate: seeded samples of real penguins, the whole
family that `mlops monitor` tests (features, predicted class, top-class probability), the
Monte-Carlo error of the estimate accounted for by an exact binomial bound."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from scipy.stats import binom
from sklearn.linear_model import LogisticRegression

from mlops.config.models import DriftSpec
from mlops.data.drift import compare, correct
from mlops.data.profile import profile_frame
from mlops.stages.train import build_pipeline

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
FEATURES = [*NUMERIC, "island", "sex"]
ALPHA = 0.05


@pytest.fixture(scope="module")
def setup() -> tuple[pd.DataFrame, pd.DataFrame, object]:
    df = load_penguins().dropna(subset=["species"]).sample(frac=1.0, random_state=0)
    train, held = df.iloc[:200], df.iloc[200:]
    model = build_pipeline(NUMERIC, ["island", "sex"], LogisticRegression(max_iter=2000))
    model.fit(train[FEATURES], train.species)
    return train, held, model


def draw(rows: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Smoothed bootstrap: rows resampled, numbers jittered by a quarter std, rounded."""
    out = rows.iloc[rng.integers(0, len(rows), n)][FEATURES].reset_index(drop=True)
    for col in NUMERIC:
        noise = rng.normal(0, 0.25 * rows[col].std(), n)
        out[col] = np.round(out[col] + noise, 1)
    return out


def preds(model, X: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {"prediction": model.predict(X), "confidence": model.predict_proba(X).max(axis=1)}
    )


def breach(model, ref: pd.DataFrame, evaluation: pd.DataFrame, live: pd.DataFrame, spec) -> bool:
    """Monitor's drift verdict: dataset drift or prediction drift, one family."""
    inputs = compare(live, profile_frame(ref), spec, family=2, defer_correction=True)
    pred = compare(
        preds(model, live),
        profile_frame(preds(model, evaluation)),
        spec,
        family=len(FEATURES),
        defer_correction=True,
    )
    correct([inputs, pred], spec.correction, spec.alpha)
    return inputs.dataset_drift or "prediction" in pred.drifted or bool(inputs.drifted)


def not_above(alarms: int, trials: int, level: float) -> bool:
    """The count is compatible with a rate <= level (one-sided exact test at 0.1%)."""
    return binom.sf(alarms - 1, trials, level) > 0.001


@pytest.mark.parametrize(
    ("method", "trials", "n"),
    [("auto", 200, 300), ("auto", 100, 1000), ("wasserstein", 60, 300), ("jensenshannon", 60, 300)],
)
def test_false_alarm_rate_of_the_family_is_at_most_alpha(setup, method, trials, n):
    """Reference, evaluation and live traffic all drawn from the held-out rows: any column of
    the family flagged counts as a false alarm (stricter than a breach)."""
    train, held, model = setup
    rng = np.random.default_rng([16, n, len(method)])
    spec = DriftSpec(method=method)
    alarms = sum(
        breach(model, draw(held, len(train), rng), draw(held, 90, rng), draw(held, n, rng), spec)
        for _ in range(trials)
    )
    assert not_above(alarms, trials, ALPHA), f"{alarms} false alarms in {trials}"


def test_uncorrected_per_column_tests_raise_more_false_alarms(setup):
    train, held, model = setup
    rng = np.random.default_rng(5)
    spec = DriftSpec(correction="none")
    alarms = sum(
        breach(model, draw(held, len(train), rng), draw(held, 90, rng), draw(held, 300, rng), spec)
        for _ in range(100)
    )
    assert alarms / 100 > ALPHA  # 8 tests each at 5%: the family's rate is well above 5%


@pytest.mark.parametrize("method", ["auto", "wasserstein", "jensenshannon"])
def test_power_on_a_clear_shift_is_high(setup, method):
    """Traffic from Biscoe island only (real penguins: bigger birds, one island)."""
    train, held, model = setup
    df = load_penguins().dropna(subset=["species"])
    biscoe = df[df.island == "Biscoe"]
    rng = np.random.default_rng(9)
    spec = DriftSpec(method=method)
    hits = sum(
        breach(
            model, draw(held, len(train), rng), draw(held, 90, rng), draw(biscoe, 100, rng), spec
        )
        for _ in range(30)
    )
    assert hits >= 27
