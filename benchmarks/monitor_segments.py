"""`mlops monitor` over 1M predictions read from shipped log segments (a local directory and
S3 on moto's server), cold, side by side with the JSON log on the serving host's disk.

Reproduce:

    .venv/bin/python benchmarks/monitor_segments.py            # 1M predictions
    .venv/bin/python benchmarks/monitor_segments.py --rows 100000

Data: the log of benchmarks/monitor_vs_evidently.py (one row per request, 20% labelled, 1%
refused, 32 MiB JSON files), then each file converted to segments exactly as a server ships
them (`mlops.serve.segments.convert`), spread over two hosts, written to a directory and to a
bucket on moto_server (127.0.0.1).

Each reading runs in a fresh process (cold: no index, no cache of ours; the OS page cache is
not dropped, so a local disk read is a warm-cache read, as on a host that just wrote it):
- json cold: `read_columns` on the JSON log with its index removed (every line parsed);
- json warm: the same with the index an earlier run built (what a scheduled monitor finds);
- segments dir / segments s3: `read_segments` (listing + fetch + Arrow IPC decode); segments-s3
  as `mlops monitor` reads (pyarrow's own S3 filesystem, fsspec's if it cannot list),
  segments-s3-native insisting on pyarrow's (`native_s3=True`), segments-s3-fsspec on s3fs
  (`native_s3=False`, the default before session 4).
Then `analyse` (the checks `mlops monitor` runs). Timed: read, analyse, total.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.monitor_vs_evidently import build, current_rss_mb, reuse, rss_mb

BUCKET = "bench-logs"


def _env(endpoint: str) -> dict[str, str]:
    return dict(
        os.environ,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )


def ship(work: Path, endpoint: str) -> dict:
    """Convert every JSON log file into segments (two hosts) in `work/store` and on S3."""
    import boto3

    from mlops.serve.segments import convert, segment_paths

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=BUCKET)
    store = work / "store"
    t0 = time.perf_counter()
    total = 0
    if store.is_dir():  # converted by an earlier run (--work): only put them in the bucket
        for path in sorted(store.rglob("*.arrow")):
            data = path.read_bytes()
            s3.put_object(Bucket=BUCKET, Key=f"staging/{path.relative_to(store)}", Body=data)
            total += len(data)
        return {"segments_mb": total / 2**20, "convert_and_put_seconds": None}
    files = sorted((work / "log").glob("*.jsonl"))
    for i, path in enumerate(files):
        host = f"host-{i % 2}"
        segs = convert(path, host)
        stem = path.name[: -len(".jsonl")]
        local = segment_paths(str(store), host, stem)
        remote = segment_paths("staging", host, stem)
        for kind, data in segs.items():
            Path(local[kind]).parent.mkdir(parents=True, exist_ok=True)
            Path(local[kind]).write_bytes(data)
            s3.put_object(Bucket=BUCKET, Key=remote[kind], Body=data)
            total += len(data)
    return {"segments_mb": total / 2**20, "convert_and_put_seconds": time.perf_counter() - t0}


def child(work: str, mode: str) -> dict:
    import numpy as np  # noqa: F401 - imported before the clock starts
    import pandas  # noqa: F401
    import pyarrow.compute
    import pyarrow.json
    import scipy.stats  # noqa: F401

    from mlops.config.models import MonitoringSpec
    from mlops.monitor.checks import LiveModel, analyse
    from mlops.monitor.logdata import INDEX_DIR, read_columns
    from mlops.monitor.segments import read_segments
    from mlops.monitor.window import Window

    if mode.startswith("segments"):
        import fsspec  # noqa: F401
        import pyarrow.fs  # noqa: F401
        import s3fs  # noqa: F401
    w = Path(work)
    if mode == "json-cold":
        shutil.rmtree(w / "log" / INDEX_DIR, ignore_errors=True)
    spec = MonitoringSpec.model_validate({"performance": {"min": 0.85}})
    base = current_rss_mb()
    t0 = time.perf_counter()
    if mode.startswith("json"):
        columns = read_columns(w / "log")
    elif mode == "segments-dir":
        columns = read_segments(str(w / "store"))
    elif mode == "segments-s3-native":  # pyarrow's own S3 filesystem
        columns = read_segments(f"s3://{BUCKET}/staging", native_s3=True)
    elif mode == "segments-s3-fsspec":  # s3fs
        columns = read_segments(f"s3://{BUCKET}/staging", native_s3=False)
    else:
        columns = read_segments(f"s3://{BUCKET}/staging")
    t1 = time.perf_counter()
    live = LiveModel.read(w / "bundle", "v1")
    report = analyse(columns, live, spec, Window(None, 2e9, "whole log"), env="bench")
    t2 = time.perf_counter()
    return {
        "seconds": t2 - t0,
        "read_seconds": t1 - t0,
        "analyse_seconds": t2 - t1,
        "loaded_mb": base,
        "peak_mb": rss_mb(),
        "rows": columns.predictions.num_rows,
        "drifted": report.drift.drifted if report.drift else [],
        "online_accuracy": report.performance["online"]["value"],
        "labelled": report.performance["online"]["labelled"],
    }


def run_child(endpoint: str, work: Path, mode: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(work), mode],
        capture_output=True,
        text=True,
        env=_env(endpoint),
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall"] = time.perf_counter() - t0
    return out


def moto(port: int) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("WORK", "MODE"))
    parser.add_argument(
        "--modes", default="json-cold,json-warm,segments-dir,segments-s3,segments-s3-fsspec"
    )
    parser.add_argument("--work", default=None, help="keep and reuse the data here")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = moto(port)
    try:
        with tempfile.TemporaryDirectory(prefix="segments-bench-") as tmp:
            work = Path(args.work or tmp)
            data = reuse(work, args.rows) or build(args.rows, work)
            (work / "data.json").write_text(json.dumps(data))
            os.environ.update(_env(endpoint))
            shipped = ship(work, endpoint)
            took = shipped["convert_and_put_seconds"]
            print(
                f"{args.rows:,} predictions: {data['log_mb']:.0f} MiB of JSON in "
                f"{data['files']} files -> {shipped['segments_mb']:.0f} MiB of segments "
                + (f"(converted and put in {took:.1f}s)" if took else "(reused, put in S3)"),
                flush=True,
            )
            results = {"data": data, "shipped": shipped, "modes": {}}
            for mode in args.modes.split(","):
                runs = [run_child(endpoint, work, mode) for _ in range(args.repeat)]
                best = min(runs, key=lambda r: r["seconds"])
                best["median_seconds"] = sorted(r["seconds"] for r in runs)[len(runs) // 2]
                results["modes"][mode] = best
                print(
                    f"{mode:13s} {best['seconds']:5.2f}s (read {best['read_seconds']:.2f}s, "
                    f"analyse {best['analyse_seconds']:.2f}s; median "
                    f"{best['median_seconds']:.2f}s; process {best['process_wall']:.1f}s with "
                    f"imports), peak {best['peak_mb']:.0f} MB, {best['rows']:,} rows, online "
                    f"accuracy {best['online_accuracy']:.4f} on {best['labelled']:,} labels",
                    flush=True,
                )
            print(json.dumps(results, default=str))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
