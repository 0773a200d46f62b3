"""`mlops init DIR --data FILE --target COL`: a project on the user's own table, green on its
first `mlops run` (a classification CSV with a date column made here, and scikit-learn's
diabetes set as regression), and every bad input refused with what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops.config import load_project
from mlops.errors import ExitCode
from mlops.pipeline.scaffold_data import DUMMY_MARGIN
from tests.helpers import commit_all


def weather_csv(path: Path, rows: int = 300) -> Path:
    """Daily weather: an id and a date column (not features), rain to predict from humidity."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    humidity = rng.uniform(20, 95, rows)
    frame = pd.DataFrame(
        {
            "reading_id": [f"R{i:05d}" for i in range(rows)],
            "date": pd.date_range("2012-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "temp_c": rng.normal(14, 7, rows).round(1),
            "humidity": humidity.round(1),
            "wind": rng.choice(["N", "S", "E", "W"], rows),
            "weather": np.where(humidity + rng.normal(0, 8, rows) > 65, "rain", "dry"),
        }
    )
    frame.to_csv(path, index=False)
    return path


def diabetes_csv(path: Path) -> Path:
    from sklearn.datasets import load_diabetes

    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_classification_csv_with_a_date_column_runs_green(tmp_path: Path, cli):
    import pandas as pd

    data = weather_csv(tmp_path / "weather.csv")
    dest = tmp_path / "weather"
    result = cli(["init", str(dest), "--data", str(data), "--target", "weather"])
    assert result.exit_code == 0, result.output
    assert "excluded date: time column" in result.output
    assert not list(dest.rglob("*penguin*"))
    pipe = yaml.safe_load((dest / "pipeline.yaml").read_text())
    assert pipe["model"] == {
        "name": "weather-classifier",
        "target": "weather",
        "task": "classification",
    }
    assert pipe["stages"]["ingest"]["with"]["source"] == "data/source/weather.csv"
    assert sorted(pipe["stages"]["train"]["with"]["exclude"]) == ["date", "reading_id"]
    share = pd.read_csv(data)["weather"].value_counts(normalize=True).iloc[0]
    gate = pipe["stages"]["evaluate"]["gates"]["accuracy"]
    assert gate == {
        "min": round(share + DUMMY_MARGIN * (1 - share), 3),
        "not_worse_than": "production",
        "tolerance": 0.01,
    }
    schema = yaml.safe_load((dest / "data/schema.yaml").read_text())
    assert list(schema["columns"]) == list(pd.read_csv(data).columns)
    commit_all(dest, "Start project")
    run = cli(["run"], cwd=dest)
    assert run.exit_code == 0, run.output
    assert "accuracy" in run.output and "FAIL" not in run.output
    metadata = (dest / "models/weather-classifier/metadata.json").read_text()
    assert '"date"' not in metadata.split('"features"')[1].split("]")[0]


@pytest.mark.slow
def test_diabetes_regression_runs_green(tmp_path: Path, cli):
    data = diabetes_csv(tmp_path / "diabetes.csv")
    dest = tmp_path / "diabetes"
    result = cli(["init", str(dest), "--data", str(data), "--target", "target"])
    assert result.exit_code == 0, result.output
    pipe = yaml.safe_load((dest / "pipeline.yaml").read_text())
    assert pipe["model"]["task"] == "regression"
    assert pipe["stages"]["evaluate"]["gates"] == {
        "r2": {"min": DUMMY_MARGIN, "not_worse_than": "production", "tolerance": 0.01}
    }
    assert pipe["monitoring"]["performance"]["metric"] == "r2"
    params = yaml.safe_load((dest / "params.yaml").read_text())
    assert params["train"]["estimator"] == "sklearn.linear_model.Ridge"
    assert params["split"]["stratify"] is False
    assert cli(["check"], cwd=dest).exit_code == 0
    commit_all(dest, "Start project")
    run = cli(["run"], cwd=dest)
    assert run.exit_code == 0, run.output
    assert "r2" in run.output


def test_task_and_time_options(tmp_path: Path, cli):
    data = weather_csv(tmp_path / "w.csv")
    dest = tmp_path / "p"
    result = cli(
        [
            "init",
            str(dest),
            "--data",
            str(data),
            "--target",
            "humidity",
            "--time",
            "date",
            "--task",
            "regression",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    project = load_project(dest)
    assert project.pipeline.model.task == "regression"
    assert "date" in project.stages["train"].args.exclude
    assert "span: {column: date" in (dest / "pipeline.yaml").read_text()  # the commented example


def test_data_inside_the_project_is_used_in_place(tmp_path: Path, cli):
    dest = tmp_path / "p"
    (dest / "inputs").mkdir(parents=True)
    data = weather_csv(dest / "inputs" / "my weather.csv")
    result = cli(["init", str(dest), "--data", str(data), "--target", "weather"])
    assert result.exit_code == 0, result.output
    project = load_project(dest)
    assert project.stages["ingest"].args.source == "inputs/my weather.csv"
    assert not (dest / "data/source").exists()
    assert project.pipeline.model.name == "my-weather-classifier"


def test_odd_column_names_are_quoted(tmp_path: Path, cli):
    data = tmp_path / "odd.csv"
    rows = ["id: x,rain? (y/n),temp #1"] + [
        f"{i},{'yes' if i % 3 else 'no'},{i % 17}.5" for i in range(60)
    ]
    data.write_text("\n".join(rows) + "\n")
    result = cli(["init", str(tmp_path / "p"), "--data", str(data), "--target", "rain? (y/n)"])
    assert result.exit_code == 0, result.output
    project = load_project(tmp_path / "p")
    assert project.pipeline.model.target == "rain? (y/n)"
    assert project.stages["train"].args.exclude == ["id: x"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "{d}/nope.csv", "--target", "y"], "no such file"),
        (["--data", "{d}/notes.txt", "--target", "y"], "not a .csv or .parquet file"),
        (["--data", "{d}/w.csv", "--target", "wether"], "did you mean 'weather'?"),
        (["--data", "{d}/w.csv", "--target", "weather", "--time", "day"], "--time 'day'"),
        (["--data", "{d}/w.csv", "--target", "weather", "--task", "regression"], "numeric"),
        (["--data", "{d}/w.csv", "--target", "weather", "--task", "ranking"], "--task"),
        (["--data", "{d}/one.csv", "--target", "label"], "a single class"),
        (["--data", "{d}/bad.csv", "--target", "a"], "could not be read"),
        (["--data", "{d}/w.csv"], "--data needs --target"),
        (["--target", "weather"], "describe a table given with --data"),
    ],
)
def test_bad_inputs_are_refused_with_what_to_do(tmp_path: Path, cli, args, message):
    weather_csv(tmp_path / "w.csv")
    (tmp_path / "notes.txt").write_text("a,b\n1,2\n")
    (tmp_path / "one.csv").write_text("label,x\n" + "same,1\n" * 30)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,4,5,6\n")
    dest = tmp_path / "p"
    result = cli(["init", str(dest), *[a.format(d=tmp_path) for a in args]])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert message in result.output
    assert not (dest / "pipeline.yaml").exists()


def test_refuses_to_overwrite(tmp_path: Path, cli):
    data = weather_csv(tmp_path / "w.csv")
    dest = tmp_path / "p"
    dest.mkdir()
    (dest / "pipeline.yaml").write_text("mine\n")
    result = cli(["init", str(dest), "--data", str(data), "--target", "weather"])
    assert result.exit_code == ExitCode.USAGE
    assert "already has pipeline.yaml" in result.output
    assert (dest / "pipeline.yaml").read_text() == "mine\n"


def test_validate_before_ingest_names_the_command_to_run(project: Path, cli):
    for args in (["validate"], ["validate", "--infer", "--force"]):
        result = cli(args, cwd=project)
        assert result.exit_code == ExitCode.USAGE, result.output
        assert "input data/raw/penguins.csv does not exist yet" in result.output
        assert "Run `mlops run ingest` first" in result.output
