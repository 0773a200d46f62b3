"""The data contract: inferred, written as pandera YAML, read back unchanged; pandera reads it and
agrees with the vectorised engine."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pytest
from palmerpenguins import load_penguins
from pandera.io.pandas_io import deserialize_schema, serialize_schema

from mlops.data.checks import validate_chunk
from mlops.data.schema import infer_schema, read_schema, validate_frame, write_schema
from mlops.errors import ExitCode
from tests.helpers import replace_in


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load_penguins()


def corrupt(df: pd.DataFrame) -> pd.DataFrame:
    """The four corruptions of the acceptance test, plus a null where none is allowed."""
    bad = df.drop(columns=["sex"]).copy()
    bad["bill_length_mm"] = bad["bill_length_mm"].astype(object)
    bad.loc[3, "bill_length_mm"] = "n/a"
    bad.loc[5, "bill_length_mm"] = "abc"
    bad.loc[7, "flipper_length_mm"] = 999.0
    bad.loc[9, "island"] = "Atlantis"
    bad.loc[10, "species"] = None
    bad["extra"] = 1
    return bad


def test_inferred_schema_round_trips_through_yaml(tmp_path: Path, penguins: pd.DataFrame):
    schema = infer_schema(penguins, tolerance=0.05)
    path = tmp_path / "schema.yaml"
    write_schema(path, schema)
    assert read_schema(path) == schema
    # pandera reads the file, and the schema it builds is the one built from the dict
    from_file = pa.DataFrameSchema.from_yaml(path)
    assert from_file == deserialize_schema(schema)
    # and pandera's own serialisation of it comes back to the same schema
    assert deserialize_schema(serialize_schema(from_file)) == from_file
    # nothing was lost on the way: every column, dtype, nullability and check survives
    cols = from_file.columns
    assert list(cols) == list(penguins.columns)
    assert cols["island"].checks[0].statistics["allowed_values"] == ["Biscoe", "Dream", "Torgersen"]
    assert cols["bill_length_mm"].nullable and not cols["species"].nullable
    rng = cols["year"].checks[0].statistics
    assert (rng["min_value"], rng["max_value"]) == (2006, 2010)  # widened by 5%, whole
    assert from_file.strict is True


def test_inference_tolerance_and_uniqueness(penguins: pd.DataFrame):
    plain = infer_schema(penguins)["columns"]["body_mass_g"]["checks"]["in_range"]
    assert plain == {"min_value": 2700, "max_value": 6300}
    wide = infer_schema(penguins, tolerance=0.1)["columns"]["body_mass_g"]["checks"]["in_range"]
    assert wide == {"min_value": 2340, "max_value": 6660}
    with_id = penguins.assign(penguin_id=range(len(penguins)))
    cols = infer_schema(with_id)["columns"]
    assert cols["penguin_id"].get("unique") is True
    assert "unique" not in cols["bill_length_mm"] and "unique" not in cols["year"]


def test_valid_data_passes_both_engines(penguins: pd.DataFrame):
    schema = infer_schema(penguins)
    assert validate_chunk(penguins, schema) == []
    assert validate_frame(penguins, schema) == []


def test_engine_finds_what_pandera_finds(penguins: pd.DataFrame):
    schema = infer_schema(penguins)
    bad = corrupt(penguins)
    ours = {(f.column, f.check): f for f in validate_chunk(bad, schema)}
    theirs = validate_frame(bad, schema)
    # pandera reports missing/extra columns on the frame, with the column as the failure case
    pandera_keys = {
        (f.examples[0], f.check) if f.check.startswith("column_in") else (f.column, f.check)
        for f in theirs
        if "TypeError" not in str(f.examples)  # pandera also trips over the string it found
    }
    assert set(ours) == pandera_keys
    assert ours[("island", "isin(['Biscoe', 'Dream', 'Torgersen'])")].rows == [9]
    assert ours[("bill_length_mm", "dtype('float64')")].examples == ["n/a", "abc"]
    assert ours[("bill_length_mm", "dtype('float64')")].rows == [3, 5]
    assert ours[("flipper_length_mm", "in_range(172, 231)")].examples == [999.0]
    assert ours[("species", "not_nullable")].count == 1
    assert ours[("sex", "column_in_dataframe")].count == len(bad)


def test_validate_infer_writes_and_refuses_to_overwrite(project: Path, cli):
    schema = project / "data/schema.yaml"
    schema.unlink()
    result = cli(["validate", "data/source/penguins.csv", "--infer", "--json"], cwd=project)
    assert result.exit_code == 0, result.output
    assert "island" in schema.read_text()
    again = cli(["validate", "data/source/penguins.csv", "--infer"], cwd=project)
    assert again.exit_code == ExitCode.USAGE
    assert "--force" in again.output
    forced = cli(
        ["validate", "data/source/penguins.csv", "--infer", "--force", "--tolerance", "0.1"],
        cwd=project,
    )
    assert forced.exit_code == 0, forced.output
    assert "min_value: 2340" in schema.read_text()


def test_drift_and_anomaly_settings_are_checked(project: Path, cli):
    pipe = project / "pipeline.yaml"
    replace_in(pipe, "on_drift: continue}", "on_drift: sometimes}\n      anomalies: {min_rowz: 3}")
    result = cli(["check"], cwd=project)
    assert result.exit_code == ExitCode.USAGE
    assert "stages.validate.with.drift.on_drift" in result.output
    assert "stages.validate.with.anomalies.min_rowz: unknown key" in result.output
