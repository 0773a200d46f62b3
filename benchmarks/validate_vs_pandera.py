"""The whole validate step (schema checks + profile + drift) vs pandera's validation alone.

Reproduce:

    .venv/bin/python benchmarks/validate_vs_pandera.py            # 1,000,000 rows x 20 columns
    .venv/bin/python benchmarks/validate_vs_pandera.py --quick    # 100,000 rows

Same in-memory frame for both (15 numeric, 5 categorical columns; the schema inferred from it):
pandera 0.35 `DataFrameSchema.validate(df, lazy=True)` against mlops' `validate_chunks([df])`,
which checks the same schema, builds the statistics profile and compares with the previous
span's profile. Clean data, then 1% bad cells (out-of-range numbers, unknown categories). Medians
of 3 runs, after one warm-up. Also the full validate stage reading the same data from Parquet.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make(rows: int, seed: int, bad_share: float = 0.0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {f"f{i}": rng.uniform(0, 100, rows) for i in range(15)}
    for i in range(5):
        data[f"c{i}"] = rng.choice(list("abcdefgh"), rows)
    df = pd.DataFrame(data)
    if bad_share:
        k = int(rows * bad_share / 20)
        for name in df.columns:
            idx = rng.choice(rows, k, replace=False)
            if name.startswith("f"):
                df.loc[idx, name] = -1.0
            else:
                df.loc[idx, name] = "zzz"
    return df


def median_time(fn, repeat: int = 3) -> tuple[float, object]:
    fn()  # warm-up (imports, caches)
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)

    import pandera.pandas as pa
    from pandera.io.pandas_io import deserialize_schema

    from mlops.data.profile import profile_frame
    from mlops.data.schema import infer_schema
    from mlops.data.validation import Checks, validate_chunks

    clean = make(rows, 1)
    previous = profile_frame(make(rows, 2))
    schema = infer_schema(clean)
    # both sides check the same ranges; a later span is drawn from the same distribution
    pschema = deserialize_schema(schema)

    def pandera_run(df):
        def go():
            try:
                pschema.validate(df, lazy=True)
                return 0
            except pa.errors.SchemaErrors as exc:
                return len(exc.failure_cases)

        return go

    def ours_run(df):
        def go():
            report = validate_chunks([df], schema, Checks(previous=previous))
            return sum(f.count for f in report.failures)

        return go

    print(f"{rows:,} rows x 20 columns (15 numeric, 5 categorical)", flush=True)
    for label, df in (("clean", clean), ("1% bad cells", make(rows, 1, 0.01))):
        tp, np_fail = median_time(pandera_run(df))
        to, no_fail = median_time(ours_run(df))
        print(
            f"{label:13s} pandera validate(lazy=True) {tp:.2f}s ({np_fail} failure cases)  |  "
            f"mlops validate+profile+drift {to:.2f}s ({no_fail} failing values)  |  "
            f"ratio pandera/mlops {tp / to:.1f}x",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as d:
        from mlops.data.validation import Checks, validate_table

        path = Path(d) / "data.parquet"
        clean.to_parquet(path)
        tt, _ = median_time(lambda: validate_table(path, schema, Checks(previous=previous)))
        print(f"full stage from Parquet (read + validate + profile + drift): {tt:.2f}s")


if __name__ == "__main__":
    main()
