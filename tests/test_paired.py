"""Champion against challenger on the same rows: the paired bootstrap against scikit-learn and
McNemar's reasoning (real penguins, real models)."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from sklearn import metrics as m
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mlops.config.models import GateSpec
from mlops.errors import MlopsError
from mlops.stages.evaluate import check_gates
from mlops.stages.paired import align_proba, pairable, paired_difference


@pytest.fixture(scope="module")
def predictions() -> tuple[pd.Series, np.ndarray, np.ndarray]:
    df = load_penguins().dropna()
    X, y = df[["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]], df.species
    train, test = df.index[::2], df.index[1::2]
    good = LogisticRegression(max_iter=2000).fit(X.loc[train], y.loc[train])
    weak = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X.loc[train], y.loc[train])
    return y.loc[test], good.predict(X.loc[test]), weak.predict(X.loc[test])


def test_figures_match_sklearn_on_the_same_rows(predictions):
    y, good, weak = predictions
    for metric, fn in [
        ("accuracy", m.accuracy_score),
        ("f1_macro", lambda a, b: m.f1_score(a, b, average="macro")),
    ]:
        p = paired_difference(metric, "classification", y, good, weak)
        assert p["challenger"] == pytest.approx(fn(y, good), abs=1e-6)
        assert p["baseline"] == pytest.approx(fn(y, weak), abs=1e-6)
        assert p["rows"] == len(y) and p["low"] <= p["difference"] <= p["high"]
    assert paired_difference("accuracy", "classification", y, good, weak) == paired_difference(
        "accuracy", "classification", y, good, weak
    )  # seeded


def test_the_same_model_has_a_zero_interval_and_a_much_weaker_one_fails(predictions):
    y, good, weak = predictions
    same = paired_difference("accuracy", "classification", y, good, good)
    assert same["low"] == same["high"] == same["difference"] == 0.0
    worse = paired_difference("accuracy", "classification", y, weak, good)
    assert worse["high"] < -0.05  # the weak challenger is worse beyond doubt
    gate = {"accuracy": GateSpec(not_worse_than="main", tolerance=0.01)}
    entry = {"name": "main", "commit": "abc", "metrics": {"accuracy": 0.5}}
    ok = check_gates(
        gate, {"accuracy": same["challenger"]}, {"main": {**entry, "paired": {"accuracy": same}}}
    )[0]
    assert (
        ok["passed"] and "paired on the same" in ok["note"] and ok["baseline"] == same["baseline"]
    )
    bad = check_gates(
        gate, {"accuracy": worse["challenger"]}, {"main": {**entry, "paired": {"accuracy": worse}}}
    )[0]
    assert not bad["passed"] and bad["paired"]["high"] < -0.01


def test_noise_alone_does_not_fail_the_gate():
    """Two models that disagree on a few rows at random: the interval covers 0, the gate passes,
    though the point difference is negative."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 60)
    base = np.where(rng.random(60) < 0.9, y, (y + 1) % 3)
    new = base.copy()
    flip = rng.choice(60, 4, replace=False)
    new[flip[:3]] = (y[flip[:3]] + 1) % 3  # three rows worse
    new[flip[3]] = y[flip[3]]  # one row better
    p = paired_difference("accuracy", "classification", y, new, base)
    assert p["difference"] < 0 <= p["high"]
    gate = {"accuracy": GateSpec(not_worse_than="main")}
    entry = {
        "name": "main",
        "commit": "abc",
        "metrics": {"accuracy": 0.99},
        "paired": {"accuracy": p},
    }
    assert check_gates(gate, {"accuracy": p["challenger"]}, {"main": entry})[0]["passed"]


@pytest.fixture(scope="module")
def probabilities() -> dict:
    """Real models' class probabilities on the same held-out penguins."""
    df = load_penguins().dropna()
    X, y = df[["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]], df.species
    train, test = df.index[::2], df.index[1::2]
    good = LogisticRegression(max_iter=2000).fit(X.loc[train], y.loc[train])
    weak = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X.loc[train], y.loc[train])
    classes = list(good.classes_)
    return {
        "y": y.loc[test],
        "classes": classes,
        "good": good.predict_proba(X.loc[test]),
        "weak": weak.predict_proba(X.loc[test]),
    }


def test_probability_metrics_are_paired_on_the_same_rows_and_match_sklearn(probabilities):
    y, classes = probabilities["y"], probabilities["classes"]
    good, weak = probabilities["good"], probabilities["weak"]
    assert pairable("roc_auc", "classification", probabilities=True)
    assert not pairable("roc_auc", "classification")  # the label-only path does not know it
    auc = paired_difference("roc_auc", "classification", y, good, weak, classes=classes)
    assert auc["challenger"] == pytest.approx(
        m.roc_auc_score(y, good, multi_class="ovr", average="macro", labels=classes), abs=1e-6
    )
    assert auc["baseline"] == pytest.approx(
        m.roc_auc_score(y, weak, multi_class="ovr", average="macro", labels=classes), abs=1e-6
    )
    assert auc["low"] <= auc["difference"] <= auc["high"] and auc["rows"] == len(y)
    loss = paired_difference("log_loss", "classification", y, good, weak, classes=classes)
    assert loss["challenger"] == pytest.approx(m.log_loss(y, good, labels=classes), abs=1e-6)
    assert loss["baseline"] == pytest.approx(m.log_loss(y, weak, labels=classes), abs=1e-6)
    # lower is better: the better (lower-loss) challenger has a positive difference
    assert loss["difference"] > 0 and loss["low"] > 0
    again = paired_difference("log_loss", "classification", y, good, weak, classes=classes)
    assert again == loss  # seeded
    same = paired_difference("roc_auc", "classification", y, good, good, classes=classes)
    assert same["low"] == same["high"] == same["difference"] == 0.0
    # two classes: the second class's probability, as roc_auc_score(y, proba[:, 1])
    yb = (y == "Gentoo").to_numpy()
    pb = np.column_stack([1 - good[:, 2], good[:, 2]])
    wb = np.column_stack([1 - weak[:, 2], weak[:, 2]])
    binary = paired_difference("roc_auc", "classification", yb, pb, wb, classes=[False, True])
    assert binary["challenger"] == pytest.approx(m.roc_auc_score(yb, pb[:, 1]), abs=1e-6)
    assert binary["baseline"] == pytest.approx(m.roc_auc_score(yb, wb[:, 1]), abs=1e-6)


def test_a_weaker_challenger_fails_a_probability_gate_and_noise_does_not(probabilities):
    y, classes = probabilities["y"], probabilities["classes"]
    good, weak = probabilities["good"], probabilities["weak"]
    worse = paired_difference("log_loss", "classification", y, weak, good, classes=classes)
    gate = {"log_loss": GateSpec(not_worse_than="main", tolerance=0.01)}
    entry = {"name": "main", "commit": "abc", "metrics": {"log_loss": 0.1}}
    row = check_gates(
        gate, {"log_loss": worse["challenger"]}, {"main": {**entry, "paired": {"log_loss": worse}}}
    )[0]
    assert not row["passed"] and "paired on the same" in row["note"]
    assert "lower is better" in row["note"]
    # a challenger whose probabilities differ from the champion's by a little noise only
    rng = np.random.default_rng(3)
    noisy = good * np.exp(rng.normal(0, 0.05, good.shape))
    noisy /= noisy.sum(axis=1, keepdims=True)
    near = paired_difference("roc_auc", "classification", y, noisy, good, classes=classes)
    gate = {"roc_auc": GateSpec(not_worse_than="main", tolerance=0.01)}
    entry = {"name": "main", "commit": "abc", "metrics": {"roc_auc": 0.99}}
    row = check_gates(
        gate, {"roc_auc": near["challenger"]}, {"main": {**entry, "paired": {"roc_auc": near}}}
    )[0]
    assert row["passed"] and near["low"] <= 0 <= near["high"] + 1e-12


def test_baseline_probabilities_are_aligned_to_the_challenger_classes(probabilities):
    y, classes = probabilities["y"], probabilities["classes"]
    good = probabilities["good"]
    reordered = good[:, ::-1]  # a baseline whose columns come in another order
    aligned = align_proba(reordered, classes[::-1], classes)
    np.testing.assert_array_equal(aligned, good)
    # a baseline that never learnt Chinstrap gives it probability 0: its log loss is huge
    two = align_proba(good[:, [0, 2]], [classes[0], classes[2]], classes)
    assert (two[:, 1] == 0).all()
    p = paired_difference("log_loss", "classification", y, good, two, classes=classes)
    assert p["difference"] > 1 and p["low"] > 0
    with pytest.raises(MlopsError, match="neither model"):
        paired_difference("roc_auc", "classification", y, good, good, classes=classes[:2])


def test_regression_lower_is_better_is_signed_so_positive_means_better():
    rng = np.random.default_rng(1)
    y = rng.normal(size=200)
    good, bad = y + rng.normal(0, 0.1, 200), y + rng.normal(0, 1.0, 200)
    p = paired_difference("rmse", "regression", y, good, bad)
    assert p["challenger"] == pytest.approx(m.mean_squared_error(y, good) ** 0.5, abs=1e-6)
    assert p["difference"] > 0 and p["low"] > 0


def test_gate_wording_says_over_by_for_max_and_short_by_for_min():
    from mlops.pipeline.outcome import GateResult, gate_line

    gates = {"rmse": GateSpec(max=50.0), "accuracy": GateSpec(min=0.9)}
    rows = check_gates(gates, {"rmse": 97.08, "accuracy": 0.85})
    lines = [gate_line(GateResult(stage="evaluate", **r)) for r in rows]
    assert "over by 47.08" in lines[0] and "short" not in lines[0]
    assert "short by 0.05" in lines[1]


def test_baseline_entry_does_not_change_when_the_stage_tag_moves(project):
    """A new stage tag for the same production version leaves reports/baseline.json as it was
    (the entry names the registration tag), so DVC does not rerun evaluate for nothing."""
    from mlops.config.check import load_project
    from mlops.pipeline.baseline import resolve_baseline
    from tests.registry_helpers import NAME, at, register_by_hand

    commit = register_by_hand(project, "v1.0.0")

    def assign(counter: int, seconds: int) -> dict:
        tag = f"{NAME}#production#{counter}"
        env = {**os.environ, **at(seconds)}
        subprocess.run(["git", "tag", "-a", tag, commit, "-m", "assign"], cwd=project, env=env)
        return resolve_baseline(load_project(project), "production", "reports/metrics.json")

    first = assign(1, 10)
    second = assign(2, 20)  # the same version assigned again: a new tag name
    assert first == second and first["ref"] == f"{NAME}@v1.0.0" and first["commit"] == commit
