"""The vectorised validation engine: lazy, per column and check, the same in one chunk or many."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlops.data.checks import validate_chunk
from mlops.data.validation import validate_table


def _schema() -> dict:
    return {
        "columns": {
            "id": {"dtype": "int64", "nullable": False, "unique": True},
            "x": {
                "dtype": "float64",
                "nullable": True,
                "checks": {"in_range": {"min_value": 0, "max_value": 10}},
            },
            "n": {"dtype": "int64", "nullable": False, "checks": {"greater_than_or_equal_to": 0}},
            "code": {
                "dtype": "str",
                "nullable": False,
                "checks": {"str_matches": "^[A-Z]{2}$", "str_length": {"min_value": 2}},
            },
            "tag": {"dtype": "str", "nullable": True, "checks": {"isin": ["a", "b"]}},
            "flag": {"dtype": "str", "nullable": True, "checks": {"notin": ["bad"]}},
        },
        "strict": True,
    }


def _frame(rows: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "x": rng.uniform(0, 10, rows),
            "n": rng.integers(0, 5, rows),
            "code": rng.choice(["AB", "CD"], rows),
            "tag": rng.choice(["a", "b"], rows),
            "flag": rng.choice(["ok", "fine"], rows),
        }
    )


def test_every_failure_is_collected_with_counts_examples_and_rows():
    df = _frame()
    df.loc[[10, 20, 30], "x"] = [-1.0, 11.0, np.inf]
    df.loc[[5, 6], "id"] = 7  # duplicates of row 7's id
    df.loc[40, "n"] = -3
    df.loc[50, "code"] = "abc"
    df.loc[[60, 61], "tag"] = "zzz"
    df.loc[70, "flag"] = "bad"
    failures = {f.check.split("(")[0] + ":" + f.column: f for f in validate_chunk(df, _schema())}
    assert failures["in_range:x"].count == 3
    assert failures["in_range:x"].rows == [10, 20, 30]
    assert failures["in_range:x"].examples == [-1.0, 11.0, float("inf")]
    assert failures["unique:id"].count == 3 and failures["unique:id"].rows == [5, 6, 7]
    assert failures["greater_than_or_equal_to:n"].rows == [40]
    assert failures["str_matches:code"].examples == ["abc"]
    assert "str_length:code" not in failures
    assert failures["isin:tag"].count == 2 and failures["isin:tag"].rows == [60, 61]
    assert failures["notin:flag"].rows == [70]
    assert len(failures) == 6


def test_types_nulls_and_columns():
    df = _frame(50)
    df["n"] = df["n"].astype(object)
    df.loc[3, "n"] = "three"
    df.loc[4, "n"] = 2.5  # not an integer
    df.loc[8, "code"] = None
    df = df.drop(columns=["tag"]).assign(surprise=1)
    got = {(f.column, f.check): f for f in validate_chunk(df, _schema())}
    assert got[("n", "dtype('int64')")].count == 2
    assert got[("n", "dtype('int64')")].examples == ["three", 2.5]
    assert got[("code", "not_nullable")].rows == [8]
    assert got[("tag", "column_in_dataframe")].count == 50
    assert got[("surprise", "column_in_schema")].count == 50


def test_chunked_validation_reports_whole_file_row_numbers(tmp_path: Path):
    df = _frame(30_000)
    df.loc[[5, 25_000], "x"] = 99.0
    df.loc[29_999, "id"] = 5  # duplicate across chunks
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    whole = validate_table(path, _schema())
    chunked = validate_table(path, _schema(), chunk_bytes=200_000)
    assert whole.chunks == 1 and chunked.chunks == 3

    def key(fs):  # duplicates split across chunks are found by hash: rows, not values
        return [(f.column, f.check, f.count, f.rows) for f in fs]

    assert key(chunked.failures) == key(whole.failures)
    by = {f.check.split("(")[0]: f for f in chunked.failures}
    assert by["in_range"].rows == [5, 25_000]
    assert by["unique"].rows == [5, 29_999] and by["unique"].count == 2


def test_a_check_the_engine_lacks_runs_through_pandera():
    df = pd.DataFrame({"v": [1, 2, 3, 4]})
    schema = {"columns": {"v": {"dtype": "int64", "checks": {"unique_values_eq": [1, 2, 3]}}}}
    (failure,) = validate_chunk(df, schema)
    assert failure.column == "v" and failure.check.startswith("unique_values_eq")
    assert failure.count >= 1


def calls_into(calls: list[tuple[int, int]]):
    return lambda done, total: calls.append((done, total))


def test_streaming_reports_progress_up_to_the_file_size(tmp_path: Path):
    df = _frame(40_000)
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    for p in (path, csv):
        calls: list[tuple[int, int]] = []
        report = validate_table(p, _schema(), chunk_bytes=300_000, progress=calls_into(calls))
        assert report.valid and report.rows == 40_000 and report.chunks > 1
        done = [d for d, _ in calls]
        assert done == sorted(done) and calls[-1] == (p.stat().st_size, p.stat().st_size)


def test_anomalies_against_the_previous_span():
    from mlops.config.models import AnomalySpec
    from mlops.data.profile import profile_frame
    from mlops.data.validation import anomalies

    before = profile_frame(_frame(1000))
    now = _frame(400)
    now.loc[:99, "x"] = np.nan  # 25% missing, was 0%
    now.loc[100:119, "x"] = np.inf  # 5% infinite, was 0%
    spec = AnomalySpec(min_rows=500, max_row_change=0.5, max_missing_increase=0.1)
    found = {
        (f.column, f.check.split("(")[0]): f for f in anomalies(profile_frame(now), before, spec)
    }
    assert set(found) == {
        ("<table>", "min_rows"),
        ("<table>", "row_count_change"),
        ("x", "missing_share_increase"),
    }
    assert found[("<table>", "row_count_change")].examples == ["1000 -> 400 rows (-60%)"]
    assert found[("x", "missing_share_increase")].examples == ["0.0% -> 25.0%"]
    spec.max_missing_increase = 0.04
    found = {f.check.split("(")[0] for f in anomalies(profile_frame(now), before, spec)}
    assert "infinite_share_increase" in found
    assert anomalies(profile_frame(_frame(1000)), before, AnomalySpec()) == []
