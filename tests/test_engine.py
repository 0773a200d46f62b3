"""The engine setting and the pieces the Dask path is built from, without a cluster: states of
partitions merge into the profile and the failures of the whole table, CSV blocks parse like
the local chunks, incremental training over chunks, streamed writes, remote settings."""

from __future__ import annotations

import json
from pathlib import Path

# the dask extra is part of the test install (scripts/test.sh): without it these tests fail
import dask.dataframe  # noqa: F401
import numpy as np
import pandas as pd
import pytest

from mlops.config import load_project
from mlops.config.models import EngineSpec, IncrementalSpec
from mlops.data.columns import summarize_frame
from mlops.data.profile import Profiler
from mlops.data.validation import validate_chunks
from mlops.engine.cluster import scheduler_address
from mlops.engine.frames import partitions, read_dask, write_frames
from mlops.engine.profiling import expected_dtypes, merge_states, partition_state, reduce_tree
from mlops.errors import ConfigError, UsageError

SCHEMA = {
    "columns": {
        "x": {
            "dtype": "float64",
            "nullable": True,
            "checks": {"in_range": {"min_value": -10, "max_value": 10}},
        },
        "n": {"dtype": "int64", "nullable": False},
        "c": {"dtype": "str", "nullable": False, "checks": {"isin": ["a", "b", "c"]}},
    },
    "strict": True,
}


def table(rows: int = 30_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.normal(0, 2, rows),
            "n": rng.integers(0, 50, rows),
            "c": rng.choice(["a", "b", "c"], rows),
        }
    )
    df.loc[df.sample(300, random_state=1).index, "x"] = np.nan
    return df


def corrupt(df: pd.DataFrame) -> pd.DataFrame:
    df = df.astype({"n": "object"})
    df.loc[12_345, "x"] = 99.0  # out of range
    df.loc[25_001, "x"] = -50.0
    df.loc[20_002, "c"] = "zebra"  # outside the vocabulary
    df.loc[29_000, "n"] = None  # not nullable
    return df


def test_partition_states_merge_to_the_profile_and_failures_of_the_whole_table():
    df = corrupt(table())
    chunks = [df.iloc[i : i + 7_000].reset_index(drop=True) for i in range(0, len(df), 7_000)]
    expected = expected_dtypes(SCHEMA, chunks[0])
    states = [partition_state(c, SCHEMA, expected) for c in chunks]
    merged = reduce_tree(states, fan_in=2).compute(scheduler="sync")
    local = validate_chunks(chunks, SCHEMA)

    assert merged.rows == len(df) and merged.partitions == len(chunks) == 5
    got = [(f.column, f.check, f.count, f.rows, f.examples) for f in merged.validator.finish()]
    want = [(f.column, f.check, f.count, f.rows, f.examples) for f in local.failures]
    assert got == want
    assert {r for _, _, _, rows, _ in got for r in rows} == {12_345, 25_001, 20_002, 29_000}

    profile = merged.profiler.result()
    for name, col in local.profile["columns"].items():
        mine = profile["columns"][name]
        for key in ("count", "missing", "infinite", "invalid", "zeros", "min", "max", "top"):
            assert mine.get(key) == col.get(key), (name, key)
        for key in ("mean", "std"):
            if key in col:
                assert mine[key] == pytest.approx(col[key], rel=1e-12), (name, key)
    # the same chunks merged left to right give the local sketch exactly
    folded = merge_states(*[partition_state(c, SCHEMA, expected) for c in chunks])
    x_local = local.profile["columns"]["x"]["sketch"]
    assert folded.profiler.result()["columns"]["x"]["sketch"] == x_local


def test_merged_sketch_of_many_partitions_stays_close_to_the_exact_distribution():
    df = table(200_000, seed=3)
    parts = [df.iloc[i : i + 10_000] for i in range(0, len(df), 10_000)]
    profiler = Profiler()
    profiler.add(summarize_frame(df))
    exact = profiler.result()["columns"]["x"]["quantiles"]
    states = [partition_state(p, None, {}) for p in parts]
    merged = reduce_tree(states).compute(scheduler="sync").profiler.result()
    for q, v in merged["columns"]["x"]["quantiles"].items():
        assert v == pytest.approx(exact[q], abs=0.01 * 2), q  # 1% of a std (2) per point


def test_csv_blocks_parse_like_local_chunks_so_a_bad_cell_deep_in_the_file_is_a_failure(
    tmp_path: Path,
):
    df = table(20_000)
    df["n"] = df["n"].astype(str)
    df.loc[18_000, "n"] = "oops"  # a string deep in an int column
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    ddf = read_dask(str(path), partition_bytes=100_000)
    parts = partitions(ddf)
    assert len(parts) > 3
    expected = expected_dtypes(SCHEMA, ddf._meta)
    states = [partition_state(p, SCHEMA, expected) for p in pd_parts(parts)]
    merged = merge_states(*states)
    failures = merged.validator.finish()
    assert merged.rows == 20_000
    dtype = [f for f in failures if f.check.startswith("dtype")]
    assert len(dtype) == 1 and dtype[0].column == "n" and dtype[0].rows == [18_000]
    assert dtype[0].examples == ["oops"]


def pd_parts(parts: list) -> list[pd.DataFrame]:
    import dask

    return list(dask.compute(*parts, scheduler="sync"))


def test_read_dask_takes_directories_and_globs_in_name_order(tmp_path: Path):
    df = table(3_000)
    for i in range(3):
        df.iloc[i * 1000 : (i + 1) * 1000].to_csv(tmp_path / f"p{i}.csv", index=False)
    by_dir = pd.concat(pd_parts(partitions(read_dask(str(tmp_path)))), ignore_index=True)
    by_glob = pd.concat(
        pd_parts(partitions(read_dask(str(tmp_path / "p*.csv")))), ignore_index=True
    )
    pd.testing.assert_frame_equal(by_dir, by_glob)
    np.testing.assert_allclose(by_dir["x"], df["x"], rtol=1e-12)  # NaN where df has NaN
    (tmp_path / "odd.parquet").write_bytes(b"")
    with pytest.raises(UsageError, match="mixes CSV and Parquet"):
        read_dask(str(tmp_path))
    with pytest.raises(UsageError, match="does not exist"):
        read_dask(str(tmp_path / "nothing-*.csv"))


def test_write_frames_streams_one_file_or_a_directory_of_parts(tmp_path: Path):
    a = pd.DataFrame({"x": [1, 2], "s": ["p", "q"]})
    b = pd.DataFrame({"x": [3.5, None], "s": ["r", None]})  # int column became float here
    rows, width, parts = write_frames(iter([a, b]), tmp_path / "out.csv")
    assert (rows, width, parts) == (4, 2, 2)
    assert pd.read_csv(tmp_path / "out.csv")["x"].tolist()[:3] == [1, 2, 3.5]
    write_frames(iter([a, b]), tmp_path / "out.parquet")  # int, then float: float
    assert pd.read_parquet(tmp_path / "out.parquet")["x"].tolist()[:3] == [1.0, 2.0, 3.5]
    with pytest.raises(UsageError, match="disagree on column types"):
        write_frames(iter([b, a.assign(x=["p", "q"])]), tmp_path / "o.pq")
    assert not (tmp_path / "o.pq").exists()  # nothing half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.parquet"]
    write_frames(iter([a, b]), tmp_path / "dataset")
    assert sorted(p.name for p in (tmp_path / "dataset").iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    write_frames(iter([a]), tmp_path / "dataset")  # replaces the whole directory
    assert len(list((tmp_path / "dataset").iterdir())) == 1


def test_incremental_training_over_local_chunks(tmp_path: Path):
    from mlops.stages.incremental import LocalChunks, fit_incremental, schema_from_profile
    from mlops.stages.train import build_pipeline

    rng = np.random.default_rng(0)
    n = 40_000
    df = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.normal(5, 3, n)})
    df["g"] = rng.choice(["u", "v", "w", "rare"], n, p=[0.4, 0.3, 0.29999, 0.00001])
    df["y"] = np.where(df["a"] + (df["b"] - 5) / 3 + (df["g"] == "u") > 0.5, "yes", "no")
    df.loc[::97, "b"] = np.nan
    path = tmp_path / "train.csv"
    df.to_csv(path, index=False)
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    pipe = build_pipeline(["a", "b"], ["g"], SGDClassifier(random_state=0))
    chunks = LocalChunks(path, chunk_bytes=300_000)
    fitted, record, categories = fit_incremental(
        chunks, pipe, ["a", "b"], ["g"], "y", "classification", IncrementalSpec(epochs=3), 7
    )
    assert record["rows"] == n and record["chunks"] > 3 and record["epochs"] == 3
    assert record["sample_rows"] == n  # fewer rows than sample_rows: the sample is everything
    assert categories["g"] == sorted({"u", "v", "w"} | set(df["g"]))
    assert list(fitted.classes_) == ["no", "yes"]
    assert (fitted.predict(df[["a", "b", "g"]]) == df["y"]).mean() > 0.9
    small = IncrementalSpec(epochs=1, sample_rows=1_000)
    again, record, _ = fit_incremental(
        chunks,
        build_pipeline(["a", "b"], ["g"], SGDClassifier(random_state=0)),
        ["a", "b"],
        ["g"],
        "y",
        "classification",
        small,
        7,
    )
    assert 800 < record["sample_rows"] < 1_200
    assert (again.predict(df[["a", "b", "g"]]) == df["y"]).mean() > 0.85
    with pytest.raises(UsageError, match="no partial_fit"):
        fit_incremental(
            chunks,
            build_pipeline(["a"], [], LogisticRegression()),
            ["a"],
            [],
            "y",
            "classification",
            small,
        )
    # every feature is nullable, as in train.input_schema (the pipeline imputes it)
    profile = {"columns": {"a": {"dtype": "float64", "missing": 0, "min": -1.0, "max": 2.0}}}
    profile["columns"]["g"] = {"dtype": "str", "missing": 3, "top": {"u": 5}}
    schema = schema_from_profile(profile, ["a"], ["g"], {"g": ["u", "v"]})
    assert schema["features"] == [
        {
            "name": "a",
            "dtype": "float64",
            "nullable": True,
            "min": -1.0,
            "max": 2.0,
            "range_source": "training data",  # no data contract: as train.input_schema
        },
        {"name": "g", "dtype": "str", "nullable": True, "categories": ["u", "v"]},
    ]


# ---- configuration ----------------------------------------------------------------------

PIPELINE = """\
version: 1
model: {name: demo, target: y}
stages:
  fit: {cmd: python fit.py}
"""


def check(root: Path, extra: str) -> list:
    (root / "pipeline.yaml").write_text(PIPELINE + extra)
    try:
        load_project(root)
    except ConfigError as exc:
        return [f"{i.path}: {i.message}" for i in exc.issues]
    return []


def test_engine_setting_shorthand_defaults_and_errors(tmp_path: Path):
    assert check(tmp_path, "engine: dask\n") == []
    assert load_project(tmp_path).pipeline.engine.kind == "dask"
    assert check(tmp_path, "") == [] and load_project(tmp_path).pipeline.engine.kind == "local"
    found = check(tmp_path, "engine: {kind: local, scheduler: tcp://h:8786}\n")
    assert found == ["engine: `scheduler:` needs `kind: dask`"]
    found = check(tmp_path, "engine: {kind: dask, scheduler: tcp://h:8786, workers: 3}\n")
    assert found == ["engine: `workers:` sizes a cluster mlops starts (`scheduler: local`)"]
    assert check(tmp_path, "engine: {kind: dask, scheduler: local, workers: 3}\n") == []
    assert check(tmp_path, "engine: spark\n")[0].startswith("engine.kind:")


def test_scheduler_address_comes_from_pipeline_yaml_then_the_environment():
    env = {"DASK_SCHEDULER_ADDRESS": "tcp://env:8786"}
    named = EngineSpec(kind="dask", scheduler="tcp://file:8786")
    assert scheduler_address(named, env) == ("tcp://file:8786", "pipeline.yaml")
    plain = EngineSpec(kind="dask")
    assert scheduler_address(plain, env) == ("tcp://env:8786", "DASK_SCHEDULER_ADDRESS")
    with pytest.raises(UsageError) as info:
        scheduler_address(plain, {})
    assert "DASK_SCHEDULER_ADDRESS" in (info.value.hint or "")


def test_remote_credentials_are_refused_in_pipeline_yaml(tmp_path: Path):
    ok = "remote: {name: shared, url: s3://bucket/store, options: {region: eu-west-1}}\n"
    assert check(tmp_path, ok) == []
    found = check(tmp_path, "remote: {url: s3://b/p, options: {secret_access_key: x}}\n")
    assert len(found) == 1 and "secrets never go in pipeline.yaml" in found[0]
    found = check(tmp_path, "remote: {url: 'https://user:pw@host/dvc'}\n")
    assert len(found) == 1 and "credentials do not belong in the remote URL" in found[0]


def test_remote_options_reach_the_dvc_config(project: Path):
    from mlops.adapters import dvc

    log = project / ".mlops" / "logs" / "t.log"
    opts = {"endpointurl": "http://127.0.0.1:9000", "version_aware": True}
    assert not dvc.remote_configured(project, "shared", "s3://bucket/store", opts)
    dvc.configure_remote(project, "shared", "s3://bucket/store", log, opts)
    text = (project / ".dvc" / "config").read_text()
    assert "endpointurl = http://127.0.0.1:9000" in text and "version_aware = true" in text
    assert dvc.remote_configured(project, "shared", "s3://bucket/store", opts)
    assert not dvc.remote_configured(project, "shared", "s3://bucket/store", {})
    assert dvc.remote_plugin_missing("s3://bucket/store") is None  # the s3 extra is installed
    assert dvc.remote_plugin_missing(".mlops/remote") is None


def test_engine_command_without_dask_settings(project: Path, cli, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    result = cli(["engine", "--json"], cwd=project)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["kind"] == "local"
    pipe = project / "pipeline.yaml"
    pipe.write_text(pipe.read_text() + "engine: dask\n")
    result = cli(["engine"], cwd=project)  # no address anywhere: a usage error, with the fix
    assert result.exit_code == 2
    assert "names no scheduler" in result.output and "DASK_SCHEDULER_ADDRESS" in result.output
