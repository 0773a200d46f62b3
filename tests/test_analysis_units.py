"""Unit tests of the analysis parts: gates, slices, run filters, reports, figures, settings."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from mlops.config.models import GateSpec, SliceGateSpec, TuneParams
from mlops.errors import UsageError
from mlops.pipeline import query
from mlops.pipeline.experiments import parse_settings, set_params
from mlops.pipeline.records import RunRecord
from mlops.stages.evaluate import check_gates
from mlops.stages.slices import check_slice_gates, slice_specs
from tests.helpers import replace_in

# ---- gates against a baseline ----------------------------------------------------------------


def base(metrics, name="main", commit="abcdef1234"):
    return {name: {"name": name, "commit": commit, "metrics": metrics, "note": ""}}


def test_not_worse_than_higher_is_better_with_absolute_tolerance():
    gates = {"accuracy": GateSpec(not_worse_than="main", tolerance=0.02)}
    ok = check_gates(gates, {"accuracy": 0.885}, base({"accuracy": 0.9}))[0]
    assert ok["passed"] and ok["threshold"] == 0.88 and ok["baseline"] == 0.9
    assert ok["tolerance"] == 0.02 and ok["margin"] == 0.005 and "main @ abcdef12" in ok["note"]
    bad = check_gates(gates, {"accuracy": 0.87}, base({"accuracy": 0.9}))[0]
    assert not bad["passed"] and bad["margin"] == -0.01


def test_not_worse_than_lower_is_better_and_relative_tolerance():
    # rmse is lower-is-better by default; 10 % of 2.0 is 0.2
    gates = {"rmse": GateSpec(not_worse_than="production", tolerance=0.1, relative=True)}
    res = check_gates(gates, {"rmse": 2.15}, base({"rmse": 2.0}, "production"))[0]
    assert res["passed"] and res["threshold"] == 2.2
    res = check_gates(gates, {"rmse": 2.25}, base({"rmse": 2.0}, "production"))[0]
    assert not res["passed"] and res["margin"] == -0.05
    # an explicit direction overrides the default
    gates = {"loss_score": GateSpec(not_worse_than="main", direction="lower")}
    assert not check_gates(gates, {"loss_score": 1.1}, base({"loss_score": 1.0}))[0]["passed"]


def test_no_baseline_passes_and_says_why():
    gates = {"accuracy": GateSpec(not_worse_than="production")}
    missing = {"production": {"name": "production", "metrics": None, "note": "no version yet"}}
    res = check_gates(gates, {"accuracy": 0.5}, missing)[0]
    assert res["passed"] and res["note"] == "no version yet: passes (first run)"
    res = check_gates(gates, {"accuracy": 0.5}, {})[0]
    assert res["passed"] and "no baseline in production yet" in res["note"]


# ---- slices ------------------------------------------------------------------------------


def test_slice_specs_add_sensitive_columns_once():
    assert slice_specs(["island", ["island", "sex"]], ["sex", "island"]) == [
        ["island"],
        ["island", "sex"],
        ["sex"],
    ]


def test_compute_slices_counts_and_metrics():
    import pandas as pd

    from mlops.stages.evaluate import classification_metrics
    from mlops.stages.slices import compute_slices

    frame = pd.DataFrame(
        {"g": ["a", "a", "a", "b", "b", None], "n": [1.0, 2, 3, 4, 5, 6], "y": list("xxyyxy")}
    )
    pred = pd.Series(list("xxyxxy")).to_numpy()
    out = compute_slices(
        frame,
        [["g"]],
        ["g"],
        frame["y"],
        pred,
        None,
        lambda ys, ps, pr: classification_metrics(ys, ps, pr, ["x", "y"]),
    )
    assert [(s["name"], s["rows"]) for s in out] == [("g=a", 3), ("g=b", 2), ("g=(missing)", 1)]
    assert out[0]["metrics"]["accuracy"] == 1.0 and out[1]["metrics"]["accuracy"] == 0.5
    assert all(s["sensitive"] for s in out)
    with pytest.raises(UsageError, match="not in the test data: zz"):
        compute_slices(frame, [["zz"]], [], frame["y"], pred, None, lambda *a: {})


def _slices(*pairs):
    return [
        {"name": n, "columns": ["g"], "rows": rows, "metrics": {"accuracy": acc}}
        for n, rows, acc in pairs
    ]


def test_slice_gates_min_gap_and_small_slices():
    slices = _slices(("g=a", 50, 0.95), ("g=b", 40, 0.80), ("g=c", 3, 0.0))
    res = check_slice_gates({"accuracy": SliceGateSpec(min=0.85, max_gap=0.1)}, slices)
    low, gap = res
    assert not low["passed"] and low["slice"] == "g=b" and low["value"] == 0.8
    assert "1 slices under 10 rows not gated" in low["note"]
    assert not gap["passed"] and gap["value"] == 0.15 and gap["margin"] == -0.05
    ok = check_slice_gates({"accuracy": SliceGateSpec(min=0.75, max_gap=0.2)}, slices)
    assert all(r["passed"] for r in ok)
    res = check_slice_gates({"accuracy": SliceGateSpec(min=0.5, slices=["other"])}, slices)
    assert res[0]["passed"] and "no slice" in res[0]["note"]


# ---- run filters -------------------------------------------------------------------------


def rec(i, kind="run", **metrics):
    return RunRecord(
        id=f"r{i}",
        kind=kind,
        started=float(i),
        ended=float(i) + 2,
        outcome="ok",
        params={"train": {"C": metrics.pop("C", 1.0)}},
        metrics=metrics,
    )


RECORDS = [
    rec(1, accuracy=0.95, C=0.5),
    rec(2, "exp", accuracy=0.85, C=0.1),
    rec(3, "exp", C=2.0),
    rec(4, accuracy=0.99, C=5.0, **{"f1.macro": 0.7}),
]


@pytest.mark.parametrize(
    ("where", "ids"),
    [
        ("metrics.accuracy > 0.9", ["r1", "r4"]),
        ("metrics.accuracy > 0.9 and params.train.C < 1", ["r1"]),
        ("metrics.accuracy < 0.9 OR params.train.C >= 5", ["r2", "r4"]),
        ("kind == exp && not (params.train.C > 1)", ["r2"]),
        ("kind = 'exp' || metrics.f1.macro <= 0.7", ["r2", "r3", "r4"]),
        ("metrics.accuracy != 0.95", ["r2", "r4"]),  # r3 has no accuracy: not compared
        ("id ~ 4", ["r4"]),
        ("duration == 2", ["r1", "r2", "r3", "r4"]),
        ("metrics.missing > 0 or outcome == ok and kind == run", ["r1", "r4"]),
    ],
)
def test_where_filters(where, ids):
    assert [r.id for r in query.select(RECORDS, where)] == ids


def test_sort_puts_missing_last_both_ways():
    asc = query.select(RECORDS, sort="metrics.accuracy")
    assert [r.id for r in asc] == ["r2", "r1", "r4", "r3"]
    desc = query.select(RECORDS, sort="metrics.accuracy", descending=True, limit=2)
    assert [r.id for r in desc] == ["r4", "r1"]
    with pytest.raises(UsageError, match="cannot sort"):
        query.select(RECORDS, sort="accuracy")


@pytest.mark.parametrize(
    "bad",
    [
        "metrics.accuracy >",
        "(kind == exp",
        "kind == exp)",
        "__import__('os').system('true')",
        "metrics.accuracy > 0.9 and",
        "",
        "a $ b",
    ],
)
def test_bad_filters_are_usage_errors_and_nothing_runs(bad):
    with pytest.raises(UsageError) as info:
        query.parse(bad)
    assert "cannot read the filter" in info.value.message


# ---- experiments' settings -------------------------------------------------------------------


def test_settings_parse_values_and_sweeps():
    assert parse_settings(["train.C=0.5", "train.fit_intercept=false", "x.name=abc"]) == [
        {"train.C": 0.5, "train.fit_intercept": False, "x.name": "abc"}
    ]
    assert parse_settings(["train.C=0.1,1", "train.max_iter=100,200"]) == [
        {"train.C": 0.1, "train.max_iter": 100},
        {"train.C": 0.1, "train.max_iter": 200},
        {"train.C": 1, "train.max_iter": 100},
        {"train.C": 1, "train.max_iter": 200},
    ]
    assert parse_settings(["tune.space.C=[0.1, 1]"]) == [{"tune.space.C": [0.1, 1]}]
    for bad in ("train.C", "=3", "train..C=1", "1train=2"):
        with pytest.raises(UsageError):
            parse_settings([bad])


def test_set_params_keeps_comments_and_creates_sections():
    text = "# knobs\ntrain:\n  C: 1.0  # strength\n  max_iter: 10\n"
    out = set_params(text, {"train.C": 0.5, "tune.method": "grid"})
    assert out.startswith("# knobs\n") and "C: 0.5  # strength" in out
    assert "tune:\n  method: grid" in out
    with pytest.raises(UsageError, match="not a section"):
        set_params(text, {"train.C.x": 1})


# ---- reports and figures -----------------------------------------------------------------


def test_markdown_report_shows_baseline_tolerance_slices_and_tuning():
    from mlops.reports.evaluation import render_markdown

    gates = check_gates(
        {"accuracy": GateSpec(not_worse_than="main", tolerance=0.01)},
        {"accuracy": 0.8},
        base({"accuracy": 0.9}),
    )
    ev = {
        "name": "m",
        "task": "classification",
        "target": "y",
        "estimator": "E",
        "train_rows": 10,
        "test_rows": 5,
        "metrics": {"accuracy": 0.8},
        "verdict": {"blessed": False, "gates": gates},
        "slices": [
            {
                "spec": "sex",
                "columns": ["sex"],
                "values": ["f"],
                "rows": 3,
                "share": 0.6,
                "sensitive": True,
                "metrics": {"accuracy": 1.0},
            }
        ],
        "tuning": {
            "method": "grid",
            "cv": 3,
            "scoring": "accuracy",
            "candidates": 2,
            "seconds": 0.5,
            "best_params": {"C": 1.0},
            "best_score": 0.9,
            "table": [
                {"rank": 1, "params": {"C": 1.0}, "mean_score": 0.9, "std_score": 0.01},
                {"rank": 2, "params": {"C": None}, "mean_score": 0.8, "std_score": 0.02},
            ],
        },
    }
    md = render_markdown(ev)
    assert "**Verdict: NOT blessed (1 gate failed)**" in md
    assert "| accuracy | not_worse_than main | 0.8 | 0.9 (main @ abcdef12) | 0.01 | 0.89 |" in md
    assert "### sex (sensitive)" in md and "| f | 3 | 60.0% | 1 |" in md
    assert "## Tuning" in md and "| 2 | None | 0.8 | 0.02 |" in md


def test_figures_are_well_formed_svg():
    from mlops.reports import figures

    svgs = [
        figures.confusion_svg(["a", "b<"], [[3, 1], [0, 4]], "cm"),
        figures.lines_svg({"a": ([0, 0.5, 1], [0, 0.9, 1])}, "roc", "x", "y", diagonal=True),
        figures.scatter_svg([1.0, 2.0, 3.0], [1.1, 1.9, 3.2], "p", "a", "p", line="identity"),
        figures.scatter_svg([1.0, 2.0], [0.1, -0.1], "r", "p", "r", line="zero"),
        figures.bars_svg(["g=a", "g=b"], [0.9, 0.8], "bars", ["(3 rows)", "(2 rows)"]),
    ]
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
    assert "b&lt;" in svgs[0]


def test_regression_plot_files(tmp_path):
    import pandas as pd

    from mlops.stages import plotdata

    y = pd.Series([1.0, 2.0, 3.0, 4.0])
    data = plotdata.regression_plots(y, [1.5, 2.0, 2.5, 4.5])
    assert data["residual"] == [-0.5, 0.0, 0.5, -0.5]
    slices = [{"name": "g=a", "rows": 4, "metrics": {"rmse": 0.4, "r2": 0.8}}]
    files = plotdata.write_plot_files(tmp_path / "plots", "regression", data, slices)
    assert files == ["predicted.csv", "residuals.csv", "slices.csv"]
    assert (tmp_path / "plots/residuals.csv").read_text().splitlines()[1] == "1.5,-0.5"
    assert (tmp_path / "plots/slices.csv").read_text().startswith("slice,rows,rmse,r2\n")
    # rewriting replaces the directory whole
    plotdata.write_plot_files(tmp_path / "plots", "regression", data, [])
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "predicted.csv",
        "residuals.csv",
    ]


def test_tune_params_validation():
    TuneParams(space={"C": [0.1, 1]}, method="random")
    TuneParams(space={"C": {"loguniform": [0.01, 10]}}, method="random")
    for bad in ({}, {"C": []}, {"C": {"normal": [0, 1]}}, {"C": 3}):
        with pytest.raises(ValueError):
            TuneParams(space=bad)


def test_tuning_search_on_real_data():
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mlops.stages.train import build_pipeline
    from mlops.stages.tuning import tune_pipeline

    frame = load_iris(as_frame=True).frame
    X, y = frame.drop(columns="target"), frame["target"].map(str)
    pipe = build_pipeline(list(X.columns), [], LogisticRegression(max_iter=500))
    for method, space in (
        ("grid", {"C": [0.01, 1.0]}),
        ("random", {"C": {"loguniform": [0.01, 10]}}),
        ("halving", {"C": [0.01, 0.1, 1.0, 10.0]}),
    ):
        tune = TuneParams(method=method, space=space, cv=3, n_iter=3)
        best, record = tune_pipeline(tune, pipe, X, y, "classification")
        assert record["best_params"]["C"] == best.named_steps["model"].C
        assert record["table"] and record["scoring"] == "accuracy"
        assert isinstance(pd.Series(best.predict(X)).iloc[0], str)
    with pytest.raises(UsageError, match="grid search needs a list"):
        tune_pipeline(TuneParams(space={"C": {"uniform": [0, 1]}}), pipe, X, y, "classification")


def test_config_errors_for_slices_gates_and_tune_name_key_and_line(project, cli):
    pipe = project / "pipeline.yaml"
    replace_in(
        pipe,
        "      f1_macro: {min: 0.9}\n",
        "      f1_macro: {min: 0.9}\n"
        "    slices: [[island, sex, year]]\n"
        "    slice_gates:\n      accuracy: {min_rows: 5}\n",
    )
    params = project / "params.yaml"
    params.write_text(params.read_text() + "tune:\n  method: sweep\n  space: {C: 3}\n")
    result = cli(["check"], cwd=project)
    assert result.exit_code == 2, result.output
    out = result.output
    assert "a slice is a column or a list of two columns" in out
    assert "stages.evaluate.slice_gates.accuracy" in out and "at least one of min" in out
    assert "params.yaml:" in out and "tune.method" in out and "tune.space" in out
