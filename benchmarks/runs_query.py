"""`mlops runs list --where/--sort` on 5,000 run records: in SQL (today) against reading every
record back and filtering in Python (before issue 18e).

Reproduce (from the repository root, in the project's virtualenv):

    .venv/bin/python benchmarks/runs_query.py            # 5,000 records, 9 runs of each, median
    .venv/bin/python benchmarks/runs_query.py --records 20000 --runs 5

The store is a real `.mlops/runs.db` (RunStore.save, no git) of records shaped like `mlops run`'s
and `mlops exp run`'s: params of three sections, eight metrics (one flattened, `f1.macro`), five
stage results, deps and outs hashes, the gate verdict, the experiment's overrides. Both paths run
in this process, alternately, after one warm-up; each query's answers are checked equal first.
"Python" is `query.select(store.list(limit=None), ...)`, what `mlops.api.runs_list` did;
"SQL" is `store.select(...)`, what it does now.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops.pipeline import query
from mlops.pipeline.records import RunRecord, RunStore

QUERIES = [  # (where, sort, descending, limit): the CLI's default limit is 20
    ("metrics.accuracy > 0.97", "metrics.accuracy", True, 20),
    ("kind == exp and params.train.C < 0.01", None, False, 20),
    ("outcome == ok", None, False, 20),
    (None, "metrics.f1.macro", True, 10),
    ("metrics.accuracy > 0.5 and params.split.seed == 42", None, False, None),
]


def _md5(rng: random.Random) -> str:
    return hashlib.md5(rng.randbytes(8), usedforsecurity=False).hexdigest()


def record(i: int, rng: random.Random) -> RunRecord:
    kind = rng.choice(["run", "exp", "exp", "exp"])
    started = 1_700_000_000 + i * 60 + rng.random()
    acc = rng.uniform(0.6, 0.99)
    c = 10 ** rng.uniform(-3, 2)
    return RunRecord(
        id=f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(started))}-{rng.randrange(16**4):04x}",
        kind=kind,
        started=started,
        ended=started + rng.uniform(5, 120),
        outcome=rng.choice(["ok"] * 8 + ["failed", "gate_failed"]),
        exit_code=0,
        git_commit=_md5(rng)[:40],
        git_dirty=rng.random() < 0.2,
        git_branch=rng.choice(["main", "feature/tune", "exp/lr"]),
        targets=["penguins"],
        stages=[
            {"name": n, "status": rng.choice(["ran", "cached"]), "seconds": rng.uniform(0.5, 9)}
            for n in ("ingest", "validate", "split", "train", "evaluate")
        ],
        params={
            "train": {"C": c, "max_iter": 500, "penalty": "l2", "solver": "lbfgs"},
            "split": {"test_size": 0.2, "seed": rng.choice([42, 7, 1])},
            "tune": {"trials": 20, "metric": "accuracy"},
        },
        deps={f"data/{n}.parquet": _md5(rng) for n in ("raw", "train", "test", "valid")},
        outs={f"models/penguins/{n}": _md5(rng) for n in ("model.skops", "metadata.json")},
        metrics={
            "accuracy": acc,
            "f1.macro": acc - rng.uniform(0, 0.05),
            "precision": rng.uniform(0.6, 1),
            "recall": rng.uniform(0.6, 1),
            "roc_auc": rng.uniform(0.7, 1),
            "log_loss": rng.uniform(0.05, 0.8),
            "n_train": 275,
            "n_test": 69,
        },
        verdict={
            "blessed": acc > 0.8,
            "gates": [{"metric": "accuracy", "min": 0.8, "ok": acc > 0.8}],
        },
        message="",
        extra={"overrides": {"train.C": c}} if kind == "exp" else {},
    )


def build(root: Path, n: int) -> RunStore:
    rng = random.Random(5000)
    store = RunStore(root)
    recs = [record(i, rng) for i in range(n)]
    with store._connect() as con:  # one transaction: RunStore.save commits per record
        for r in recs:
            con.execute(*store._insert(r))
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = build(Path(tmp), args.records)
        size = store.path.stat().st_size
        print(f"{args.records} records, runs.db {size / 1e6:.1f} MB, {args.runs} runs each, median")
        print(f"{'query':<70} {'matches':>7} {'python':>9} {'sql':>9} {'ratio':>6}")
        for where, sort, desc, limit in QUERIES:

            def old(w=where, s=sort, d=desc, n=limit) -> list[RunRecord]:
                return query.select(store.list(limit=None), w, s, d, n)

            def new(w=where, s=sort, d=desc, n=limit) -> list[RunRecord]:
                return store.select(w, s, d, n)

            a, b = old(), new()
            assert [r.id for r in a] == [r.id for r in b], where
            times: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(args.runs):
                for name, fn in (("old", old), ("new", new)):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            o, s = statistics.median(times["old"]), statistics.median(times["new"])
            label = " ".join(
                x
                for x in (
                    f"-w '{where}'" if where else "",
                    f"-s {sort}" if sort else "",
                    "--desc" if desc else "",
                    f"-n {limit}" if limit else "-n 0",
                )
                if x
            )
            print(f"{label:<70} {len(b):>7} {o * 1e3:>7.1f}ms {s * 1e3:>7.1f}ms {o / s:>5.1f}x")


if __name__ == "__main__":
    main()
