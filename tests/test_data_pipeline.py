"""Data in the pipeline: invalid data stops `mlops run` at validate, span drift is recorded and
pipeline.yaml decides what it means; `mlops validate` reports in the terminal, JSON, Markdown
and HTML. Real git, DVC and scikit-learn (the session's trained project, copied)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mlops.errors import ExitCode
from tests.helpers import replace_in

pytestmark = pytest.mark.slow
BUNDLE = "models/penguins-classifier"


def edit_csv(path: Path, change) -> None:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows, fields = change(rows)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def test_corrupt_data_stops_the_run_and_lists_every_problem(trained: Path, cli):
    lock_before = (trained / "dvc.lock").read_bytes()
    model_before = (trained / BUNDLE / "model.skops").read_bytes()

    def corrupt(rows):
        rows[0]["island"] = "Atlantis"  # unseen category
        rows[1]["bill_length_mm"] = "oops"  # a string in a numeric column
        rows[2]["flipper_length_mm"] = "999"  # out of range
        for r in rows:
            del r["sex"]  # a dropped column
        return rows, [f for f in rows[0]]

    edit_csv(trained / "data/source/penguins.csv", corrupt)
    result = cli(["run"], cwd=trained)
    assert result.exit_code == ExitCode.DATA_VALIDATION, result.output
    for expected in ("Atlantis", "'oops'", "999", "column_in_dataframe", "sex", "4 failed checks"):
        assert expected in result.output, expected
    assert (trained / "dvc.lock").read_bytes() == lock_before
    assert (trained / BUNDLE / "model.skops").read_bytes() == model_before
    report = json.loads((trained / "reports/validation.json").read_text())
    assert report["valid"] is False and len(report["failures"]) == 4
    assert {f["column"] for f in report["failures"]} == {
        "island",
        "bill_length_mm",
        "flipper_length_mm",
        "sex",
    }


def test_span_drift_is_recorded_and_pipeline_yaml_decides(trained: Path, cli):
    lock_before = (trained / "dvc.lock").read_bytes()
    pipe = trained / "pipeline.yaml"
    replace_in(
        pipe,
        "      output: data/raw/penguins.csv\n",
        "      output: data/raw/penguins.csv\n"
        "      span: {column: island, from: Biscoe, to: Biscoe}\n",
    )
    assert "on_drift: continue" in pipe.read_text()  # the template's setting
    replace_in(pipe, "on_drift: continue", "on_drift: stop")
    stopped = cli(["run"], cwd=trained)
    assert stopped.exit_code == ExitCode.DATA_VALIDATION, stopped.output
    assert "DATASET DRIFT" in stopped.output and "on_drift: stop" in stopped.output
    assert (trained / "dvc.lock").read_bytes() == lock_before

    replace_in(pipe, "on_drift: stop", "on_drift: continue")
    went_on = cli(["run"], cwd=trained)
    assert went_on.exit_code == 0, went_on.output
    report = json.loads((trained / "reports/validation.json").read_text())
    assert report["action"] == "continue"
    previous = report["drift"]["previous"]
    assert previous["dataset_drift"] is True
    assert "species" in previous["drifted"] and "island" in previous["drifted"]
    profile = json.loads((trained / "reports/profile.json").read_text())
    assert profile["rows"] == 168 and profile["columns"]["island"]["top"] == {"Biscoe": 168}

    # the whole source against this span's profile, with `retrain`: a standalone check exits 7
    replace_in(pipe, "on_drift: continue", "on_drift: retrain")
    checked = cli(["validate", "data/source/penguins.csv", "--json"], cwd=trained)
    assert checked.exit_code == ExitCode.MONITOR_BREACH, checked.output
    assert json.loads(checked.output)["action"] == "retrain"


def test_validate_command_reports_against_the_model_reference(trained: Path, cli):
    ref = json.loads((trained / BUNDLE / "reference.json").read_text())
    assert ref["format"] == 2 and ref["target"] == "species"
    assert ref["columns"]["body_mass_g"]["sketch"]["exact"] is True
    result = cli(
        [
            "validate",
            "--reference",
            BUNDLE,
            "--html",
            "report.html",
            "--markdown",
            "report.md",
            "--json",
        ],
        cwd=trained,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["valid"] is True and data["action"] == "ok"
    assert data["drift"]["reference"]["dataset_drift"] is False
    assert data["drift"]["previous"]["drifted"] == []  # same data as the last run's profile
    page = (trained / "report.html").read_text()
    assert page.count("<svg") == len(data["drift"]["reference"]["columns"]) + len(
        data["drift"]["previous"]["columns"]
    )
    assert "<script" not in page and "flipper_length_mm" in page
    md = (trained / "report.md").read_text()
    assert "| column | type | method | score | drift when | drifted |" in md
    terminal = cli(["validate", "--reference", BUNDLE], cwd=trained)
    assert terminal.exit_code == 0 and "no dataset drift" in terminal.output
    printed = cli(["validate", "--markdown", "-"], cwd=trained)
    assert printed.output.startswith("## Data validation: `data/raw/penguins.csv`")
