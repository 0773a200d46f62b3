"""Serving accepts what the data contract allows: ranges from data/schema.yaml, the training
split's range kept as drift information; --range-margin still widens."""

from __future__ import annotations

import pandas as pd
import pytest
from palmerpenguins import load_penguins

from mlops.bundle.inputs import InputSpec, RequestError
from mlops.data.schema import infer_schema
from mlops.stages.train import input_schema

NUMERIC = ["bill_length_mm", "body_mass_g"]


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = load_penguins().dropna().reset_index(drop=True)
    light = df[df.body_mass_g < 4000]  # the training split never saw a heavy penguin
    return df, light


def test_contract_ranges_are_served_and_the_training_range_is_kept(frames):
    df, light = frames
    contract = infer_schema(df)  # the contract covers every real penguin
    schema = input_schema(light, NUMERIC, ["island"], contract)
    mass = next(f for f in schema["features"] if f["name"] == "body_mass_g")
    assert mass["max"] == 6300 and mass["train_max"] < 4000
    assert mass["range_source"] == "data contract"
    spec = InputSpec.from_schema(schema)
    heavy = {"bill_length_mm": [45.0], "body_mass_g": [6000.0], "island": ["Biscoe"]}
    assert spec.check(heavy, 1).n == 1  # a real value the contract allows is served
    too_heavy = {**heavy, "body_mass_g": [9000.0]}
    with pytest.raises(RequestError):
        spec.check(too_heavy, 1)
    wide = InputSpec.from_schema(schema, range_margin=1.0)  # the margin still widens
    assert wide.check(too_heavy, 1).n == 1


def test_without_a_contract_the_training_range_is_the_check(frames):
    _, light = frames
    schema = input_schema(light, NUMERIC, ["island"])
    mass = next(f for f in schema["features"] if f["name"] == "body_mass_g")
    assert mass["max"] < 4000 and mass["range_source"] == "training data"
    with pytest.raises(RequestError):
        InputSpec.from_schema(schema).check(
            {"bill_length_mm": [45.0], "body_mass_g": [6000.0], "island": ["Biscoe"]}, 1
        )
