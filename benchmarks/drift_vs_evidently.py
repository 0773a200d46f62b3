"""Drift check against a stored reference vs Evidently's DataDriftPreset, side by side.

Reproduce (Evidently needs pandas<3, so it runs in its own environment):

    python3 -m venv /work/peers/evidently
    /work/peers/evidently/bin/pip install 'evidently==0.7.23' 'pandas<3' pyarrow
    .venv/bin/python benchmarks/drift_vs_evidently.py --evidently /work/peers/evidently/bin/python
    .venv/bin/python benchmarks/drift_vs_evidently.py --quick ...   # 100k rows only

Data: 20 columns (15 normal numeric, 5 categorical); in the current data f0, f1 are shifted by
+0.2 std, f2, f3 by +1 std, and c0's frequencies change. Each side runs in its own process (so
peak memory is its own): mlops compares the current frame with the reference profile (built once,
at train time; its cost is shown separately); Evidently runs DataDriftPreset on both frames.
Also compares the verdicts on real penguin pairs (random halves, islands, years).
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

NUMERIC = [f"f{i}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
PENGUIN_NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
PENGUIN_CATEGORICAL = ["species", "island", "sex"]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_data(rows: int, seed: int, shifted: bool):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {}
    for i, name in enumerate(NUMERIC):
        col = rng.normal(size=rows)
        if shifted and i in (0, 1):
            col += 0.2
        if shifted and i in (2, 3):
            col += 1.0
        data[name] = col
    cats = list("abcdefgh")
    for i, name in enumerate(CATEGORICAL):
        p = np.full(len(cats), 1 / len(cats))
        if shifted and i == 0:
            p = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])
        data[name] = rng.choice(cats, size=rows, p=p)
    return pd.DataFrame(data)


# ---- children ----------------------------------------------------------------------------


def child_profile(ref_path: str, out: str) -> dict:
    import pandas as pd

    from mlops.data.profile import profile_frame

    ref = pd.read_parquet(ref_path)
    t0 = time.perf_counter()
    profile = profile_frame(ref)
    secs = time.perf_counter() - t0
    Path(out).write_text(json.dumps(profile))
    return {"seconds": secs}


def child_ours(cur_path: str, profile_path: str, kinds: str) -> dict:
    import pandas as pd
    import scipy.spatial.distance
    import scipy.stats  # noqa: F401 - imported before the clock starts, as Evidently's are

    from mlops.config.models import DriftSpec  # noqa: F401 - compare() imports it lazily
    from mlops.data.drift import compare

    cur = pd.read_parquet(cur_path)
    reference = json.loads(Path(profile_path).read_text())
    base = current_rss_mb()
    t0 = time.perf_counter()
    report = compare(cur, reference)
    secs = time.perf_counter() - t0
    return {
        "seconds": secs,
        "loaded_mb": base,
        "peak_mb": rss_mb(),
        "drifted": sorted(report.drifted),
        "dataset_drift": report.dataset_drift,
        "methods": {c.column: c.method for c in report.columns},
    }


def child_evidently(ref_path: str, cur_path: str, kinds: str) -> dict:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric, categorical = json.loads(kinds)
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    base = current_rss_mb()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    t0 = time.perf_counter()
    snap = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    result = snap.dict()
    secs = time.perf_counter() - t0
    drifted, dataset = [], False
    methods = {}
    for m in result["metrics"]:
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            method, threshold, value = cfg["method"], cfg["threshold"], m["value"]
            methods[cfg["column"]] = method
            p_value = "p_value" in method
            if (value <= threshold) if p_value else (value >= threshold):
                drifted.append(cfg["column"])
        elif cfg.get("type", "").endswith("DriftedColumnsCount"):
            dataset = m["value"]["share"] >= cfg.get("drift_share", 0.5)
    return {
        "seconds": secs,
        "loaded_mb": base,
        "peak_mb": rss_mb(),
        "drifted": sorted(drifted),
        "dataset_drift": dataset,
        "methods": methods,
    }


def run_child(python: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run(
        [python, __file__, "--child", *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- main --------------------------------------------------------------------------------


def penguin_pairs(tmp: Path, evidently: str) -> list[dict]:
    from palmerpenguins import load_penguins

    df = load_penguins()
    pairs = []
    for seed in (1, 2, 3):
        a = df.sample(frac=0.5, random_state=seed)
        pairs.append((f"random halves (seed {seed})", a, df.drop(a.index)))
    for x, y in (("Biscoe", "Dream"), ("Biscoe", "Torgersen"), ("Dream", "Torgersen")):
        pairs.append((f"island {x} vs {y}", df[df.island == x], df[df.island == y]))
    for x, y in ((2007, 2008), (2007, 2009), (2008, 2009)):
        pairs.append((f"year {x} vs {y}", df[df.year == x], df[df.year == y]))
    kinds = json.dumps([PENGUIN_NUMERIC, PENGUIN_CATEGORICAL])
    out = []
    for label, ref, cur in pairs:
        rp, cp, pp = tmp / "pref.parquet", tmp / "pcur.parquet", tmp / "pref.json"
        ref.reset_index(drop=True).to_parquet(rp)
        cur.reset_index(drop=True).to_parquet(cp)
        run_child(sys.executable, "profile", str(rp), str(pp))
        ours = run_child(sys.executable, "ours", str(cp), str(pp), kinds)
        theirs = run_child(evidently, "evidently", str(rp), str(cp), kinds)
        out.append({"pair": label, "ours": ours, "evidently": theirs})
        same = ours["drifted"] == theirs["drifted"]
        print(
            f"{label:28s} mlops {ours['dataset_drift']!s:5} {ours['drifted']}  "
            f"evidently {theirs['dataset_drift']!s:5} {theirs['drifted']}  "
            f"{'same' if same else 'DIFFERENT'}",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows only")
    parser.add_argument("--evidently", default="/work/peers/evidently/bin/python")
    parser.add_argument("--sizes", default=None, help="comma-separated row counts")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    sizes = [100_000] if args.quick else [100_000, 1_000_000, 3_000_000]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    results: dict = {"sizes": [], "penguins": []}
    kinds = json.dumps([NUMERIC, CATEGORICAL])
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("penguin pairs: verdicts (dataset drift, drifted columns)", flush=True)
        results["penguins"] = penguin_pairs(tmp, args.evidently)
        for rows in sizes:
            ref_p, cur_p, prof = tmp / "ref.parquet", tmp / "cur.parquet", tmp / "ref.json"
            make_data(rows, 1, False).to_parquet(ref_p)
            make_data(rows, 2, True).to_parquet(cur_p)
            prof_run = run_child(sys.executable, "profile", str(ref_p), str(prof))
            ours = run_child(sys.executable, "ours", str(cur_p), str(prof), kinds)
            theirs = run_child(args.evidently, "evidently", str(ref_p), str(cur_p), kinds)
            row = {
                "rows": rows,
                "reference_profile_seconds": prof_run["seconds"],
                "ours": ours,
                "evidently": theirs,
                "speedup": theirs["seconds"] / ours["seconds"],
                "same_columns": ours["drifted"] == theirs["drifted"],
            }
            results["sizes"].append(row)
            extra = ours["peak_mb"] - ours["loaded_mb"]
            print(
                f"{rows:>9,} rows: mlops {ours['seconds']:.2f}s (+{extra:.0f} MB over the loaded "
                f"frame, peak {ours['peak_mb']:.0f} MB)  evidently {theirs['seconds']:.1f}s "
                f"(peak {theirs['peak_mb']:.0f} MB)  speed-up {row['speedup']:.0f}x  "
                f"same drifted columns: {row['same_columns']} {ours['drifted']}  "
                f"(reference profile, once at train time: {prof_run['seconds']:.2f}s)",
                flush=True,
            )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, rest = sys.argv[2], sys.argv[3:]
        fn = {"profile": child_profile, "ours": child_ours, "evidently": child_evidently}[mode]
        print(json.dumps(fn(*rest)))
    else:
        main()
