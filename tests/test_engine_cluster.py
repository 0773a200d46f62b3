"""The Dask engine on a real cluster: a `LocalCluster` of 2 worker processes on 127.0.0.1.

The example pipeline run with `engine: dask` gives the local run's validation verdict and
metrics; validation, tuning, incremental training and ingest on the cluster give what the local
path gives; `mlops engine` reports the scheduler, its dashboard and its workers; a run with
nothing to do needs no cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

# the dask extra is part of the test install (scripts/test.sh): without it these tests fail
import distributed  # noqa: F401
import numpy as np
import pandas as pd
import pytest

from mlops.errors import ExitCode, UsageError
from tests.helpers import replace_in, replaced

METRIC_TOLERANCE = 1e-9  # the same rows, the same seeds: the same model up to float noise


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            memory_limit="1GiB",
        ) as lc,
        Client(lc) as client,
    ):
        yield lc, client


@pytest.fixture
def address(cluster, monkeypatch) -> str:
    """The cluster's address, in DASK_SCHEDULER_ADDRESS as a CI runner would set it."""
    lc, _ = cluster
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", lc.scheduler_address)
    return lc.scheduler_address


def use_dask(root: Path) -> None:
    pipe = root / "pipeline.yaml"
    pipe.write_text(pipe.read_text() + "engine: dask\n")


@pytest.mark.slow
def test_example_pipeline_on_the_cluster_matches_the_local_run(trained: Path, cli, address):
    local_metrics = json.loads((trained / "reports/metrics.json").read_text())
    local_report = json.loads((trained / "reports/validation.json").read_text())
    use_dask(trained)
    result = cli(["run", "--force", "--json"], cwd=trained)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["engine"]["address"] == address and out["engine"]["workers"] == 2
    assert out["engine"]["dashboard"].startswith("http://127.0.0.1:")
    assert {s["name"]: s["status"] for s in out["stages"]} == dict.fromkeys(
        ("ingest", "validate", "split", "train", "evaluate"), "ran"
    )
    # the stages computed on the cluster and said where to watch them
    logs = {s["name"]: Path(s["log"]).read_text() for s in out["stages"]}
    for stage in ("ingest", "validate", "train"):
        assert f"dask: {address} from DASK_SCHEDULER_ADDRESS (2 workers" in logs[stage]
        assert "dashboard http://127.0.0.1:" in logs[stage]
    # the same validation verdict
    report = json.loads((trained / "reports/validation.json").read_text())
    for key in ("valid", "action", "rows", "columns", "failures"):
        assert report[key] == local_report[key], key
    assert report["drift"]["previous"]["dataset_drift"] is False
    assert any("computed on the Dask cluster" in n for n in report["notes"])
    # metrics equal to the local run's within METRIC_TOLERANCE
    metrics = json.loads((trained / "reports/metrics.json").read_text())
    assert metrics.keys() == local_metrics.keys()
    for key, value in local_metrics.items():
        if isinstance(value, float):
            assert metrics[key] == pytest.approx(value, abs=METRIC_TOLERANCE), key
        else:
            assert metrics[key] == value, key


@pytest.mark.slow
def test_a_run_with_nothing_to_do_needs_no_cluster(trained: Path, cli, address, monkeypatch):
    use_dask(trained)
    first = cli(["run", "--json"], cwd=trained)  # pipeline.yaml changed: the full path decides
    assert first.exit_code == 0 and json.loads(first.output)["engine"]["address"] == address
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:9")  # nothing listens there
    result = cli(["run", "--json"], cwd=trained)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["fast_noop"] is True and "engine" not in out
    assert {s["status"] for s in out["stages"]} == {"skipped"}
    # with work to do, the unreachable scheduler stops the run before any stage (exit 2)
    result = cli(["run", "--force", "--json"], cwd=trained)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "tcp://127.0.0.1:9" in result.output


@pytest.mark.slow
def test_invalid_data_fails_validate_on_the_cluster_with_every_problem(trained: Path, cli, address):
    use_dask(trained)
    src = trained / "data/source/penguins.csv"
    df = pd.read_csv(src)
    df.loc[3, "island"] = "Atlantis"
    df.loc[300, "flipper_length_mm"] = 999
    df.to_csv(src, index=False)
    result = cli(["run"], cwd=trained)
    assert result.exit_code == ExitCode.DATA_VALIDATION, result.output
    assert "Atlantis" in result.output and "999" in result.output
    report = json.loads((trained / "reports/validation.json").read_text())
    assert sorted((f["column"], f["rows"]) for f in report["failures"]) == [
        ("flipper_length_mm", [300]),
        ("island", [3]),
    ]


def penguins_with_problems(rows: int = 40_000) -> pd.DataFrame:
    from palmerpenguins import load_penguins

    base = load_penguins()
    df = base.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    df["bill_length_mm"] = df["bill_length_mm"] + np.random.default_rng(1).normal(0, 0.5, rows)
    df.loc[[5, 17_003, 39_990], "island"] = "Atlantis"
    df.loc[[12, 25_000], "body_mass_g"] = 99_999
    df["flipper_length_mm"] = df["flipper_length_mm"].astype("object")
    df.loc[33_333, "flipper_length_mm"] = "n/a?"
    return df


def test_validation_on_the_cluster_finds_what_the_local_path_finds(tmp_path: Path, cluster):
    from palmerpenguins import load_penguins

    from mlops.data.schema import infer_schema
    from mlops.data.validation import Checks, validate_table
    from mlops.engine.profiling import validate_dask

    _, client = cluster
    schema = infer_schema(load_penguins())
    reference = validate_table(_write(tmp_path / "ref.csv", load_penguins()), None).profile
    path = _write(tmp_path / "data.csv", penguins_with_problems())
    local = validate_table(path, schema, Checks(reference=reference), chunk_bytes=400_000)
    remote = validate_dask(
        client, str(path), schema, Checks(reference=reference), partition_bytes=400_000
    )
    assert local.chunks > 3 and remote.chunks > 3
    assert remote.rows == local.rows == 40_000
    assert remote.failure_dicts() == local.failure_dicts()
    failing = {f.column for f in remote.failures}  # the noise takes some bills out of range
    assert failing == {"island", "body_mass_g", "flipper_length_mm", "bill_length_mm"}
    assert remote.profile["columns"]["island"] == local.profile["columns"]["island"]
    mine, theirs = remote.profile["columns"]["body_mass_g"], local.profile["columns"]["body_mass_g"]
    for key in ("count", "missing", "min", "max", "distinct"):
        assert mine[key] == theirs[key], key
    assert mine["mean"] == pytest.approx(theirs["mean"], rel=1e-12)
    assert remote.reference.dataset_drift == local.reference.dataset_drift
    for a, b in zip(remote.reference.columns, local.reference.columns, strict=True):
        assert (a.column, a.method, a.drifted) == (b.column, b.method, b.drifted)
        assert a.score == pytest.approx(b.score, abs=0.01), a.column


def _write(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path


def test_tuning_search_runs_on_the_cluster_with_the_local_result(cluster):
    from distributed import get_task_stream
    from palmerpenguins import load_penguins
    from sklearn.linear_model import LogisticRegression

    from mlops.config.models import TuneParams
    from mlops.engine.training import joblib_on_cluster
    from mlops.stages.train import build_pipeline
    from mlops.stages.tuning import tune_pipeline

    _, client = cluster
    df = load_penguins().dropna(subset=["species"])
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    X, y = df[[*numeric, "island", "sex"]], df["species"]
    tune = TuneParams(space={"C": [0.01, 0.1, 1.0, 10.0]}, cv=3)

    def pipe():
        return build_pipeline(numeric, ["island", "sex"], LogisticRegression(max_iter=500))

    _, local = tune_pipeline(tune, pipe(), X, y, "classification", n_jobs=1)
    with get_task_stream(client) as stream, joblib_on_cluster():
        _, remote = tune_pipeline(tune, pipe(), X, y, "classification", n_jobs=-1)
    assert len(stream.data) >= 4  # the fits ran as tasks on the workers
    assert {t["worker"] for t in stream.data} <= set(client.scheduler_info()["workers"])
    assert remote["best_params"] == local["best_params"]
    for a, b in zip(remote["table"], local["table"], strict=True):
        assert a["params"] == b["params"]
        assert a["mean_score"] == pytest.approx(b["mean_score"], abs=METRIC_TOLERANCE)


def test_incremental_training_over_partitions_matches_local_chunks(tmp_path: Path, cluster):
    from sklearn.linear_model import SGDClassifier

    from mlops.config.models import IncrementalSpec
    from mlops.engine.training import DaskPartitions
    from mlops.stages.incremental import LocalChunks, fit_incremental
    from mlops.stages.train import build_pipeline

    _, client = cluster
    rng = np.random.default_rng(0)
    data = tmp_path / "train"
    data.mkdir()
    frames = []
    for i in range(4):  # a partitioned dataset: one partition per file
        n = 5_000
        df = pd.DataFrame({"a": rng.normal(0, 1, n), "g": rng.choice(["u", "v"], n)})
        df["y"] = np.where(df["a"] + (df["g"] == "u") > 0.5, "yes", "no")
        df["row_id"] = [f"r{i}-{k}" for k in range(n)]  # an identifier: left out of features
        df.to_parquet(data / f"part-{i}.parquet", index=False)
        frames.append(df)
    spec = IncrementalSpec(epochs=2, sample_rows=4_000)
    fits = []
    for source in (LocalChunks(data), DaskPartitions(client, str(data), partition_bytes=1 << 20)):
        pipe = build_pipeline(["a"], ["g"], SGDClassifier(random_state=0))
        fits.append(fit_incremental(source, pipe, ["a"], ["g"], "y", "classification", spec, 3))
    (local, lrec, lcats), (remote, rrec, rcats) = fits
    assert lrec == rrec and rrec["chunks"] == 4 and rrec["rows"] == 20_000
    assert lcats == rcats == {"g": ["u", "v"]}
    np.testing.assert_allclose(
        remote.named_steps["model"].coef_, local.named_steps["model"].coef_, atol=1e-12
    )
    everything = pd.concat(frames)
    assert (remote.predict(everything[["a", "g"]]) == everything["y"]).mean() > 0.9
    # identifier/time columns are judged the same way on the partitions as on local chunks
    from mlops.data.profile import profile_frame
    from mlops.stages.incremental import roles_over_chunks

    profile = profile_frame(everything)
    partitions = DaskPartitions(client, str(data), partition_bytes=1 << 20)
    roles = roles_over_chunks(partitions, profile, "y")
    assert roles == roles_over_chunks(LocalChunks(data), profile, "y")
    assert list(roles) == ["row_id"] and roles["row_id"].role == "identifier"


@pytest.mark.slow
def test_ingest_reads_a_partitioned_source_on_the_cluster(project: Path, cli, address):
    source = pd.read_csv(project / "data/source/penguins.csv")
    parts = project / "data/source/parts"
    parts.mkdir()
    for i, start in enumerate(range(0, len(source), 120)):
        source.iloc[start : start + 120].to_csv(parts / f"day-{i}.csv", index=False)
    pipe = project / "pipeline.yaml"
    text = replaced(pipe, "source: data/source/penguins.csv", "source: data/source/parts")
    text = text.replace(
        "output: data/raw/penguins.csv\n",
        "output: data/raw/penguins.csv\n      span: {column: year, from: 2008, to: 2009}\n",
    )
    pipe.write_text(text + "engine: {kind: dask, partition_mb: 1}\n")
    result = cli(["run", "validate", "--json"], cwd=project)
    assert result.exit_code == 0, result.output
    log = Path(json.loads(result.output)["stages"][0]["log"]).read_text()
    assert "from 3 partitions" in log
    got = pd.read_csv(project / "data/raw/penguins.csv")
    want = source[source["year"].between(2008, 2009)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_engine_command_reports_the_cluster(project: Path, cli, address):
    use_dask(project)
    result = cli(["engine", "--json"], cwd=project)
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["address"] == address and info["source"] == "DASK_SCHEDULER_ADDRESS"
    assert info["workers"] == 2 and info["threads"] == 2
    assert info["memory_limit"] == 2 * 2**30
    assert info["dashboard"].startswith("http://127.0.0.1:")
    text = cli(["engine"], cwd=project)
    assert f"dask: {address} from DASK_SCHEDULER_ADDRESS (2 workers, 2 threads" in text.output
    pipe = project / "pipeline.yaml"
    replace_in(
        pipe, "engine: dask\n", "engine: {kind: dask, scheduler: tcp://127.0.0.1:9, timeout: 1}\n"
    )
    unreachable = cli(["engine"], cwd=project)
    assert unreachable.exit_code == ExitCode.USAGE
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9 (from pipeline.yaml)" in (
        unreachable.output
    )


def test_workers_must_see_the_data_they_are_given(cluster, tmp_path: Path):
    from mlops.engine.cluster import check_workers

    _, client = cluster
    (tmp_path / "here.csv").write_text("a\n1\n")
    check_workers(client, [str(tmp_path / "here.csv"), "s3://bucket/x.csv", "/x/*.csv"])
    with pytest.raises(UsageError, match=r"cannot see /nowhere/data\.csv") as info:
        check_workers(client, ["/nowhere/data.csv"])
    assert "mount the project at the same path" in (info.value.hint or "")


def _die() -> None:
    import os

    os._exit(1)  # what the nanny does to a worker over its memory limit


def test_a_worker_killed_under_a_task_is_an_error_that_says_what_to_change():
    import dask
    from distributed import Client, LocalCluster

    from mlops.engine.cluster import MEMORY_HINT, compute_result
    from mlops.errors import UsageError

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as lc,
        Client(lc) as client,
    ):
        with pytest.raises(UsageError) as caught:
            compute_result(client, dask.delayed(_die)(), "profiling data/events")
        assert caught.value.message.startswith(
            "profiling data/events failed: Dask workers died while running it"
        )
        assert caught.value.hint == MEMORY_HINT and "partition_mb" in MEMORY_HINT
        assert compute_result(client, dask.delayed(sum)([1, 2]), "a sum") == 3  # still usable
