"""Pre-flight checks: columns, gate metrics and estimator against the data and the task, reported
all at once with file and line by `mlops check`, and by `mlops run` right after ingest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlops.config.preflight import (
    GATED_ONLY,
    KNOWN_KINDS,
    METRICS,
    estimator_kind,
    read_header,
)
from mlops.errors import ExitCode
from mlops.pipeline.records import RunStore
from tests.helpers import replace_in, replaced


def break_config(root: Path) -> None:
    """Template leftovers of the kind a new user meets: columns the data lacks, a regression
    gate and a regressor on a classification task."""
    pipe = root / "pipeline.yaml"
    text = pipe.read_text()
    text = text.replace("sensitive: [sex, island]", "sensitive: [sex, islnd]")
    text = text.replace("exclude: [year]", "exclude: [yr]")
    text = text.replace("f1_macro: {min: 0.9}", "rmse: {max: 0.9}\n    slices: [colour]")
    pipe.write_text(text)
    params = root / "params.yaml"
    replace_in(params, "LogisticRegression", "Ridge")


def line_of(root: Path, file: str, needle: str) -> int:
    lines = (root / file).read_text().splitlines()
    return next(i + 1 for i, ln in enumerate(lines) if needle in ln)


def test_check_reports_every_problem_with_file_line_and_fix(project: Path, cli):
    break_config(project)
    result = cli(["check"], cwd=project)
    assert result.exit_code == ExitCode.USAGE, result.output
    out = result.output
    assert "5 problems" in out
    src = "data/source/penguins.csv"
    sens = line_of(project, "pipeline.yaml", "islnd")
    assert (
        f"pipeline.yaml:{sens}: data.sensitive[1]: a sensitive column 'islnd' is not a column "
        f"of {src}; did you mean 'island'?" in out
    )
    excl = line_of(project, "pipeline.yaml", "exclude: [yr]")
    assert f"pipeline.yaml:{excl}: stages.train.with.exclude[0]: an excluded column 'yr'" in out
    assert "a slice column 'colour' is not a column" in out
    gate = line_of(project, "pipeline.yaml", "rmse:")
    assert (
        f"pipeline.yaml:{gate}: stages.evaluate.gates.rmse: gate on 'rmse' (a regression metric)"
        in out
    )
    assert "the task is classification (model.task in pipeline.yaml)" in out
    est = line_of(project, "params.yaml", "estimator:")
    assert f"params.yaml:{est}: train.estimator: sklearn.linear_model.Ridge is a regressor" in out
    assert "use a classifier" in out
    assert "docs/config.md" in out


def test_check_flags_a_span_column_the_source_lacks(project: Path, cli):
    pipe = project / "pipeline.yaml"
    replace_in(
        pipe,
        "      output: data/raw/penguins.csv\n",
        "      output: data/raw/penguins.csv\n      span: {column: date, from: 2008-01-01}\n",
        1,
    )
    result = cli(["check"], cwd=project)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "stages.ingest.with.span.column: the span column 'date' is not a column of" in (
        result.output
    )


def test_inferred_regression_rejects_accuracy_gates(project: Path, cli):
    """`task: auto` on a float target is regression: accuracy gates are caught before training
    (today they ran the whole pipeline, then said `got None`)."""
    pipe = project / "pipeline.yaml"
    text = replaced(pipe, "target: species", "target: body_mass_g")
    text = text.replace("task: classification", "task: auto")
    pipe.write_text(text)
    src = project / "data/source/penguins.csv"
    lines = src.read_text().splitlines()
    col = lines[0].split(",").index("body_mass_g")
    rows = [lines[0]]
    for ln in lines[1:]:
        cells = ln.split(",")
        if cells[col] not in ("", "NA"):
            cells[col] = f"{float(cells[col]):.1f}"
        rows.append(",".join(cells))
    src.write_text("\n".join(rows) + "\n")
    result = cli(["check"], cwd=project)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert (
        "gate on 'accuracy' (a classification metric), but the task is regression" in result.output
    )
    assert "inferred from the float values of 'body_mass_g'" in result.output
    assert "LogisticRegression is a classifier" in result.output
    assert "`r2: {min: 0.1}`" in result.output


def test_a_valid_project_passes(project: Path, cli):
    pipe = project / "pipeline.yaml"
    replace_in(pipe, "f1_macro: {min: 0.9}", "test_rows: {min: 50}")
    result = cli(["check"], cwd=project)
    assert result.exit_code == 0, result.output


def test_metric_names_match_what_evaluate_computes():
    import numpy as np
    import pandas as pd

    from mlops.stages.evaluate import classification_metrics, regression_metrics

    y = pd.Series(["a", "b", "a", "b"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    got = classification_metrics(y, np.array(["a", "b", "b", "b"]), proba, ["a", "b"])
    assert set(got) == set(METRICS["classification"])
    gated = classification_metrics(y, np.array(["a", "b", "b", "b"]), proba, ["a", "b"], True)
    assert set(gated) == set(METRICS["classification"]) | set(GATED_ONLY["classification"])
    reg = regression_metrics(pd.Series([1.0, 2.0, 3.0]), np.array([1.1, 1.9, 3.2]))
    assert set(reg) == set(METRICS["regression"])


def test_estimator_kind():
    assert estimator_kind("sklearn.linear_model.LogisticRegression") == "classification"
    assert estimator_kind("sklearn.linear_model.Ridge") == "regression"
    assert estimator_kind("sklearn.preprocessing.StandardScaler") is None
    with pytest.raises(ImportError):
        estimator_kind("nowhere_pkg.Model")


def test_known_estimator_kinds_match_scikit_learn():
    """The table that spares `mlops check` the scikit-learn import tells the truth."""
    from sklearn.utils import all_estimators

    classifiers = {name for name, _ in all_estimators(type_filter="classifier")}
    regressors = {name for name, _ in all_estimators(type_filter="regressor")}
    assert set(KNOWN_KINDS["classification"]) <= classifiers - regressors
    assert set(KNOWN_KINDS["regression"]) <= regressors - classifiers
    with pytest.raises(AttributeError):
        estimator_kind("sklearn.ensemble.RandomForrestClassifier")  # misspelt: imported, refused


def test_read_header_of_hostile_files(tmp_path: Path):
    (tmp_path / "empty.csv").write_text("")
    assert read_header(tmp_path / "empty.csv") is None
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe,a\x00b\n1,2\n")
    assert read_header(tmp_path / "bin.csv") is not None  # read, never a crash
    assert read_header(tmp_path / "missing.csv") is None
    assert read_header(tmp_path / "notes.txt") is None


@pytest.mark.slow
def test_run_stops_after_ingest_before_training(project: Path, cli):
    break_config(project)
    # `mlops check` would catch them; the run checks again from what ingest wrote
    result = cli(["run"], cwd=project)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "5 problems" in result.output
    assert "is not a column of data/raw/penguins.csv" in result.output
    record = RunStore(project).get("latest")
    status = {s["name"]: s["status"] for s in record.stages}
    assert status["ingest"] == "ran"
    assert {status[s] for s in ("validate", "split", "train", "evaluate")} == {"not run"}
    assert not (project / "build").exists() and not (project / "models").exists()
    assert re.search(r"pipeline\.yaml:\d+: data\.sensitive\[1\]", result.output)


def test_a_column_the_contract_declares_is_left_to_validate(project: Path, cli):
    """Data that lost a column the schema declares is a data problem: validate reports it with
    every other one (exit 3), so the pre-flight check does not call it a config mistake."""
    src = project / "data/source/penguins.csv"
    rows = [ln.split(",") for ln in src.read_text().splitlines()]
    drop = rows[0].index("sex")
    src.write_text("\n".join(",".join(r[:drop] + r[drop + 1 :]) for r in rows) + "\n")
    result = cli(["check"], cwd=project)
    assert result.exit_code == 0, result.output
    schema = project / "data/schema.yaml"
    replace_in(schema, "  sex:", "  sex_removed:")
    result = cli(["check"], cwd=project)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "a sensitive column 'sex' is not a column of data/source/penguins.csv" in result.output
