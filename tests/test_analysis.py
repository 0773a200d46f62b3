"""Model analysis on real projects: baseline gates, slices, plots, tuning (git, DVC, sklearn)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mlops.errors import ExitCode
from mlops.pipeline.records import RunStore
from tests.helpers import commit_all, git, replace_in, replaced

pytestmark = pytest.mark.slow
BUNDLE = "models/penguins-classifier"
MODEL = "model.skops"
GATES = "      accuracy: {min: 0.9}\n      f1_macro: {min: 0.9}\n"


def set_gates(root: Path, text: str) -> None:
    pipe = root / "pipeline.yaml"
    src = pipe.read_text()
    assert GATES in src
    pipe.write_text(src.replace(GATES, text))


def set_param(root: Path, old: str, new: str) -> None:
    params = root / "params.yaml"
    src = params.read_text()
    assert old in src
    params.write_text(src.replace(old, new))


def metadata(root: Path) -> dict:
    return json.loads((root / BUNDLE / "metadata.json").read_text())


def value_rows(root: Path) -> int:
    return json.loads((root / "reports/metrics.json").read_text())["test_rows"]


def test_challenger_worse_than_main_fails_with_both_values_and_tolerance(trained: Path, cli):
    main_accuracy = json.loads((trained / "reports/metrics.json").read_text())["accuracy"]
    git(trained, "checkout", "-q", "-b", "challenger")
    set_gates(trained, "      accuracy: {min: 0.5, not_worse_than: main, tolerance: 0.01}\n")
    set_param(trained, "C: 1.0", "C: 0.01")  # a much weaker model
    result = cli(["run"], cwd=trained)
    assert result.exit_code == ExitCode.GATE_FAILED, result.output
    assert "not_worse_than main" in result.output
    verdict = metadata(trained)["verdict"]
    assert verdict["blessed"] is False
    gate = next(g for g in verdict["gates"] if g["rule"] == "not_worse_than main")
    value = json.loads((trained / "reports/metrics.json").read_text())["accuracy"]
    assert gate["baseline"] == main_accuracy and gate["value"] == value
    assert gate["tolerance"] == 0.01 and gate["threshold"] == round(main_accuracy - 0.01, 6)
    assert value < main_accuracy - 0.01 and gate["passed"] is False
    report = (trained / "reports/evaluation.md").read_text()
    assert "NOT blessed" in report
    row = next(ln for ln in report.splitlines() if "not_worse_than main" in ln)
    assert f"{value:.4g}" in row and f"{main_accuracy:.4g}" in row and "| 0.01 |" in row
    assert "**FAIL**" in row
    record = RunStore(trained).get("latest")
    assert record.outcome == "gate_failed" and record.exit_code == ExitCode.GATE_FAILED
    # the baseline file records where the figure came from (a dependency of evaluate)
    base = json.loads((trained / "reports/baseline.json").read_text())["main"]
    assert base["commit"] == git(trained, "rev-parse", "main")
    # ... and the hash of main's bundle, scored on the challenger's own test rows
    assert base["bundle"]["md5"].endswith(".dir") and gate["paired"]["rows"] == value_rows(trained)
    assert "paired on the same" in gate["note"]
    assert "reports/baseline.json" in (trained / "dvc.yaml").read_text()


def test_probability_gates_are_paired_on_the_same_rows(trained: Path, cli):
    """roc_auc and log_loss gates against main: main's bundle gives its probabilities on the
    challenger's test rows (main never stored a log_loss), the gate judges the paired interval."""
    git(trained, "checkout", "-q", "-b", "challenger")
    set_gates(
        trained,
        "      roc_auc: {not_worse_than: main, tolerance: 0.5}\n"
        "      log_loss: {not_worse_than: main, tolerance: 0.01}\n",
    )
    set_param(trained, "C: 1.0", "C: 0.01")  # much less confident: a far higher log loss
    result = cli(["run"], cwd=trained)
    assert result.exit_code == ExitCode.GATE_FAILED, result.output
    metrics = json.loads((trained / "reports/metrics.json").read_text())
    gates = {g["metric"]: g for g in metadata(trained)["verdict"]["gates"]}
    auc, loss = gates["roc_auc"], gates["log_loss"]
    for gate in (auc, loss):
        assert "paired on the same" in gate["note"], gate
        assert gate["paired"]["rows"] == value_rows(trained)
        assert gate["paired"]["method"] == "paired bootstrap, 1000 resamples, seed 0"
    assert loss["value"] == metrics["log_loss"] == loss["paired"]["challenger"]
    assert auc["value"] == metrics["roc_auc"] == auc["paired"]["challenger"]
    assert loss["paired"]["high"] < -0.01 and loss["passed"] is False  # worse beyond doubt
    assert "lower is better" in loss["note"]
    assert auc["passed"] is True  # within the wide tolerance
    stored = json.loads(
        subprocess.run(
            ["git", "show", "main:reports/metrics.json"],
            cwd=trained,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert "log_loss" not in stored and loss["baseline"] > 0


def test_baseline_moving_reruns_evaluate_and_tolerance_decides(trained: Path, cli):
    git(trained, "checkout", "-q", "-b", "challenger")
    set_gates(trained, "      accuracy: {not_worse_than: main, tolerance: 0.2}\n")
    set_param(trained, "C: 1.0", "C: 0.01")
    first = cli(["run", "--json"], cwd=trained)
    assert first.exit_code == 0, first.output  # within a tolerance of 0.2
    commit_all(trained, "challenger")
    # main moves on: a committed accuracy the challenger is far below
    git(trained, "checkout", "-q", "main")
    metrics = trained / "reports/metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "accuracy": 1.5}))
    commit_all(trained, "a better main")
    git(trained, "checkout", "-q", "challenger")
    second = cli(["run", "--json"], cwd=trained)
    # the stored figure moved, so evaluate reran; but the gate scores main's bundle on the same
    # test rows as the challenger: a figure written into a file does not decide it
    assert second.exit_code == 0, second.output
    data = json.loads(second.output)
    status = {s["name"]: s["status"] for s in data["stages"]}
    assert status["evaluate"] == "ran" and status["train"] == "skipped"
    gate = data["gates"][0]
    assert gate["baseline"] != 1.5 and gate["passed"] is True
    assert "paired on the same" in metadata(trained)["verdict"]["gates"][0]["note"]
    # main's model file can no longer be fetched (gone from the DVC cache and the remote): the
    # gate falls back to the stored figures and says so in its row
    base = json.loads((trained / "reports/baseline.json").read_text())["main"]
    digest = base["bundle"]["md5"]
    manifest = next(p for p in trained.rglob(digest[2:]) if ".git" not in p.parts)
    model = next(e["md5"] for e in json.loads(manifest.read_text()) if e["relpath"] == MODEL)
    gone = [p for p in trained.rglob(model[2:]) if ".git" not in p.parts]
    assert gone
    for p in gone:
        p.unlink()
    commit_all(trained, "challenger, evaluated again")
    git(trained, "checkout", "-q", "main")
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "accuracy": 1.6}))
    commit_all(trained, "main moves again")
    git(trained, "checkout", "-q", "challenger")
    third = cli(["run", "--json"], cwd=trained)
    assert third.exit_code == ExitCode.GATE_FAILED, third.output
    gate = json.loads(third.output)["gates"][0]
    assert gate["baseline"] == 1.6 and gate["passed"] is False
    note = metadata(trained)["verdict"]["gates"][0]["note"]
    assert "stored figures" in note and "could not score" in note


def test_first_run_without_baseline_passes_and_says_so(trained: Path, cli):
    # `release` points at the first commit, before any metrics were committed
    first = git(trained, "rev-list", "--max-parents=0", "HEAD")
    git(trained, "branch", "release", first)
    set_gates(
        trained,
        "      accuracy: {min: 0.9, not_worse_than: production, tolerance: 0.01}\n"
        "      f1_macro: {not_worse_than: release, relative: true, tolerance: 0.05}\n",
    )
    result = cli(["run", "--json"], cwd=trained)
    assert result.exit_code == 0, result.output
    gates = {g["rule"]: g for g in json.loads(result.output)["gates"]}
    prod, release = gates["not_worse_than production"], gates["not_worse_than release"]
    assert prod["passed"] and "no version of penguins-classifier in production" in prod["note"]
    assert release["passed"] and release["baseline"] is None
    assert "no reports/metrics.json at release" in release["note"]
    report = (trained / "reports/evaluation.md").read_text()
    assert report.count("passes (first run)") == 2


def test_slices_of_sensitive_columns_in_report_and_json(trained: Path, cli):
    report = (trained / "reports/evaluation.md").read_text()
    assert "### sex (sensitive)" in report and "### island (sensitive)" in report
    meta = metadata(trained)
    slices = meta["slices"]
    by_spec: dict[str, list] = {}
    for s in slices:
        by_spec.setdefault(s["spec"], []).append(s)
    assert {"sex", "island"} <= set(by_spec)
    # counts add up to the test set; every value of the column has its slice
    for spec in ("sex", "island"):
        assert sum(s["rows"] for s in by_spec[spec]) == meta["metrics"]["test_rows"]
    assert {s["values"][0] for s in by_spec["island"]} == {"Biscoe", "Dream", "Torgersen"}
    biscoe = next(s for s in by_spec["island"] if s["values"] == ["Biscoe"])
    assert f"| Biscoe | {biscoe['rows']} |" in report
    # sex is a feature, island too; a cross of two is computed when asked for
    shown = json.loads(cli(["runs", "show", "--json"], cwd=trained).output)
    assert {s["spec"] for s in shown["extra"]["slices"]} >= {"sex", "island"}
    text = cli(["runs", "show"], cwd=trained).output
    assert "slices" in text and "island=Biscoe" in text
    pipe = trained / "pipeline.yaml"
    replace_in(pipe, "    uses: evaluate\n", "    uses: evaluate\n    slices: [[island, sex]]\n")
    result = cli(["run", "--json"], cwd=trained)
    assert result.exit_code == 0, result.output
    crosses = [s for s in json.loads(result.output)["slices"] if s["spec"] == "island x sex"]
    assert crosses and all(len(s["values"]) == 2 for s in crosses)
    assert sum(s["rows"] for s in crosses) == meta["metrics"]["test_rows"]


def test_sensitive_column_that_is_not_a_feature_is_still_sliced(trained: Path):
    from mlops import api

    pipe = trained / "pipeline.yaml"
    pipe.write_text(
        replaced(pipe, "exclude: [year]", "exclude: [year, sex]").replace(
            "sensitive: [sex, island]", "sensitive: [sex, island, year]"
        )
    )
    result = api.run(trained)
    assert result.error is None, result.error
    meta = metadata(trained)
    assert "sex" not in meta["features"] and "year" not in meta["features"]
    specs = {s["spec"] for s in meta["slices"]}
    assert {"sex", "year"} <= specs


def test_slice_gate_fails_the_run(trained: Path, cli):
    meta = metadata(trained)
    worst = min(
        (s for s in meta["slices"] if s["rows"] >= 3), key=lambda s: s["metrics"]["accuracy"]
    )
    floor = round(worst["metrics"]["accuracy"] + 0.01, 4)
    assert floor < meta["metrics"]["accuracy"]  # the overall figure would pass this bar
    pipe = trained / "pipeline.yaml"
    replace_in(
        pipe,
        "      f1_macro: {min: 0.9}\n",
        "      f1_macro: {min: 0.9}\n"
        f"    slice_gates:\n      accuracy: {{min: {floor}, min_rows: 3}}\n",
    )
    result = cli(["run"], cwd=trained)
    assert result.exit_code == ExitCode.GATE_FAILED, result.output
    assert "slice min" in result.output and worst["name"] in result.output
    gate = next(g for g in metadata(trained)["verdict"]["gates"] if g.get("slice_gate"))
    assert gate["slice"] == worst["name"] and gate["value"] == worst["metrics"]["accuracy"]
    report = (trained / "reports/evaluation.md").read_text()
    assert "Slice gates:" in report and "slice min" in report


def test_plots_for_dvc_and_people(trained: Path):
    plots = trained / "reports/plots"
    assert (plots / "confusion.csv").read_text().startswith("actual,predicted\n")
    assert sorted(p.name for p in (plots / "roc").iterdir()) == [
        "Adelie.json",
        "Chinstrap.json",
        "Gentoo.json",
    ]
    assert (plots / "precision_recall" / "Gentoo.json").is_file()
    assert (plots / "slices.csv").read_text().startswith("slice,rows,accuracy,")
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"])
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "--json"],
        cwd=trained,
        capture_output=True,
        text=True,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert not data.get("errors"), data.get("errors")
    assert {"reports/plots/confusion.csv", "Per-slice accuracy"} <= set(data["data"])
    assert any(k.startswith("reports/plots/roc/") for k in data["data"])
    html = (trained / "reports/evaluation.html").read_text()
    assert "<script" not in html and "http" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    svgs = html.count("<svg")
    assert svgs >= 4  # confusion, ROC, PR, slices
    for chunk in html.split("<svg")[1:]:
        ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")


def test_tuning_search_recorded_in_run_and_report(trained: Path, cli):
    params = trained / "params.yaml"
    params.write_text(
        params.read_text()
        + "tune:\n  method: grid\n  cv: 3\n  scoring: f1_macro\n"
        + "  space:\n    C: [0.01, 1.0]\n"
    )
    result = cli(["run", "--json"], cwd=trained)
    assert result.exit_code == 0, result.output
    tuning = json.loads(result.output)["tuning"]
    assert tuning["method"] == "grid" and tuning["scoring"] == "f1_macro"
    assert len(tuning["table"]) == 2 and tuning["candidates"] == 2
    best = tuning["table"][0]
    assert best["rank"] == 1 and best["params"] == tuning["best_params"]
    assert metadata(trained)["params"]["train"]["C"] == tuning["best_params"]["C"]
    assert RunStore(trained).get("latest").extra["tuning"]["best_params"] == tuning["best_params"]
    report = (trained / "reports/evaluation.md").read_text()
    assert "## Tuning" in report and "grid search, 3-fold" in report
    assert "- tune" in (trained / "dvc.yaml").read_text()


REGRESSION_PIPELINE = """\
version: 1
model: {name: diabetes, target: target, task: regression}
data: {sensitive: [sex, age]}
stages:
  ingest: {uses: ingest, with: {source: "sklearn:diabetes", output: data/raw/diabetes.csv}}
  split: {uses: split, with: {input: data/raw/diabetes.csv}}
  train: {uses: train, params: [train]}
  evaluate:
    uses: evaluate
    gates:
      rmse: {max: 100, not_worse_than: main, tolerance: 0.05, relative: true}
    slice_gates:
      rmse: {max_gap: 100}
"""


def test_regression_lower_is_better_relative_tolerance_plots_and_quartile_slices(
    project: Path, cli
):
    (project / "pipeline.yaml").write_text(REGRESSION_PIPELINE)
    (project / "params.yaml").write_text(
        "split: {test_size: 0.25, seed: 1}\n"
        "train:\n  estimator: sklearn.linear_model.Ridge\n  alpha: 0.1\n"
    )
    first = cli(["run", "--json"], cwd=project)
    assert first.exit_code == 0, first.output
    data = json.loads(first.output)
    assert "first run" in data["gates"][1]["note"]
    ages = [s for s in data["slices"] if s["spec"] == "age"]
    assert len(ages) == 4 and all(s["values"][0].startswith("[") for s in ages)
    assert {s["spec"] for s in data["slices"]} == {"sex", "age"}
    plots = project / "reports/plots"
    assert sorted(p.name for p in plots.iterdir()) == [
        "predicted.csv",
        "residuals.csv",
        "slices.csv",
    ]
    assert (plots / "slices.csv").read_text().startswith("slice,rows,rmse,")
    assert "Residuals" in (project / "reports/evaluation.html").read_text()
    commit_all(project, "baseline model")
    rmse = data["metrics"]["rmse"]
    git(project, "checkout", "-q", "-b", "challenger")
    params = project / "params.yaml"
    replace_in(params, "alpha: 0.1", "alpha: 1000")
    second = cli(["run", "--json"], cwd=project)
    assert second.exit_code == ExitCode.GATE_FAILED, second.output
    gate = json.loads(second.output)["gates"][1]
    assert gate["rule"] == "not_worse_than main" and gate["baseline"] == rmse
    assert gate["threshold"] == round(rmse * 1.05, 6)  # lower is better: baseline + 5 %
    assert gate["value"] > gate["threshold"] and not gate["passed"]
