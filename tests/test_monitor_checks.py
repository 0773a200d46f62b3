"""The monitoring checks on logs written by the real service, and their statistics."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from mlops import stats
from mlops.config.durations import parse_duration
from mlops.config.models import MonitoringSpec
from mlops.monitor import render
from mlops.monitor.checks import LiveModel, analyse
from mlops.monitor.logdata import read_columns
from mlops.monitor.window import Window, buckets
from tests.monitor_helpers import group, serve_rows
from tests.serve_helpers import penguins

SPEC = MonitoringSpec.model_validate(
    {"performance": {"metric": "accuracy", "min": 0.85, "min_labels": 30}}
)


@pytest.fixture(scope="module")
def live(bundle: Path) -> LiveModel:
    return LiveModel.read(bundle, "v2")


def _report(log: Path, live: LiveModel, spec: MonitoringSpec = SPEC, **kw):
    window = kw.pop("window", Window(None, time.time() + 1, "whole log"))
    return analyse(read_columns(log), live, spec, window, env="staging", **kw)


# ---- statistics ------------------------------------------------------------------------------


def test_wilson_interval_and_z():
    lo, hi = stats.wilson(90, 100, 0.95)
    assert (round(lo, 4), round(hi, 4)) == (0.8256, 0.9448)  # the textbook figures
    assert stats.wilson(0, 0, 0.95) == (0.0, 1.0)
    assert round(stats.z_value(0.95), 3) == 1.96


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_confusion_metrics_are_scikit_learns():
    from sklearn import metrics as m

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 500)
    p = np.where(rng.random(500) < 0.7, y, rng.integers(0, 5, 500))  # class 4: predicted only
    cm = stats.confusion(y, p, 5)
    expect = {
        "accuracy": m.accuracy_score(y, p),
        "balanced_accuracy": m.balanced_accuracy_score(y, p),
        "f1_macro": m.f1_score(y, p, average="macro", zero_division=0),
        "precision_macro": m.precision_score(y, p, average="macro", zero_division=0),
        "recall_macro": m.recall_score(y, p, average="macro", zero_division=0),
    }
    for name, value in expect.items():
        assert stats.cm_metric(cm, name)[0] == pytest.approx(value), name


def test_intervals_hold_the_value_and_narrow_with_more_labels():
    rng = np.random.default_rng(5)
    widths = []
    for n in (100, 2000):
        y = rng.integers(0, 3, n)
        p = np.where(rng.random(n) < 0.8, y, (y + 1) % 3)
        est = stats.classification_estimate(y, p, 3, "f1_macro", 0.95)
        assert est.low <= est.value <= est.high and est.labelled == n
        widths.append(est.high - est.low)
    assert widths[1] < widths[0] / 2
    y = rng.normal(size=400)
    pred = y + rng.normal(scale=0.5, size=400)
    from sklearn import metrics as m

    rmse = stats.regression_estimate(y, pred, "rmse", 0.95)
    assert rmse.value == pytest.approx(m.mean_squared_error(y, pred) ** 0.5)
    assert rmse.low < rmse.value < rmse.high
    r2 = stats.regression_estimate(y, pred, "r2", 0.95)
    assert r2.value == pytest.approx(m.r2_score(y, pred), rel=1e-2)


def test_a_version_is_worse_only_beyond_the_noise():
    def est(value: float, n: int) -> stats.Estimate:
        return stats.Estimate(
            "accuracy", value, None, None, n, 0.95, (value * (1 - value) / n) ** 0.5
        )

    assert stats.compare_estimates(est(0.70, 200), est(0.97, 200), "v1", 30, 0.95).worse
    assert not stats.compare_estimates(est(0.95, 200), est(0.97, 200), "v1", 30, 0.95).worse
    few = stats.compare_estimates(est(0.5, 10), est(0.99, 200), "v1", 30, 0.95)
    assert not few.worse and "too few labelled rows" in few.note


def test_durations_and_buckets():
    assert parse_duration("24h") == 86400 and parse_duration("7d") == 7 * 86400
    assert parse_duration("all") is None
    with pytest.raises(ValueError, match="30m, 24h"):
        parse_duration("yesterday")
    edges, step = buckets(1000.0, 1000.0 + 86400)
    assert step == 3600 and edges[0] <= 1000 and edges[-1] >= 1000 + 86400
    assert len(edges) <= 27


# ---- the checks --------------------------------------------------------------------------------


def test_another_island_is_a_breach_naming_the_drifted_columns(tmp_path: Path, bundle, live):
    import dataclasses

    import pandas as pd

    from mlops.data.profile import profile_frame

    # the bundle's reference for its predictions: the three species as a held-out split has them
    shares = pd.DataFrame({"prediction": penguins()["species"].sample(86, random_state=1)})
    live = dataclasses.replace(live, prediction_reference=profile_frame(shares))
    rows, labels = group("Dream")
    serve_rows(bundle, tmp_path, rows, labels, version="v2")
    r = _report(tmp_path, live)
    kinds = {b.check for b in r.breaches}
    assert "input_drift" in kinds and "prediction_drift" in kinds
    drift = next(b for b in r.breaches if b.check == "input_drift")
    assert {"island", "flipper_length_mm", "bill_depth_mm", "body_mass_g"} <= set(drift.columns)
    assert "sex" not in drift.columns
    assert "evaluation set's predictions" in r.prediction_note
    perf = r.performance
    assert perf["online"]["labelled"] == 150 and perf["online"]["value"] > 0.9
    assert perf["judged"] and perf["online"]["low"] < perf["online"]["value"]
    assert not any(b.check == "performance" for b in r.breaches)
    s = r.series
    assert sum(s["rows"]) == 150 and set(s["drift_js"]) >= {"island", "sex"}
    assert set(s["prediction_shares"]) == {"Adelie", "Chinstrap", "Gentoo"}


def test_a_bundle_without_held_out_predictions_judges_no_prediction_drift(
    tmp_path: Path, bundle, live
):
    """Old bundles store no evaluation predictions: the training labels are no stand-in (an
    overfit model breaches on normal traffic against them), so prediction drift is not judged
    and the note says how to get it."""
    assert live.prediction_reference is None
    rows, labels = group("Dream")
    serve_rows(bundle, tmp_path, rows, labels, version="v2")
    r = _report(tmp_path, live)
    assert r.prediction_drift is None
    assert "not judged" in r.prediction_note and "mlops run" in r.prediction_note
    assert not any(b.check == "prediction_drift" for b in r.breaches)
    assert any(b.check == "input_drift" for b in r.breaches)  # the inputs still are


def test_traffic_like_the_training_data_is_no_breach(tmp_path: Path, bundle, live):
    rows, labels = group(None, n=200, seed=7)
    serve_rows(bundle, tmp_path, rows, labels, version="v2", batch=4)
    r = _report(tmp_path, live)
    assert r.breaches == [], r.summary()
    assert r.drift is not None and not r.drift.dataset_drift
    assert r.traffic["requests"] == 50 and r.traffic["rows"] == 200


def test_too_few_rows_or_an_empty_window_are_not_judged(tmp_path: Path, bundle, live):
    rows, labels = group("Dream", n=10)
    serve_rows(bundle, tmp_path, rows, labels, version="v2")
    r = _report(tmp_path, live)
    assert r.drift is None and "min_rows = 30" in r.drift_note and not r.breaches
    later = Window(time.time() + 3600, time.time() + 7200, "later")
    empty = _report(tmp_path, live, window=later)
    assert empty.empty and not empty.breaches and "no traffic" in render.verdict(empty)
    assert empty.series == {}
    render.html_report(empty), render.markdown(empty)  # an empty window still renders


def test_wrong_answers_breach_performance_and_lose_to_the_previous_version(
    tmp_path: Path, bundle, live
):
    rows, labels = group(None, n=120, seed=2)
    serve_rows(bundle, tmp_path, rows, labels, version="v1")  # the predecessor: right answers
    wrong = {"Adelie": "Gentoo", "Gentoo": "Chinstrap", "Chinstrap": "Adelie"}
    # the world changed: half the labels now disagree with what the model says
    shifted = [wrong[s] if i % 2 else s for i, s in enumerate(labels)]
    serve_rows(bundle, tmp_path, rows, shifted, version="v2")
    r = _report(tmp_path, live, previous="v1")
    checks = {b.check for b in r.breaches}
    assert {"performance", "worse_than_previous"} <= checks
    cmp = r.performance["previous"]
    assert cmp["worse"] and cmp["other"]["labelled"] == 120 and cmp["live"]["labelled"] == 120
    assert r.performance["by_version"]["v1"]["value"] > 0.9
    assert r.performance["online"]["value"] < 0.6
    assert "v1" in render.markdown(r) and "worse" in render.markdown(r)


def test_refused_requests_and_server_errors(tmp_path: Path, bundle, live):
    import json

    rows, _ = group(None, n=60, seed=4)
    bad = [dict(r, island="Mars") for r in rows[:10]]
    serve_rows(bundle, tmp_path, rows + bad, version="v2")
    log = next(tmp_path.glob("*.jsonl"))
    errors = [
        {"kind": "error", "ts": time.time(), "request_id": f"e{i}", "endpoint": "predict",
         "status": 500, "error": "internal", "version": "v2", "latency_ms": 3.0}
        for i in range(5)
    ]  # fmt: skip
    with open(log, "a") as fh:
        fh.write("".join(json.dumps(e) + "\n" for e in errors))
    r = _report(tmp_path, live)
    q, h = r.quality, r.health
    assert (q["requests"], q["out_of_schema"], q["fields"]) == (75, 10, {"island": 10})
    assert h["server_errors"] == 5 and h["latency_ms"]["p99"] is not None
    checks = {b.check: b for b in r.breaches}
    assert "island" in checks["data_quality"].message and "health" in checks
    assert sum(r.series["refused"]) == 10 and sum(r.series["errors"]) == 5  # per bucket


def test_the_html_page_is_self_contained_svg(tmp_path: Path, bundle, live):
    rows, labels = group("Dream", n=60)
    serve_rows(bundle, tmp_path, rows, labels, version="v2")
    page = render.html_report(_report(tmp_path, live))
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    svgs = page.count("<svg")
    assert svgs >= 5
    for chunk in page.split("<svg")[1:]:
        ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")  # well-formed


def test_the_large_sample_ks_is_scipys():
    """The data package's KS on a sorted current sample above 10,000 values: scipy's figures."""
    from scipy import stats as sst

    from mlops.data.drift import _Numeric, ks
    from mlops.data.profile import Sketch

    rng = np.random.default_rng(0)
    for _ in range(10):
        ref = np.round(rng.normal(size=rng.integers(5, 400)), int(rng.integers(0, 3)))
        cur = np.sort(np.round(rng.normal(0.1, 1, size=int(rng.integers(10_001, 40_000))), 1))
        d, p = ks(Sketch.from_sorted(np.sort(ref)), _Numeric(x=cur))
        want = sst.ks_2samp(ref, cur)
        assert d == pytest.approx(want.statistic, abs=1e-12)
        assert p == pytest.approx(want.pvalue, rel=1e-9, abs=1e-300)


def test_a_regression_model_is_monitored_too(tmp_path: Path):
    """Predicting body mass: rmse online (accuracy makes no sense: said, and replaced), numeric
    prediction drift against the evaluation predictions, mae over time."""
    import json

    import skops.io as sio
    from sklearn.linear_model import LinearRegression

    from mlops.bundle import write_bundle
    from mlops.data.profile import profile_frame
    from mlops.stages.evaluate import prediction_reference, regression_metrics
    from mlops.stages.train import build_pipeline, feature_columns, input_schema
    from tests.monitor_helpers import records
    from tests.serve_helpers import penguins

    df = penguins().dropna(subset=["body_mass_g"])
    test = df.sample(frac=0.25, random_state=0)
    train = df.drop(test.index)
    numeric, categorical = feature_columns(train, "body_mass_g", ["year", "species"])
    features = numeric + categorical
    pipe = build_pipeline(numeric, categorical, LinearRegression()).fit(
        train[features], train["body_mass_g"]
    )
    pred = pipe.predict(test[features])
    bundle = tmp_path / "bundle"
    write_bundle(
        bundle,
        {
            "model.skops": sio.dumps(pipe),
            "schema.json": json.dumps(input_schema(train, numeric, categorical)).encode(),
            "reference.json": json.dumps(profile_frame(train[[*features, "body_mass_g"]])).encode(),
        },
        {"name": "mass", "task": "regression", "target": "body_mass_g", "features": features,
         "metrics": regression_metrics(test["body_mass_g"], pred),
         "prediction_reference": prediction_reference(pred, None)},
    )  # fmt: skip
    live = LiveModel.read(bundle, "v1")
    sample = df.dropna(subset=features).sample(150, replace=True, random_state=3)
    rows, mass = records(sample), sample["body_mass_g"].tolist()
    spec = MonitoringSpec.model_validate({"performance": {"metric": "accuracy", "max": 500}})
    serve_rows(bundle, tmp_path / "log", rows, mass, version="v1")
    r = analyse(read_columns(tmp_path / "log"), live, spec, Window(None, 2e9, "all"), env="e")
    assert r.breaches == [], r.summary()
    assert r.performance["metric"] == "rmse" and any("accuracy" in n for n in r.notes)
    assert r.performance["online"]["value"] == pytest.approx(r.performance["offline"], rel=0.35)
    assert r.prediction_drift.column("prediction").kind == "numeric"
    assert "mae" in r.series and "prediction_shares" not in r.series
    heavier = [m + 1500 for m in mass]  # the scale drifted: every label 1.5 kg off
    serve_rows(bundle, tmp_path / "log2", rows, heavier, version="v1")
    r = analyse(read_columns(tmp_path / "log2"), live, spec, Window(None, 2e9, "all"), env="e")
    (b,) = r.breaches
    assert b.check == "performance" and "above max 500" in b.message


def test_inputs_and_predictions_are_one_family_and_unseen_classes_a_finding(
    tmp_path: Path, bundle, live
):
    """A prediction reference (the evaluation split's predictions) that never had Chinstrap:
    live Chinstrap predictions are named in a note; input and prediction p-values are adjusted
    together (Holm), so every column carries its adjusted p-value."""
    import dataclasses

    import pandas as pd

    from mlops.data.profile import profile_frame

    reference = profile_frame(pd.DataFrame({"prediction": ["Adelie"] * 50 + ["Gentoo"] * 40}))
    partial = dataclasses.replace(live, prediction_reference=reference)
    rows, labels = group(None, n=200, seed=7)
    serve_rows(bundle, tmp_path, rows, labels, version="v2", batch=4)
    r = _report(tmp_path, partial)
    assert any("never had: Chinstrap" in n for n in r.notes), r.notes
    assert "evaluation set's predictions" in r.prediction_note
    family = r.drift.columns + r.prediction_drift.columns
    assert all(c.p_adjusted is not None and c.p_adjusted >= c.p_value for c in family)
    assert r.drift.correction == r.prediction_drift.correction == "holm"
    smallest = min(c.p_value for c in family)
    assert min(c.p_adjusted for c in family) == pytest.approx(min(1.0, smallest * len(family)))
