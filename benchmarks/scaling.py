"""Beyond one process: the local chunked path against the Dask path, on this machine.

Reproduce (2 cores; the `dask` extra installed):

    .venv/bin/python benchmarks/scaling.py            # 1M, 3M, 10M rows (~1.4 GB under /tmp)
    .venv/bin/python benchmarks/scaling.py --quick    # 100k, 300k, 1M rows

1. Profile + drift of a partitioned Parquet dataset (8 numeric + 2 categorical columns, files
   of 250,000 rows, two numeric columns shifted by 0.2 std against the reference):
   `validate_table` (the local chunked path, two sorting threads) against `validate_dask` on
   a `LocalCluster` of 2 worker processes x 1 thread on 127.0.0.1. Each measurement runs in a
   fresh process; peak resident memory is each process's own `ru_maxrss` (the stage process;
   for Dask also each worker, read on the worker after the run). Importing Dask, starting the
   cluster and the first run on fresh workers (they import pandas, pyarrow and mlops then) are
   reported apart; the figures compared are second runs on both paths.
2. A tuning search (`tune_pipeline`: grid of 8 candidates x 3 folds, a random forest):
   `n_jobs=1`, `n_jobs=2` (joblib's processes) and the same search on the 2-worker cluster
   through joblib's dask backend; the faster of two searches (the first on fresh workers
   includes their imports).

The machine is shared, so every measurement is repeated `--rounds` times (default 2), the
paths taking turns, and the fastest is reported; the 1-minute load average seen before each
measurement is printed so contention from other work is visible.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NUMERIC, CATEGORIES = 8, ["alpha", "beta", "gamma", "delta", "epsilon"]
FILE_ROWS = 250_000


def _frame(rows: int, seed: int, shift: float):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {f"f{i}": rng.normal(100 + (shift if i < 2 else 0), 15, rows) for i in range(NUMERIC)}
    data["c0"] = rng.choice(CATEGORIES, rows)
    data["c1"] = rng.choice(CATEGORIES, rows, p=[0.5, 0.2, 0.1, 0.1, 0.1])
    return pd.DataFrame(data)


def make_dataset(root: Path, rows: int) -> Path:
    out = root / f"events-{rows}"
    if out.is_dir():
        return out
    tmp = root / f".events-{rows}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        _frame(n, seed=i, shift=3.0).to_parquet(tmp / f"part-{i:04d}.parquet", index=False)
    tmp.rename(out)
    return out


def make_reference(root: Path) -> Path:
    from mlops.data.profile import profile_frame

    path = root / "reference.json"
    if not path.exists():
        path.write_text(json.dumps(profile_frame(_frame(200_000, seed=999, shift=0.0))))
    return path


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- children: one measurement each, in a fresh process ----------------------------------


def child_profile_local(data: str, reference: str) -> dict:
    from mlops.data.validation import Checks, validate_table

    ref = json.loads(Path(reference).read_text())
    t0 = time.perf_counter()
    report = validate_table(data, None, Checks(reference=ref))
    first = time.perf_counter() - t0  # includes the lazy imports (pandas, pyarrow, scipy)
    t1 = time.perf_counter()
    report = validate_table(data, None, Checks(reference=ref))
    secs = time.perf_counter() - t1
    return {
        "seconds": secs,
        "first_seconds": first,
        "peak_mb": peak_mb(),
        "rows": report.rows,
        "drifted": sorted(c.column for c in report.reference.columns if c.drifted),
    }


def _worker_peak() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cluster():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        memory_limit="4GiB",
    )
    return cluster, Client(cluster)


def child_profile_dask(data: str, reference: str) -> dict:
    t0 = time.perf_counter()
    import dask.dataframe  # noqa: F401
    import distributed  # noqa: F401

    from mlops.data.validation import Checks
    from mlops.engine.profiling import validate_dask

    imported = time.perf_counter() - t0
    ref = json.loads(Path(reference).read_text())
    t1 = time.perf_counter()
    cluster, client = _cluster()
    started = time.perf_counter() - t1
    t2 = time.perf_counter()
    report = validate_dask(client, data, None, Checks(reference=ref))
    cold = time.perf_counter() - t2  # the workers import pandas, pyarrow and mlops on first use
    t3 = time.perf_counter()
    report = validate_dask(client, data, None, Checks(reference=ref))
    secs = time.perf_counter() - t3
    workers = sorted(client.run(_worker_peak).values())
    client.close()
    cluster.close()
    return {
        "seconds": secs,
        "cold_seconds": cold,
        "import_seconds": imported,
        "cluster_seconds": started,
        "peak_mb": peak_mb(),
        "worker_peak_mb": workers,
        "rows": report.rows,
        "partitions": report.chunks,
        "drifted": sorted(c.column for c in report.reference.columns if c.drifted),
    }


def _search_data(rows: int):
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows, n_features=20, n_informative=8, n_classes=3, random_state=0
    )
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(20)]), pd.Series(y).astype(str)


def child_tune(mode: str, rows: int, trees: int) -> dict:
    import contextlib

    from sklearn.base import clone
    from sklearn.ensemble import RandomForestClassifier

    from mlops.config.models import TuneParams
    from mlops.stages.train import build_pipeline
    from mlops.stages.tuning import tune_pipeline

    X, y = _search_data(rows)
    tune = TuneParams(space={"max_depth": [4, 8, 16, None], "min_samples_leaf": [1, 5]}, cv=3)
    pipe = build_pipeline(list(X.columns), [], RandomForestClassifier(trees, random_state=0))
    cluster = client = None
    if mode == "dask":
        from mlops.engine.training import joblib_on_cluster

        cluster, client = _cluster()
    n_jobs = {"local-1": 1, "local-2": 2, "dask": -1}[mode]
    times = []
    for _ in range(2):  # the first search on fresh workers includes their imports
        t0 = time.perf_counter()
        context = joblib_on_cluster() if mode == "dask" else contextlib.nullcontext()
        with context:
            _, record = tune_pipeline(tune, clone(pipe), X, y, "classification", n_jobs=n_jobs)
        times.append(time.perf_counter() - t0)
    out = {"seconds": min(times), "first_seconds": times[0]}
    out.update(best=record["best_params"], score=record["best_score"])
    if client is not None:
        client.close()
        cluster.close()
    return out


def spawn(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "mlops-scaling"))
    parser.add_argument("--rounds", type=int, default=2, help="repeat each measurement")
    parser.add_argument("--child", nargs="+")
    opts = parser.parse_args()
    if opts.child:
        kind, *rest = opts.child
        fn = {
            "profile-local": child_profile_local,
            "profile-dask": child_profile_dask,
            "tune": lambda mode, rows, trees: child_tune(mode, int(rows), int(trees)),
        }[kind]
        print(json.dumps(fn(*rest)))
        return

    root = Path(opts.dir)
    root.mkdir(parents=True, exist_ok=True)
    sizes = [100_000, 300_000, 1_000_000] if opts.quick else [1_000_000, 3_000_000, 10_000_000]
    reference = make_reference(root)
    print("## profile + drift of a partitioned Parquet dataset (8 numeric + 2 categorical)")
    print(
        "| rows | files | local s (first run) | local peak MB | dask s (first run) | partitions | "
        "dask client peak MB | dask worker peaks MB | time dask/local |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    results: dict = {"profile": [], "tune": []}
    loads: list[float] = []
    for rows in sizes:
        t0 = time.perf_counter()
        data = make_dataset(root, rows)
        made = time.perf_counter() - t0
        runs: dict[str, list[dict]] = {"local": [], "dask": []}
        for _ in range(opts.rounds):  # the two paths take turns: contention hits both alike
            loads.append(os.getloadavg()[0])
            runs["local"].append(spawn("profile-local", str(data), str(reference)))
            loads.append(os.getloadavg()[0])
            runs["dask"].append(spawn("profile-dask", str(data), str(reference)))
        local = min(runs["local"], key=lambda r: r["seconds"])
        remote = min(runs["dask"], key=lambda r: r["seconds"])
        assert local["rows"] == remote["rows"] == rows
        assert local["drifted"] == remote["drifted"], (local["drifted"], remote["drifted"])
        files = len(list(data.iterdir()))
        results["profile"].append({"rows": rows, "local": local, "dask": remote, "made": made})
        print(
            f"| {rows:,} | {files} | {local['seconds']:.2f} ({local['first_seconds']:.2f}) | "
            f"{local['peak_mb']:.0f} | "
            f"{remote['seconds']:.2f} ({remote['cold_seconds']:.2f}) | {remote['partitions']} | "
            f"{remote['peak_mb']:.0f} | "
            f"{' / '.join(f'{w:.0f}' for w in remote['worker_peak_mb'])} | "
            f"{remote['seconds'] / local['seconds']:.2f} |",
            flush=True,
        )
    last = results["profile"][-1]["dask"]
    print(
        f"\nDask fixed costs (each stage process): import {last['import_seconds']:.2f} s, "
        f"start a 2-worker LocalCluster {last['cluster_seconds']:.2f} s; drifted columns "
        f"(both paths): {', '.join(last['drifted'])}"
    )
    rows, trees = (5_000, 30) if opts.quick else (20_000, 100)
    print(f"\n## tuning: grid 8 candidates x 3 folds, random forest ({trees} trees), {rows:,} rows")
    print("| how | seconds (first search) | best params | vs n_jobs=1 |")
    print("|---|---:|---|---:|")
    modes = ("local-1", "local-2", "dask")
    tries: dict[str, list[dict]] = {mode: [] for mode in modes}
    for _ in range(opts.rounds):
        for mode in modes:
            loads.append(os.getloadavg()[0])
            tries[mode].append(spawn("tune", mode, str(rows), str(trees)))
    base = None
    for mode in modes:
        r = min(tries[mode], key=lambda t: t["seconds"])
        base = base or r["seconds"]
        results["tune"].append(
            {"mode": mode, **r, "all_seconds": [t["seconds"] for t in tries[mode]]}
        )
        print(
            f"| {mode} | {r['seconds']:.2f} ({r['first_seconds']:.2f}) | {r['best']} | "
            f"{r['seconds'] / base:.2f} |",
            flush=True,
        )
    print(
        f"\n{opts.rounds} rounds; 1-minute load average before each measurement: "
        f"{min(loads):.2f} to {max(loads):.2f} (2 cores)"
    )
    results["load"] = loads
    (root / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
