"""Profiling a partitioned dataset larger than one worker's memory limit succeeds on the cluster.

Two worker processes on 127.0.0.1 with a memory limit of 400 MiB each (the nanny pauses a worker
at 80% and kills it at 95%); the dataset holds 5,000,000 rows x 12 float64 columns plus a
categorical column, 458 MiB of numbers alone once loaded. Each partition is summarised where it
is read and only the merged sketches come back, so no worker is killed or restarted, and the
figures match those computed while the data was written.
"""

from __future__ import annotations

from pathlib import Path

# the dask extra is part of the test install (scripts/test.sh): without it this test fails
import distributed  # noqa: F401
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ROWS, FILES, COLUMNS = 5_000_000, 10, 12
MEMORY_LIMIT = 400 * 2**20


def _pid() -> int:
    import os

    return os.getpid()


def test_profile_of_a_dataset_larger_than_a_worker_memory_limit(tmp_path: Path):
    from distributed import Client, LocalCluster

    from mlops.engine.profiling import validate_dask

    data = tmp_path / "events"
    data.mkdir()
    rng = np.random.default_rng(0)
    per = ROWS // FILES
    sums = np.zeros(COLUMNS)
    lows, highs = np.full(COLUMNS, np.inf), np.full(COLUMNS, -np.inf)
    cats = pd.Series(dtype="int64")
    for i in range(FILES):
        df = pd.DataFrame({f"x{j}": rng.normal(j, 1 + j, per) for j in range(COLUMNS)})
        df["kind"] = rng.choice(["a", "b", "c", "d"], per, p=[0.4, 0.3, 0.2, 0.1])
        sums += df.iloc[:, :COLUMNS].sum().to_numpy()
        lows = np.minimum(lows, df.iloc[:, :COLUMNS].min().to_numpy())
        highs = np.maximum(highs, df.iloc[:, :COLUMNS].max().to_numpy())
        cats = cats.add(df["kind"].value_counts(), fill_value=0)
        df.to_parquet(data / f"part-{i:03d}.parquet", index=False, row_group_size=100_000)
    assert ROWS * COLUMNS * 8 > MEMORY_LIMIT  # the numbers alone outgrow one worker

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            memory_limit=MEMORY_LIMIT,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        before = client.run(_pid)
        report = validate_dask(client, str(data), None, partition_bytes=8 << 20)
        after = client.run(_pid)
        limits = {w["memory_limit"] for w in client.scheduler_info()["workers"].values()}
    assert before == after and len(after) == 2  # no worker was killed and restarted
    assert limits == {MEMORY_LIMIT}
    assert report.rows == ROWS and report.chunks >= FILES * 5  # row groups of 100k rows
    profile = report.profile["columns"]
    for j in range(COLUMNS):
        col = profile[f"x{j}"]
        assert col["count"] == ROWS and col["missing"] == 0
        assert col["mean"] == pytest.approx(sums[j] / ROWS, rel=1e-9)
        assert (col["min"], col["max"]) == (lows[j], highs[j])
        assert col["std"] == pytest.approx(1 + j, rel=0.01)
        assert col["quantiles"]["p50"] == pytest.approx(j, abs=0.01 * (1 + j))
    assert profile["kind"]["top"] == {
        k: int(v) for k, v in cats.sort_values(ascending=False).items()
    }
