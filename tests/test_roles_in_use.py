"""Identifier and time columns found by `mlops.data.roles` are flagged in the inferred schema,
left out of span drift (with a note saying so) and out of the training features."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from palmerpenguins import load_penguins

from mlops.config.models import TrainWith
from mlops.data.commands import infer_project
from mlops.data.profile import profile_frame
from mlops.data.roles import roles_in_schema
from mlops.data.schema import read_schema, validate_frame
from mlops.data.validation import Checks, validate_table
from mlops.stages.train import _roles


def penguins_with_ids(start: int) -> pd.DataFrame:
    df = load_penguins().dropna().reset_index(drop=True)
    df["penguin_id"] = [f"P{start + i:05d}" for i in range(len(df))]
    df["seen"] = pd.date_range("2020-01-01", periods=len(df), freq="D").strftime("%Y-%m-%d")
    return df


def test_inferred_schema_flags_identifier_and_time_columns(tmp_path: Path):
    data = tmp_path / "penguins.csv"
    penguins_with_ids(0).to_csv(data, index=False)
    result = infer_project(tmp_path, str(data), schema="schema.yaml")
    assert sorted(roles_in_schema(result.schema)) == ["penguin_id", "seen"]
    assert any(line.startswith("seen: time column") for line in result.roles)
    assert "role: identifier" in (tmp_path / "schema.yaml").read_text()
    schema = read_schema(tmp_path / "schema.yaml")  # still a valid contract
    assert validate_frame(penguins_with_ids(0), schema) == []
    assert json.dumps(result.to_dict())  # machine-readable, roles included


def test_span_drift_leaves_them_out_and_says_so(tmp_path: Path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    penguins_with_ids(0).to_csv(first, index=False)
    later = penguins_with_ids(50_000)  # every id and date new: always "drifted" if compared
    later["seen"] = pd.date_range("2024-01-01", periods=len(later), freq="D").strftime("%Y-%m-%d")
    later.to_csv(second, index=False)
    schema = infer_project(tmp_path, str(first), schema="schema.yaml").schema
    previous = validate_table(first, schema).profile
    report = validate_table(second, schema, Checks(previous=previous))
    compared = [c.column for c in report.previous.columns]
    assert "penguin_id" not in compared and "seen" not in compared and "bill_length_mm" in compared
    assert any("not checked for drift" in n and "penguin_id" in n for n in report.notes)
    assert report.previous.drifted == []
    # without the roles in the schema the same comparison flags both columns as drift
    unmarked = validate_table(second, None, Checks(previous=profile_frame(penguins_with_ids(0))))
    assert {"penguin_id", "seen"} <= set(unmarked.previous.drifted)


def test_training_leaves_them_out_unless_kept():
    df = penguins_with_ids(0)
    assert sorted(_roles(df, "species", TrainWith())) == ["penguin_id", "seen"]
    assert sorted(_roles(df, "species", TrainWith(keep=["seen"]))) == ["penguin_id"]
    assert list(_roles(df, "species", TrainWith(exclude=["penguin_id"]))) == ["seen"]
