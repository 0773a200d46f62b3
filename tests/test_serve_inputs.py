"""Request bodies: MLflow's payload formats, CSV, and strict per-field validation."""

from __future__ import annotations

import json
import math

import pytest

from mlops.bundle.inputs import InputSpec, RequestError, parse_json
from tests.serve_helpers import FEATURES, ROW

SCHEMA = {
    "features": [
        {"name": "bill_length_mm", "dtype": "float64", "nullable": False, "min": 32.1, "max": 59.6},
        {"name": "bill_depth_mm", "dtype": "float64", "nullable": False, "min": 13.1, "max": 21.5},
        {
            "name": "flipper_length_mm",
            "dtype": "float64",
            "nullable": False,
            "min": 172,
            "max": 231,
        },
        {"name": "body_mass_g", "dtype": "float64", "nullable": False, "min": 2700, "max": 6300},
        {"name": "island", "dtype": "str", "nullable": False, "categories": ["Biscoe", "Dream"]},
        {"name": "sex", "dtype": "str", "nullable": True, "categories": ["female", "male"]},
    ]
}
ROW2 = dict(ROW, island="Dream", sex=None, bill_length_mm=45.0)
ROW = dict(ROW, island="Biscoe")


@pytest.fixture(scope="module")
def spec() -> InputSpec:
    return InputSpec.from_schema(SCHEMA)


def refused(fn, *args) -> RequestError:
    with pytest.raises(RequestError) as info:
        fn(*args)
    return info.value


def test_every_mlflow_format_and_csv_give_the_same_columns(spec: InputSpec):
    rows = [ROW, ROW2]
    split = {"columns": FEATURES, "data": [[r[f] for f in FEATURES] for r in rows]}
    columns = {f: [r[f] for r in rows] for f in FEATURES}
    csv = (
        ",".join(FEATURES)
        + "\n"
        + "\n".join(",".join("" if r[f] is None else str(r[f]) for f in FEATURES) for r in rows)
    )
    batches = [
        spec.from_invocations({"dataframe_split": split}, 100),
        spec.from_invocations({"dataframe_records": rows}, 100),
        spec.from_invocations({"instances": rows}, 100),
        spec.from_invocations({"inputs": rows}, 100),
        spec.from_invocations({"inputs": columns}, 100),
        spec.from_invocations({"instances": split["data"]}, 100),  # rows in schema order
        spec.from_invocations({"dataframe_split": {"data": split["data"]}}, 100),
        spec.from_csv(csv.encode(), 100),
        spec.from_records(rows, 100),
    ]
    first = batches[0]
    assert first.n == 2
    assert first.columns["sex"] == ["male", None]
    assert first.columns["bill_length_mm"] == [39.1, 45.0]
    for b in batches[1:]:
        assert b.n == 2 and b.columns == first.columns
    one = spec.from_records(ROW, 100)  # /predict takes a single record too
    assert one.n == 1 and one.columns["island"] == ["Biscoe"]


def test_extra_columns_are_ignored(spec: InputSpec):
    batch = spec.from_invocations({"dataframe_records": [dict(ROW, colour="red", year=2009)]}, 10)
    assert set(batch.columns) == set(FEATURES)


def test_every_problem_is_listed_per_field(spec: InputSpec):
    rows = [
        dict(ROW, bill_length_mm="long", island="Mars"),
        dict(ROW, bill_length_mm=99.0, bill_depth_mm=None, sex=3),
        dict(ROW, flipper_length_mm=True),
    ]
    for r in rows:
        r.pop("body_mass_g")
    err = refused(spec.from_invocations, {"dataframe_records": rows}, 10)
    assert err.status == 422 and err.error == "invalid_input"
    fields = err.extra["fields"]
    assert set(fields) == {
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "island",
        "sex",
    }
    assert fields["body_mass_g"]["problems"] == ["missing column"]
    bl = fields["bill_length_mm"]["problems"]
    assert [p["row"] for p in bl] == [0, 1]
    assert "must be a number, got a string" in bl[0]["problem"]
    assert "outside the accepted range [32.1, 59.6]" in bl[1]["problem"]
    assert "not nullable" in fields["bill_depth_mm"]["problems"][0]["problem"]
    assert "got a boolean" in fields["flipper_length_mm"]["problems"][0]["problem"]
    assert fields["island"]["problems"][0] == {
        "row": 0,
        "value": "Mars",
        "problem": 'is not one of ["Biscoe", "Dream"]',
    }
    assert "must be a string" in fields["sex"]["problems"][0]["problem"]
    assert "6 fields" in err.message
    described = {s["name"] for s in err.to_dict()["schema"]}
    assert described == set(fields)


def test_long_lists_of_problems_are_capped_but_counted(spec: InputSpec):
    rows = [dict(ROW, island="Mars") for _ in range(50)]
    err = refused(spec.from_invocations, {"dataframe_records": rows}, 100)
    island = err.extra["fields"]["island"]
    assert island["count"] == 50 and len(island["problems"]) == 20


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (float("nan"), "not nullable"),
        (float("inf"), "not a finite number"),
        (10**400, "outside the accepted range"),
        (1e308, "outside the accepted range"),
        ([1, 2], "got a list"),
        ({"a": 1}, "got an object"),
    ],
)
def test_odd_numbers_and_shapes_are_422(spec: InputSpec, value, why):
    err = refused(spec.from_records, [dict(ROW, bill_length_mm=value)], 10)
    assert err.status == 422
    assert why in err.extra["fields"]["bill_length_mm"]["problems"][0]["problem"]
    json.dumps(err.to_dict())  # the body is always serialisable


def test_nan_is_a_missing_value_where_nulls_are_allowed():
    schema = json.loads(json.dumps(SCHEMA))
    schema["features"][0]["nullable"] = True
    spec = InputSpec.from_schema(schema)
    body = parse_json(b'{"dataframe_records": [{"bill_length_mm": NaN}]}')
    rows = [dict(ROW, bill_length_mm=body["dataframe_records"][0]["bill_length_mm"])]
    assert math.isnan(spec.from_records(rows, 10).columns["bill_length_mm"][0])


def test_integer_features_refuse_fractions():
    spec = InputSpec.from_schema(
        {"features": [{"name": "n", "dtype": "int64", "nullable": False, "min": 0, "max": 9}]}
    )
    assert spec.from_records([{"n": 3}, {"n": 4.0}], 10).columns["n"] == [3.0, 4.0]
    err = refused(spec.from_records, [{"n": 3.5}], 10)
    assert "must be an integer" in err.extra["fields"]["n"]["problems"][0]["problem"]


def test_range_margin_widens_the_accepted_range():
    spec = InputSpec.from_schema(SCHEMA, range_margin=0.5)  # 32.1..59.6 -> 18.35..73.35
    assert spec.from_records([dict(ROW, bill_length_mm=70.0)], 10).n == 1
    assert refused(spec.from_records, [dict(ROW, bill_length_mm=80.0)], 10).status == 422


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"", 400, "bad_json"),
        (b"{", 400, "bad_json"),
        (b"\xff\xfe\x00garbage", 400, "bad_json"),
        (b"[" * 100_000, 400, "bad_json"),
        (b"[1, 2]", 400, "bad_format"),
        (b'"x"', 400, "bad_format"),
        (b"{}", 400, "bad_format"),
        (b'{"dataframe_records": 5}', 400, "bad_format"),
        (b'{"dataframe_records": [1]}', 400, "bad_format"),
        (b'{"dataframe_split": {"data": [[1]]}}', 400, "bad_format"),
        (b'{"dataframe_split": {"columns": [1], "data": [[1]]}}', 400, "bad_format"),
        (b'{"inputs": [], "instances": []}', 400, "bad_format"),
        (b'{"inputs": {"island": [1], "sex": [1, 2]}}', 400, "bad_format"),
        (b'{"inputs": [null]}', 400, "bad_format"),
        (b'{"dataframe_records": []}', 422, "no_rows"),
        (b'{"dataframe_records": [{}]}', 422, "invalid_input"),
    ],
)
def test_malformed_bodies(spec: InputSpec, body: bytes, status: int, error: str):
    def go():
        spec.from_invocations(parse_json(body), 100)

    err = refused(go)
    assert (err.status, err.error) == (status, error)
    if status == 400:
        assert err.message


def test_too_many_rows_is_413(spec: InputSpec):
    for payload in (
        {"dataframe_records": [ROW] * 11},
        {"dataframe_split": {"columns": FEATURES, "data": [list(ROW.values())] * 11}},
        {"inputs": {f: [ROW[f]] * 11 for f in FEATURES}},
    ):
        assert refused(spec.from_invocations, payload, 10).status == 413
    csv = (",".join(FEATURES) + "\n" + "1,2,3,4,Biscoe,male\n" * 11).encode()
    assert refused(spec.from_csv, csv, 10).status == 413


def test_csv_problems(spec: InputSpec):
    header = ",".join(FEATURES)
    assert refused(spec.from_csv, b"", 10).status == 400
    assert refused(spec.from_csv, f"{header}\n1,2\n".encode(), 10).status == 400
    assert refused(spec.from_csv, b"\xff\xfe", 10).error == "bad_csv"
    err = refused(spec.from_csv, f"{header}\nx,18.7,181,3750,Biscoe,\n".encode(), 10)
    assert err.status == 422 and "must be a number" in str(err.extra["fields"])
