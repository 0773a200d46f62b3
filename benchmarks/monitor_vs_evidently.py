"""`mlops monitor` over a prediction log vs Evidently's reports on the same data, side by side.

Reproduce (Evidently needs pandas<3, so it runs in its own environment):

    python3 -m venv /work/peers/evidently
    /work/peers/evidently/bin/pip install 'evidently==0.7.23' 'pandas<3' pyarrow
    .venv/bin/python benchmarks/monitor_vs_evidently.py --evidently /work/peers/evidently/bin/python
    .venv/bin/python benchmarks/monitor_vs_evidently.py --quick   # 100k predictions only

Data: the example model (the penguins pipeline, logistic regression) predicts N rows drawn from
the penguins with noise (the second half from one island: drift); the prediction log is written
in `mlops serve`'s format, one row per request (the hardest case to read), in 32 MiB files, with
feedback labels for 20% of the rows and 1% refused requests.

Each side runs in its own process (peak memory is its own):
- mlops: `read_columns` + `analyse` (what `mlops monitor` does): input drift of 6 features and
  dataset drift, prediction drift, data quality, online accuracy with its interval, health and
  the series over time. *cold*: no index yet (every line parsed); *warm*: the index built by an
  earlier run (what a scheduled monitor finds); *segments*: the same log as the columnar
  segments servers ship (`read_segments` on a directory; no cache of ours). These three make
  the report from per-chunk partials without a cache; *warm-rows*: from the rows (as before
  partials); *cache-first*: warm, with an empty partials cache that the run fills (what the
  first scheduled run costs); *warm-cached* / *segments-cached*: the partials an earlier run
  kept (`mlops monitor` keeps them under .mlops/cache/monitor/<env>/); *new-feedback-cached*:
  warm-cached when feedback labels arrived since the cached run (a scheduled monitor's normal
  case): repetition i analyses the feedback read without its last i + 1 rows (dropped in
  memory after the read; the log on disk is unchanged), so the feedback differs from the
  one the cache was last written with in every repetition (run it after warm-cached or
  cache-first: the first repetition then differs from the whole feedback by one row), and
  every cached partial's performance part is recomputed. Timed from the log files on disk.
- Evidently: DataDriftPreset (the features and the prediction), ClassificationPreset (the
  labelled rows) and DataSummaryPreset, on frames already in memory (read from Parquet before
  the clock starts: reading the JSON log into pandas is not counted for Evidently).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island", "sex"]
NUMERIC = FEATURES[:4]
CATEGORICAL = FEATURES[4:]
FILE_BYTES = 32 * 1024 * 1024


def rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss, not inherited from the
    parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---- the data ------------------------------------------------------------------------------------


def build(rows: int, work: Path) -> dict:
    """The bundle, the log (JSON Lines, serve's format) and Parquet frames for Evidently."""
    import numpy as np
    import orjson
    import skops.io as sio
    from palmerpenguins import load_penguins
    from sklearn.linear_model import LogisticRegression

    from mlops.bundle import write_bundle
    from mlops.data.profile import profile_frame
    from mlops.stages.evaluate import classification_metrics, prediction_reference
    from mlops.stages.train import build_pipeline, feature_columns, input_schema

    df = load_penguins().dropna(subset=["species"]).reset_index(drop=True)
    test = df.sample(frac=0.25, random_state=0)
    train = df.drop(test.index)
    numeric, categorical = feature_columns(train, "species", ["year"])
    pipe = build_pipeline(numeric, categorical, LogisticRegression(max_iter=1000))
    pipe.fit(train[FEATURES], train["species"])
    test_pred = pipe.predict(test[FEATURES])
    test_proba = pipe.predict_proba(test[FEATURES])
    bundle = work / "bundle"
    write_bundle(
        bundle,
        {
            "model.skops": sio.dumps(pipe),
            "schema.json": json.dumps(input_schema(train, numeric, categorical)).encode(),
            "reference.json": json.dumps(
                {**profile_frame(train[[*FEATURES, "species"]]), "target": "species"}
            ).encode(),
        },
        {
            "name": "penguins-classifier",
            "task": "classification",
            "target": "species",
            "features": FEATURES,
            "classes": [str(c) for c in pipe.classes_],
            "metrics": classification_metrics(
                test["species"], test_pred, test_proba, list(pipe.classes_)
            ),
            "prediction_reference": prediction_reference(test_pred, test_proba),
        },
    )
    rng = np.random.default_rng(1)
    pool = df.dropna(subset=FEATURES).reset_index(drop=True)
    dream = pool[pool.island == "Dream"].index.to_numpy()
    idx = rng.integers(0, len(pool), rows)
    half = rows // 2
    idx[half:] = rng.choice(dream, rows - half)
    cur = pool.loc[idx, [*FEATURES, "species"]].reset_index(drop=True)
    for c in NUMERIC:
        cur[c] = (cur[c] + rng.normal(0, 0.02, rows) * cur[c].std()).round(2)
    proba = pipe.predict_proba(cur[FEATURES])
    classes = [str(c) for c in pipe.classes_]
    cur["prediction"] = np.asarray(classes)[proba.argmax(axis=1)]
    labelled = rng.random(rows) < 0.2
    wrong = rng.random(rows) < 0.05
    label = cur["species"].to_numpy().copy()
    label[wrong] = rng.choice(classes, int(wrong.sum()))
    log = work / "log"
    log.mkdir()
    t0 = 1.7e9
    ts = t0 + np.sort(rng.random(rows)) * 86400
    lat = rng.gamma(2.0, 0.2, rows).round(3)
    cols = {c: cur[c].tolist() for c in FEATURES}
    preds = cur["prediction"].tolist()
    probs = proba.round(6).tolist()
    lines: list[bytes] = []
    size = 0
    n_file = 0

    def flush() -> None:
        nonlocal lines, size, n_file
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t0 + n_file))
        (log / f"{stamp}.000000-bench.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        lines, size, n_file = [], 0, n_file + 1

    for i in range(rows):
        rid = f"bench-{i:x}"
        line = orjson.dumps(
            {"kind": "prediction", "ts": float(ts[i]), "request_id": rid,
             "model": "penguins-classifier", "version": "v1", "endpoint": "invocations", "n": 1,
             "inputs": {c: [cols[c][i]] for c in FEATURES}, "predictions": [preds[i]],
             "latency_ms": float(lat[i]), "classes": classes, "probabilities": [probs[i]]}
        )  # fmt: skip
        lines.append(line)
        size += len(line) + 1
        if labelled[i]:
            fb = orjson.dumps(
                {"kind": "feedback", "ts": float(ts[i]) + 60, "request_id": rid,
                 "labels": [str(label[i])]}
            )  # fmt: skip
            lines.append(fb)
            size += len(fb) + 1
        if i % 100 == 0:
            err = orjson.dumps(
                {"kind": "error", "ts": float(ts[i]), "request_id": f"{rid}-x",
                 "endpoint": "invocations", "status": 422, "error": "invalid_input",
                 "version": "v1", "latency_ms": 0.1, "fields": {"island": 1}}
            )  # fmt: skip
            lines.append(err)
            size += len(err) + 1
        if size >= FILE_BYTES:
            flush()
    if lines:
        flush()
    cur.drop(columns=["species"]).to_parquet(work / "current.parquet")
    lab = cur[labelled].copy()
    lab["target"] = label[labelled]
    lab.drop(columns=["species"]).to_parquet(work / "labelled.parquet")
    ref = test[FEATURES].copy()
    ref["prediction"] = test_pred
    ref["target"] = test["species"].to_numpy()
    ref.reset_index(drop=True).to_parquet(work / "reference.parquet")
    log_bytes = sum(p.stat().st_size for p in log.iterdir())
    return {"rows": rows, "labelled": int(labelled.sum()), "log_mb": log_bytes / 2**20,
            "files": n_file}  # fmt: skip


MODES = (
    "cold",
    "warm",
    "segments",
    "warm-rows",
    "cache-first",
    "warm-cached",
    "new-feedback-cached",
    "segments-cached",
)
CACHE = {
    "cache-first": "log-cache",
    "warm-cached": "log-cache",
    "new-feedback-cached": "log-cache",
    "segments-cached": "store-cache",
}


def reuse(work: Path, rows: int) -> dict | None:
    """The data an earlier run built in `work` with the same number of rows, if complete."""
    try:
        data = json.loads((work / "data.json").read_text())
    except (OSError, ValueError):
        return None
    needed = ("bundle", "log", "current.parquet", "labelled.parquet", "reference.parquet")
    ok = data.get("rows") == rows and all((work / n).exists() for n in needed)
    return data if ok else None


def to_segments(work: Path) -> float:
    """Each JSON log file converted to segments as a server ships them (two hosts), under
    `work/store`; returns their size in MiB."""
    from mlops.serve.segments import convert, segment_paths

    total = 0
    for i, path in enumerate(sorted((work / "log").glob("*.jsonl"))):
        host = f"host-{i % 2}"
        local = segment_paths(str(work / "store"), host, path.name[: -len(".jsonl")])
        for kind, data in convert(path, host).items():
            Path(local[kind]).parent.mkdir(parents=True, exist_ok=True)
            Path(local[kind]).write_bytes(data)
            total += len(data)
    return total / 2**20


# ---- children ----------------------------------------------------------------------------------


def child_ours(work: str, mode: str, rep: int = 0) -> dict:
    import numpy as np  # noqa: F401 - imported before the clock starts, as Evidently's are
    import pandas  # noqa: F401
    import pyarrow.compute
    import pyarrow.json  # noqa: F401
    import scipy.stats  # noqa: F401

    from mlops.config.models import MonitoringSpec
    from mlops.monitor.checks import LiveModel, analyse
    from mlops.monitor.logdata import INDEX_DIR, read_columns
    from mlops.monitor.segments import read_segments
    from mlops.monitor.window import Window

    w = Path(work)
    if mode == "cold":
        shutil.rmtree(w / "log" / INDEX_DIR, ignore_errors=True)
    cache = w / CACHE[mode] if mode in CACHE else None
    if mode == "cache-first" and cache is not None:  # what the first run with a cache costs
        shutil.rmtree(cache, ignore_errors=True)
    spec = MonitoringSpec.model_validate({"performance": {"min": 0.85}})
    base = current_rss_mb()
    t0 = time.perf_counter()
    # segments: the columnar segments servers ship (nothing cached of ours)
    # *-cached: the per-chunk partials an earlier run kept (mlops.monitor.partials);
    # warm-rows: every figure from the rows (the analysis before partials)
    segs = mode.startswith("segments")
    columns = read_segments(str(w / "store")) if segs else read_columns(w / "log")
    if mode == "new-feedback-cached":  # other feedback than the cached run's (docstring)
        columns.feedback = columns.feedback.slice(0, columns.feedback.num_rows - rep - 1)
    t1 = time.perf_counter()
    live = LiveModel.read(w / "bundle", "v1")
    window = Window(None, 2e9, "whole log")
    report = analyse(
        columns, live, spec, window, env="bench", cache=cache, partials=mode != "warm-rows"
    )
    t2 = time.perf_counter()
    return {
        "seconds": t2 - t0,
        "read_seconds": t1 - t0,
        "analyse_seconds": t2 - t1,
        "loaded_mb": base,
        "peak_mb": rss_mb(),
        "bytes_parsed": columns.bytes_parsed,
        "drifted": report.drift.drifted if report.drift else [],
        "breaches": [b.check for b in report.breaches],
        "online_accuracy": report.performance["online"]["value"],
        "labelled": report.performance["online"]["labelled"],
    }


def child_evidently(work: str) -> dict:
    import pandas as pd
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.presets import ClassificationPreset, DataDriftPreset, DataSummaryPreset

    w = Path(work)
    cur = pd.read_parquet(w / "current.parquet")
    lab = pd.read_parquet(w / "labelled.parquet")
    ref = pd.read_parquet(w / "reference.parquet")
    base = current_rss_mb()
    drift_def = DataDefinition(
        numerical_columns=NUMERIC, categorical_columns=[*CATEGORICAL, "prediction"]
    )
    cls_def = DataDefinition(
        numerical_columns=NUMERIC,
        categorical_columns=CATEGORICAL,
        classification=[MulticlassClassification(target="target", prediction_labels="prediction")],
    )
    times = {}
    t0 = time.perf_counter()
    Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=drift_def),
        Dataset.from_pandas(ref.drop(columns=["target"]), data_definition=drift_def),
    ).dict()
    times["drift"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    Report([ClassificationPreset()]).run(
        Dataset.from_pandas(lab, data_definition=cls_def),
        Dataset.from_pandas(ref, data_definition=cls_def),
    ).dict()
    times["classification"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    Report([DataSummaryPreset()]).run(
        Dataset.from_pandas(cur, data_definition=drift_def), None
    ).dict()
    times["summary"] = time.perf_counter() - t2
    return {
        "seconds": time.perf_counter() - t0,
        "parts": times,
        "loaded_mb": base,
        "peak_mb": rss_mb(),
    }


def run_child(python: str, *args: str) -> tuple[dict, float]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, __file__, "--child", *args], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


# ---- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k predictions only")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--evidently", default="/work/peers/evidently/bin/python")
    parser.add_argument("--no-evidently", action="store_true", help="mlops only")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mlops mode")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--modes", default=",".join(MODES), help="mlops modes, in this order")
    parser.add_argument(
        "--work",
        default=None,
        help="keep the data in this directory and reuse it on the next run (same seed and rows)",
    )
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        work = Path(args.work or tmp)
        t0 = time.perf_counter()
        data = reuse(work, rows) or build(rows, work)
        (work / "data.json").write_text(json.dumps(data))
        print(
            f"{rows:,} predictions ({data['labelled']:,} labelled) in {data['files']} files, "
            f"{data['log_mb']:.0f} MiB of JSON (built in {time.perf_counter() - t0:.0f}s)",
            flush=True,
        )
        if not (work / "store").is_dir():
            to_segments(work)
        segments_mb = sum(p.stat().st_size for p in (work / "store").rglob("*.arrow")) / 2**20
        print(f"the same log as shipped segments: {segments_mb:.0f} MiB of Arrow IPC", flush=True)
        results: dict = {"data": data, "ours": {}, "evidently": None}
        modes = [m for m in args.modes.split(",") if m in MODES]
        for mode in modes:
            runs = []
            for rep in range(args.repeat):
                res, wall = run_child(sys.executable, "ours", str(work), mode, str(rep))
                res["process_wall"] = wall
                runs.append(res)
            best = min(runs, key=lambda r: r["seconds"])
            best["median_seconds"] = sorted(r["seconds"] for r in runs)[len(runs) // 2]
            results["ours"][mode] = best
            print(
                f"mlops {mode}: {best['seconds']:.2f}s (read {best['read_seconds']:.2f}s, "
                f"analyse {best['analyse_seconds']:.2f}s; median {best['median_seconds']:.2f}s; "
                f"process {best['process_wall']:.1f}s with imports), peak "
                f"{best['peak_mb']:.0f} MB; breaches {best['breaches']}; drifted "
                f"{best['drifted']}; online accuracy {best['online_accuracy']:.4f} on "
                f"{best['labelled']:,} labels",
                flush=True,
            )
        if not args.no_evidently:
            ev, wall = run_child(args.evidently, "evidently", str(work))
            ev["process_wall"] = wall
            results["evidently"] = ev
            parts = ", ".join(f"{k} {v:.1f}s" for k, v in ev["parts"].items())
            print(
                f"evidently: {ev['seconds']:.1f}s ({parts}), peak {ev['peak_mb']:.0f} MB "
                f"(frames loaded: {ev['loaded_mb']:.0f} MB)",
                flush=True,
            )
            for mode in modes:
                ours = results["ours"][mode]
                print(
                    f"ratio {mode}: {ev['seconds'] / ours['seconds']:.0f}x faster, "
                    f"{ev['peak_mb'] / ours['peak_mb']:.1f}x less peak memory",
                    flush=True,
                )
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind = sys.argv[2]
        if kind == "ours":
            out = child_ours(sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 0)
        else:
            out = child_evidently(sys.argv[3])
        print(json.dumps(out))
    else:
        main()
