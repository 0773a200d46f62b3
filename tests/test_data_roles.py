"""Identifier and time columns are recognised; measurements and categories are not."""

import numpy as np
import pandas as pd

from mlops.data.roles import IDENTIFIER, TIME, infer_roles


def test_identifier_time_and_features_told_apart():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": [f"row-{i}" for i in range(60)],
            "counter": range(60),
            "day": pd.date_range("2020-01-01", periods=60).astype(str),
            "stamp": pd.date_range("2020-01-01", periods=60),
            "length": rng.normal(size=60),
            "colour": ["red", "blue", "green"] * 20,
            "label": [0, 1] * 30,
        }
    )
    roles = infer_roles(frame, target="label")
    assert {c: r.role for c, r in roles.items()} == {
        "id": IDENTIFIER,
        "counter": TIME,
        "day": TIME,
        "stamp": TIME,
    }
    assert "not a feature" in roles["day"].line()


def test_target_and_small_frames_are_never_flagged():
    frame = pd.DataFrame({"key": [f"k{i}" for i in range(10)], "y": range(10)})
    assert infer_roles(frame) == {}
    frame = pd.DataFrame({"key": [f"k{i}" for i in range(30)]})
    assert infer_roles(frame, target="key") == {}
